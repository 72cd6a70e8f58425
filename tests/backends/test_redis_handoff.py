"""Claim-at-wake on Redis: an idle waiter registered on its names is handed the next job that
becomes ready, claimed under its own token and lease, through its inbox.

Each case checks what is stored afterwards (the job's state and lease holder, the waiter
registrations left), on real Redis and on fakeredis. Waiters that block run in a thread; the
test waits for their registration to appear before it submits, so the hand-off (not the
waiter's first look) is what is exercised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis

from jobqueue.backend import BackendOptions, Claim, HandoffBackend, WorkSpec
from jobqueue.backends.redis import RedisBackend
from jobqueue.backends.redis.wire import lease_arg
from jobqueue.engine import Engine
from jobqueue.errors import BackendUnavailableError
from jobqueue.job import Job, JobState
from jobqueue.testing import ManualClock
from tests.backends.redis_fixtures import delete_namespace, new_namespace, redis_url

__all__ = ["redis_url"]

SPEC = WorkSpec(("a",), lease_seconds=10, dispatcher="d1")


@pytest.fixture(params=["redis", "fakeredis"])
def backend(request: pytest.FixtureRequest) -> Iterator[RedisBackend]:
    options = BackendOptions(clock=ManualClock())
    client: Any
    if request.param == "redis":
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    else:
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    made = RedisBackend(client, options, namespace=new_namespace())
    yield made
    delete_namespace(client, made.namespace)
    made.close()


def clock_of(backend: RedisBackend) -> ManualClock:
    clock = backend.options.clock
    assert isinstance(clock, ManualClock)
    return clock


def new_job(name: str = "a", priority: int = 0, data: Any = 1) -> Job:
    return Job(id="", name=name, data=data, priority=priority, created_at=0.0, run_at=0.0)


def waiter_keys(backend: RedisBackend) -> list[str]:
    """Every key of the namespace that belongs to idle waiters (lists, records, inboxes)."""
    prefix = backend._prefix
    found = []
    for pattern in ("w:*", "W", "h:*"):
        found += [k.decode() for k in backend.client.scan_iter(match=prefix + pattern)]
    return sorted(found)


def registered(backend: RedisBackend) -> int:
    return int(backend.client.hlen(backend._prefix + "W"))


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.002)


def register(backend: RedisBackend, spec: WorkSpec, token: str, wait: float = 30.0) -> Any:
    """A waiter's first look only (idle.lua): it registers and never blocks or withdraws --
    as a waiter that died right after registering."""
    return backend._run("idle", [token, lease_arg(spec), repr(wait), *backend._spec_args(spec)])


def inbox(backend: RedisBackend, token: str) -> list[bytes]:
    return list(backend.client.lrange(backend._prefix + "h:" + token, 0, -1))


def start_waiter(
    backend: RedisBackend, spec: WorkSpec, timeout: float = 20
) -> tuple[threading.Thread, list[Claim | bool]]:
    result: list[Claim | bool] = []
    waiter = threading.Thread(target=lambda: result.append(backend.wait_for_claim(spec, timeout)))
    waiter.start()
    wait_until(lambda: registered(backend) == 1, "the waiter registered")
    return waiter, result


def test_redis_backend_is_a_handoff_backend(backend: RedisBackend) -> None:
    assert isinstance(backend, HandoffBackend)


def test_a_blocked_waiter_is_handed_the_submitted_job_under_its_own_lease(
    backend: RedisBackend,
) -> None:
    waiter, result = start_waiter(backend, SPEC)
    job = Engine(backend).submit(new_job(data={"n": 1}))
    waiter.join(timeout=15)  # well under its 20 s: only the hand-off ends it in time
    assert not waiter.is_alive(), "the waiter was not handed the job"
    (claim,) = result
    assert isinstance(claim, Claim)
    assert claim.job.id == job.id and claim.job.data == {"n": 1}
    assert claim.job.state is JobState.ACTIVE and claim.job.attempts_made == 1
    stored = backend.get(job.id)
    assert stored is not None and stored.state is JobState.ACTIVE
    assert stored.dispatcher == "d1"
    assert Engine(backend).claim(SPEC) is None  # nobody else can take it
    assert waiter_keys(backend) == []  # the registration went with the hand-off
    Engine(backend).complete(job.id, claim.token, "done", None)  # the lease is the waiter's token
    finished = backend.get(job.id)
    assert finished is not None and finished.state is JobState.COMPLETED


def test_a_waiter_claims_at_once_when_a_job_is_ready(backend: RedisBackend) -> None:
    job = Engine(backend).submit(new_job())
    claim = backend.wait_for_claim(SPEC, 20)
    assert isinstance(claim, Claim) and claim.job.id == job.id
    assert waiter_keys(backend) == []


def test_a_wait_that_times_out_leaves_no_registration(backend: RedisBackend) -> None:
    assert backend.wait_for_claim(WorkSpec(("a", "b"), lease_seconds=10), 0.05) is False
    assert backend.wait_for_work(["a", "b"], 0.05) is False
    assert waiter_keys(backend) == []
    job = Engine(backend).submit(new_job())  # nobody registered: it simply waits
    stored = backend.get(job.id)
    assert stored is not None and stored.state is JobState.WAITING


def test_a_job_handed_over_as_the_wait_ends_is_taken_not_lost(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted: list[Job] = []

    def block_then_time_out(keys: list[str], timeout: float) -> None:
        submitted.append(Engine(backend).submit(new_job()))  # handed to us while we "block"
        return None  # ... and the block ends empty: unidle must find it in the inbox

    monkeypatch.setattr(backend, "_block", block_then_time_out)
    claim = backend.wait_for_claim(SPEC, 5)
    assert isinstance(claim, Claim) and claim.job.id == submitted[0].id
    assert waiter_keys(backend) == []


def test_a_handed_job_whose_delivery_was_lost_is_found_by_its_token(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_block = backend._block
    submitted: list[Job] = []

    def block_and_lose_the_reply(keys: list[str], timeout: float) -> Any:
        submitted.append(Engine(backend).submit(new_job()))
        assert real_block(keys, timeout) is not None  # the server popped the message...
        raise BackendUnavailableError("connection dropped")  # ... and the reply was lost

    monkeypatch.setattr(backend, "_block", block_and_lose_the_reply)
    claim = backend.wait_for_claim(SPEC, 5)
    assert isinstance(claim, Claim) and claim.job.id == submitted[0].id


def test_a_waiter_on_several_names_is_withdrawn_from_all_when_handed_one(
    backend: RedisBackend,
) -> None:
    waiter, result = start_waiter(backend, WorkSpec(("a", "b", "c"), lease_seconds=10))
    job = Engine(backend).submit(new_job(name="b"))
    waiter.join(timeout=15)
    assert isinstance(result[0], Claim) and result[0].job.id == job.id
    assert waiter_keys(backend) == []
    other = Engine(backend).submit(new_job(name="a"))  # nobody is waiting any more
    stored = backend.get(other.id)
    assert stored is not None and stored.state is JobState.WAITING


def test_waiters_are_handed_jobs_longest_idle_first_one_job_each(backend: RedisBackend) -> None:
    register(backend, SPEC, "first")
    register(backend, SPEC, "second")
    jobs = Engine(backend).submit_many([new_job(data=1), new_job(data=2), new_job(data=3)])
    assert [len(inbox(backend, t)) for t in ("first", "second")] == [1, 1]
    states = [j.state for j in (backend.get(job.id) for job in jobs) if j is not None]
    assert states == [JobState.ACTIVE, JobState.ACTIVE, JobState.WAITING]
    assert registered(backend) == 0


def test_a_paused_name_hands_nothing_until_resumed_then_the_best_job_goes(
    backend: RedisBackend,
) -> None:
    Engine(backend).pause("a")
    register(backend, SPEC, "t1")
    low = Engine(backend).submit(new_job(priority=0))
    high = Engine(backend).submit(new_job(priority=5))
    assert inbox(backend, "t1") == [] and registered(backend) == 1
    Engine(backend).resume("a")
    (message,) = inbox(backend, "t1")
    assert b'"' + high.id.encode() + b'"' in message
    stored_high, stored_low = backend.get(high.id), backend.get(low.id)
    assert stored_high is not None and stored_high.state is JobState.ACTIVE
    assert stored_low is not None and stored_low.state is JobState.WAITING


def test_a_capped_name_only_wakes_its_waiter(backend: RedisBackend) -> None:
    capped = WorkSpec(("a",), lease_seconds=10, max_active={"a": 1})
    waiter, result = start_waiter(backend, capped)
    job = Engine(backend).submit(new_job())
    waiter.join(timeout=15)
    assert result == [True]  # woken: it claims for itself, under the cap
    stored = backend.get(job.id)
    assert stored is not None and stored.state is JobState.WAITING
    assert waiter_keys(backend) == []


def test_a_plain_wait_for_work_is_woken_not_handed_a_job(backend: RedisBackend) -> None:
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(backend.wait_for_work(["a"], 20)))
    waiter.start()
    wait_until(lambda: registered(backend) == 1, "the waiter registered")
    job = Engine(backend).submit(new_job())
    waiter.join(timeout=15)
    assert result == [True]
    stored = backend.get(job.id)
    assert stored is not None and stored.state is JobState.WAITING


def test_a_registration_past_its_wait_is_dropped_not_handed_a_job(backend: RedisBackend) -> None:
    register(backend, SPEC, "gone", wait=1.0)  # a waiter that died while blocked
    clock_of(backend).advance(60)  # long past its wait and grace
    job = Engine(backend).submit(new_job())
    stored = backend.get(job.id)
    assert stored is not None and stored.state is JobState.WAITING
    assert waiter_keys(backend) == []


def test_a_job_handed_to_a_waiter_that_died_is_recovered_when_its_lease_ends(
    backend: RedisBackend,
) -> None:
    register(backend, SPEC, "dead")
    job = Engine(backend).submit(new_job())
    stored = backend.get(job.id)
    assert stored is not None and stored.state is JobState.ACTIVE  # handed, never started
    assert Engine(backend).claim(SPEC) is None
    clock_of(backend).advance(SPEC.lease_seconds + 1)
    assert [j.id for j in Engine(backend).recover_expired()] == [job.id]
    claim = Engine(backend).claim(SPEC)
    assert claim is not None and claim.job.id == job.id
    assert backend.client.exists(backend._prefix + "h:dead") == 1  # an inbox nobody read...
    assert backend.client.ttl(backend._prefix + "h:dead") > 0  # ... goes by itself
