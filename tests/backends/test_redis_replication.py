"""Replica acknowledgement (``?replicas=N``, ``JobQueue(replicas=N)``), a demoted primary
(READONLY), and the Sentinel URL forms -- against a primary and a replica of the test's own
(``tests.reliability.sentinels``); the failover itself is tests/reliability/
test_redis_failover.py."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from jobqueue import JobQueue
from jobqueue.aio import AsyncJobQueue
from jobqueue.backend import WorkSpec
from jobqueue.backends.redis import RedisBackend
from jobqueue.backends.redis.url import SentinelSpec, parse_redis_url, safe_url
from jobqueue.engine import Engine
from jobqueue.errors import (
    BackendUnavailableError,
    InvalidSettingError,
    InvalidURLError,
    ReplicationTimeoutError,
)
from jobqueue.job import Job, JobState
from tests.backends.redis_fixtures import free_port
from tests.reliability.sentinels import SERVICE, ReplicatedRedis, replicated
from tests.reliability.support import wait_until

__all__ = ["replicated"]

T = TypeVar("T")


def _queue(url: str) -> JobQueue:
    queue = JobQueue(url, load_entrypoints=False)
    queue.add_worker("a", lambda job: job.data)
    return queue


def test_a_submit_with_replicas_waits_for_them_and_says_when_they_do_not_answer(
    replicated: ReplicatedRedis,
) -> None:
    queue = _queue(f"redis://127.0.0.1:{replicated.primary_port}/0?replicas=1&replica_timeout=2")
    try:
        stored = queue.submit_job("a", 1)
        with contextlib.closing(replicated.client(replicated.replica_port)) as replica:
            assert replica.exists(f"jq:{{jobqueue}}:j:{stored.id}")  # on the replica already
        replicated.lag_replica()
        with pytest.raises(ReplicationTimeoutError, match="0 of 1 replica") as caught:
            queue.submit_job("a", 2)
        assert isinstance(caught.value, BackendUnavailableError)
        (job_id,) = caught.value.job_ids
        # On the primary, not yet on the replica: what a failover now would lose.
        late = queue.get_job_by_id(job_id)
        assert late is not None and late.data == 2
        replicated.unpause_replica()
        assert queue.submit_job("a", 3).id > job_id  # the connection is still in step
    finally:
        queue.close()


def test_an_outcome_with_replicas_waits_and_is_safe_to_send_again(
    replicated: ReplicatedRedis,
) -> None:
    url = f"redis://127.0.0.1:{replicated.primary_port}/0?replicas=1&replica_timeout=2"
    backend = RedisBackend.from_url(url, JobQueue(url, load_entrypoints=False)._backend_options)
    try:
        queue_job = _queue(url).submit_job("a", 1)
        claim = Engine(backend).claim(WorkSpec(("a",)))
        assert claim is not None and claim.job.id == queue_job.id
        replicated.lag_replica()
        with pytest.raises(ReplicationTimeoutError, match=f"apply of job {claim.job.id}"):
            Engine(backend).complete(claim.job.id, claim.token, {"ok": 1}, None)
        replicated.unpause_replica()
        # The retry a caller makes is answered with the stored outcome, and now replicated.
        Engine(backend).complete(claim.job.id, claim.token, {"ok": 1}, None)
        done = backend.get(claim.job.id)
        assert done is not None and done.state is JobState.COMPLETED
    finally:
        backend.close()


def test_only_the_replica_sentinel_would_promote_answers_the_primarys_wait(
    replicated: ReplicatedRedis,
) -> None:
    """WAIT N counts any N replicas of the primary, so the failover test's ``replicas=1``
    proves nothing about the promoted replica unless that one alone can answer: with the
    replica paused (and nothing else), a submit is refused -- the never-promoted spare,
    chained behind the replica, lags with it instead of acknowledging what the replica
    lacks (when it replicated from the primary, an acknowledged submit was lost in the
    failover test now and then). After the pause the spare holds what the replica does."""
    queue = _queue(f"redis://127.0.0.1:{replicated.primary_port}/0?replicas=1&replica_timeout=2")
    replica = replicated.client(replicated.replica_port)
    spare = replicated.client(replicated.spare_port)
    try:
        replica.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")  # the replica alone
        with pytest.raises(ReplicationTimeoutError, match="0 of 1 replica") as caught:
            queue.submit_job("a", 1)
        (job_id,) = caught.value.job_ids
        key = f"jq:{{jobqueue}}:j:{job_id}"
        assert not spare.exists(key)
        replica.execute_command("CLIENT", "UNPAUSE")
        queue.submit_job("a", 2)  # acknowledged: the replica caught up with both
        wait_until(lambda: spare.exists(key) == 1, 10, "the spare catching up behind the replica")
    finally:
        replica.execute_command("CLIENT", "UNPAUSE")
        replica.close()
        spare.close()
        queue.close()


def test_jobqueue_replicas_argument_and_the_asyncio_facade(replicated: ReplicatedRedis) -> None:
    url = f"redis://127.0.0.1:{replicated.primary_port}/0"
    with pytest.raises(InvalidSettingError):
        JobQueue(url, replicas=-1, load_entrypoints=False)
    with pytest.raises(InvalidSettingError):
        JobQueue(url, replica_timeout=0, load_entrypoints=False)
    queue = JobQueue(url, replicas=1, replica_timeout=2.0, load_entrypoints=False)
    queue.add_worker("a", lambda job: job.data)

    async def submit_twice() -> tuple[str, BaseException | None]:
        jobs = AsyncJobQueue(queue=queue)
        try:
            first = await jobs.submit_job("a", 1)
            replicated.lag_replica()
            try:
                await jobs.submit_job("a", 2)
            except ReplicationTimeoutError as exc:
                return first.id, exc
            return first.id, None
        finally:
            await jobs.close()

    try:
        first_id, error = asyncio.run(submit_twice())
        assert isinstance(error, ReplicationTimeoutError) and len(error.job_ids) == 1
        assert int(error.job_ids[0]) > int(first_id)
    finally:
        replicated.unpause_replica()
        queue.close()


def test_a_write_to_a_demoted_primary_is_backend_unavailable(replicated: ReplicatedRedis) -> None:
    """A plain URL still naming a server that is now a replica: READONLY is not the caller's
    mistake but an outage (BackendUnavailableError), and the connection is dropped."""
    queue = _queue(f"redis://127.0.0.1:{replicated.replica_port}/0")
    try:
        with pytest.raises(BackendUnavailableError, match="ReadOnlyError"):
            queue.submit_job("a", 1)
        with pytest.raises(BackendUnavailableError):
            queue.submit_job("a", 1)
    finally:
        queue.close()


@pytest.mark.parametrize("scheme", ["redis+sentinel", "redis-sentinel", "sentinel"])
def test_sentinel_url_forms(scheme: str) -> None:
    parsed = parse_redis_url(
        f"{scheme}://app:secret@h1:26379,h2,[::1]:26380/mymaster/3"
        "?namespace=ns&sentinel_password=s3&socket_timeout=4&replicas=1&replica_timeout=0.5"
    )
    assert parsed.sentinel == SentinelSpec(
        (("h1", 26379), ("h2", 26379), ("::1", 26380)), "mymaster", None, "s3"
    )
    assert parsed.client_url.startswith("redis://app:secret@h1:26379/3?")
    assert "socket_timeout=4" in parsed.client_url and "sentinel" not in parsed.client_url
    assert (parsed.namespace, parsed.replicas, parsed.replica_timeout) == ("ns", 1, 0.5)
    tls = parse_redis_url("rediss+sentinel://h1/mymaster")
    assert tls.client_url.startswith("rediss://") and tls.sentinel is not None
    shown = safe_url(f"{scheme}://app:secret@h1,h2/m?sentinel_password=s3")
    assert "secret" not in shown and "s3" not in shown


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h1:26379", "names the service"),
        ("redis+sentinel://h1:26379/", "names the service"),
        ("redis+sentinel://h1:x/m", "Port"),
        ("redis+sentinel://h1/m/zero", "database by number"),
        ("redis+sentinel://h1/m?cluster=true", "exclude each other"),
        ("redis+sentinel://h1,h2/m?bogus=1", r"bogus in redis\+sentinel://h1,h2/m\?"),
        ("redis://h/0?sentinel_password=x", "unknown Redis URL parameter"),
        ("redis://h/0?replicas=one", "replicas="),
        ("redis://h/0?replica_timeout=0", "replica_timeout="),
        ("redis://h/0?replicas=1&cluster=true", "cluster"),
    ],
)
def test_bad_sentinel_and_replica_urls_are_refused_up_front(url: str, says: str) -> None:
    with pytest.raises(InvalidURLError, match=says):
        JobQueue(url, load_entrypoints=False)


def _retrying(call: Callable[[], T], seconds: float = 20) -> T:
    """``call`` again while it raises BackendUnavailableError (a failover under way), up to
    ``seconds``: what a caller riding out the switch does."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except BackendUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_sentinel_client_follows_a_switch_and_reloads_a_missing_library(
    replicated: ReplicatedRedis,
) -> None:
    """SENTINEL FAILOVER promotes the replica while the old primary lives on (writable until
    the sentinels reconfigure it, seconds later): a wait blocked there (BLPOP on the
    thread's held connection) moves to the new primary and sees the job finish there; the
    next calls go there too -- the asyncio facade's included, on a client opened before --
    and a function library missing there is loaded again."""
    replicated.start_sentinels()
    queue = _queue(replicated.url("socket_timeout=5"))
    new_primary = replicated.client(replicated.replica_port)
    outcome: list[object] = []

    def switch(first_id: str) -> None:
        waiting = threading.Event()

        def waiter() -> None:
            waiting.set()
            outcome.append(queue.wait_for(first_id, timeout=30))

        thread = threading.Thread(target=waiter)
        thread.start()
        assert waiting.wait(10)
        with contextlib.closing(replicated.client(replicated.sentinel_ports[0])) as sentinel:
            sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
        wait_until(lambda: replicated.master_port() == replicated.replica_port, 30, "promotion")
        new_primary.execute_command("FUNCTION", "FLUSH")
        _retrying(lambda: queue.work(burst=True))
        thread.join(30)
        assert not thread.is_alive(), "the blocked wait hung"

    async def through_the_switch() -> tuple[str, str, str]:
        jobs = AsyncJobQueue(queue=queue)
        try:
            first = await jobs.submit_job("a", 1)
            await asyncio.to_thread(switch, first.id)
            deadline = time.monotonic() + 20
            while True:
                try:
                    after = await jobs.submit_job("a", 3)
                    break
                except BackendUnavailableError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
            second = _retrying(lambda: queue.submit_job("a", 2))
            return first.id, second.id, after.id
        finally:
            await jobs.close()

    try:
        first_id, second_id, async_id = asyncio.run(through_the_switch())
        (done,) = outcome
        assert isinstance(done, Job) and done.state is JobState.COMPLETED
        assert new_primary.hget(f"jq:{{jobqueue}}:j:{first_id}", "s") == b"c"
        assert new_primary.execute_command("FUNCTION", "LIST")  # loaded again
        assert int(first_id) < int(async_id) < int(second_id)
        for job_id in (second_id, async_id):
            assert new_primary.exists(f"jq:{{jobqueue}}:j:{job_id}")
    finally:
        new_primary.close()
        queue.close()


def test_no_sentinel_answering_is_backend_unavailable_in_a_short_message() -> None:
    ports = ",".join(f"127.0.0.1:{free_port()}" for _ in range(2))
    queue = _queue(f"redis+sentinel://{ports}/jqmaster/0?socket_connect_timeout=0.5")
    try:
        with pytest.raises(BackendUnavailableError, match="no sentinel named the primary") as e:
            queue.submit_job("a", 1)
        assert "Connection refused" in str(e.value) and "redis.client" not in str(e.value)
    finally:
        queue.close()
