"""Leases are measured on the Redis server's clock: a dispatcher host whose clock runs 60 s
ahead cannot take, recover or fence out a lease that is live on the server's clock, and the
delays it asks for land where it meant them.

"Ahead" is real for the production path: the skewed backend's clock option says 60 s ahead,
and ``server_clock=True`` (what a queue on the default ``time.time`` clock gets) makes the
scripts ignore it. The same backend with ``server_clock=False`` -- the test hook that lets
other suites move time -- does take the lease, which shows the setup is skewed for real.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from jobqueue.backend import BackendOptions, WorkSpec
from jobqueue.backends.redis import RedisBackend
from jobqueue.engine import Engine
from jobqueue.job import Job, JobError, JobState

pytestmark = [pytest.mark.redis]

SKEW = 60.0
SPEC = WorkSpec(("skew",), lease_seconds=30)


def ahead() -> float:
    return time.time() + SKEW


@pytest.fixture
def backends(redis_url: str, namespace: str) -> Iterator[tuple[RedisBackend, RedisBackend]]:
    """(true, skewed): a backend on the default clock and one whose clock runs 60 s ahead."""
    true = RedisBackend(redis.Redis.from_url(redis_url), BackendOptions(), namespace=namespace)
    skewed_options = BackendOptions(clock=ahead)
    skewed = RedisBackend(
        redis.Redis.from_url(redis_url), skewed_options, namespace=namespace, server_clock=True
    )
    yield true, skewed
    true.close()
    skewed.close()


def new_job(clock: float, delay: float = 0.0) -> Job:
    return Job(id="", name="skew", data={}, created_at=clock, run_at=clock + delay)


def server_now(backend: RedisBackend) -> float:
    seconds, micros = backend.client.time()
    return float(seconds) + micros / 1e6


def test_the_default_clock_is_the_servers(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert RedisBackend(client, BackendOptions(), namespace=namespace).server_clock is True
    injected = BackendOptions(clock=ahead)  # a test's clock is passed on, as before
    assert RedisBackend(client, injected, namespace=namespace).server_clock is False
    client.close()


def test_a_clock_ahead_cannot_take_a_live_lease(
    backends: tuple[RedisBackend, RedisBackend], redis_url: str, namespace: str
) -> None:
    true, skewed = backends
    job = Engine(true).submit(new_job(time.time()))
    claim = Engine(true).claim(SPEC)
    assert claim is not None and claim.job.id == job.id

    # 60 s ahead, A's 30 s lease looks expired -- but "now" is the server's.
    assert Engine(skewed).recover_expired() == []
    assert Engine(skewed).claim(SPEC) is None
    assert Engine(skewed).renew(job.id, "not-the-token", 30) is False
    stored = skewed.get(job.id)
    assert stored is not None and stored.state is JobState.ACTIVE and stored.stalls == 0

    # The lease is still A's: it renews and completes.
    assert Engine(true).renew(job.id, claim.token, 30) is True
    assert Engine(true).complete(job.id, claim.token, "done", None) is None
    done = true.get(job.id)
    assert done is not None and done.state is JobState.COMPLETED and done.attempts_made == 1


def test_the_client_clock_hook_would_take_it(redis_url: str, namespace: str) -> None:
    true = RedisBackend(redis.Redis.from_url(redis_url), BackendOptions(), namespace=namespace)
    hooked = RedisBackend(
        redis.Redis.from_url(redis_url),
        BackendOptions(clock=ahead),
        namespace=namespace,
        server_clock=False,
    )
    job = Engine(true).submit(new_job(time.time()))
    assert Engine(true).claim(SPEC) is not None
    # Its "now" is 60 s on: the 30 s lease looks expired, is recovered (stalls are the
    # core's, Engine's maintenance), and taken.
    assert [found.id for found in Engine(hooked).recover_expired()] == [job.id]
    taken = Engine(hooked).claim(SPEC)
    assert taken is not None and taken.job.id == job.id and taken.job.stalls == 1
    true.close()
    hooked.close()


def test_a_clock_ahead_gets_the_delays_it_asks_for(
    backends: tuple[RedisBackend, RedisBackend],
) -> None:
    true, skewed = backends
    # A plain submit from the skewed host is due now, not in 60 s.
    now_job = Engine(skewed).submit(new_job(ahead()))
    assert now_job.state is JobState.WAITING
    claim = Engine(true).claim(SPEC)
    assert claim is not None and claim.job.id == now_job.id
    assert Engine(true).complete(claim.job.id, claim.token, None, None) is None

    # A 300 s delay is 300 s on the server's clock, not 240 s.
    later = Engine(skewed).submit(new_job(ahead(), delay=300))
    stored = true.get(later.id)
    assert stored is not None and stored.state is JobState.DELAYED
    assert 250 < stored.run_at - server_now(true) <= 300

    # A retry with no backoff, failed from the skewed host, is due at once.
    retried = Engine(skewed).submit(new_job(ahead()))
    claim = Engine(skewed).claim(SPEC)
    assert claim is not None and claim.job.id == retried.id
    state = Engine(skewed).fail(retried.id, claim.token, JobError("E", "again"), ahead())
    assert state is JobState.WAITING
    again = Engine(true).claim(SPEC)
    assert again is not None and again.job.id == retried.id and again.job.attempts_made == 2
