"""Part 4 -- lease expiry and fencing, on every backend that leases jobs.

Dispatcher A's heartbeat is frozen while its handler outlives the lease. Dispatcher B takes the
job over once the lease has expired (never before), and completes it. When A's handler finally
returns, its completion is refused (``LeaseLostError``, logged and discarded) and B's result
stays. A's old token can no longer renew, complete, fail or release the job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobqueue import JobQueue
from jobqueue.backends.memory import MemoryBackend
from jobqueue.errors import LeaseLostError
from jobqueue.job import JobError, JobState
from jobqueue.runtime.dispatcher import Dispatcher
from tests.reliability.support import wait_until

pytestmark = pytest.mark.slow

LEASE = 1.0
MakeQueue = Callable[[], JobQueue]


@pytest.fixture(params=["redis", "sqlite", "memory"])
def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeQueue]:
    """Queues sharing one store, as separate dispatcher processes would."""
    made: list[JobQueue] = []
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        ns = request.getfixturevalue("namespace")

        def make() -> JobQueue:
            return JobQueue(url, namespace=ns, lease_seconds=LEASE, load_entrypoints=False)
    elif request.param == "sqlite":

        def make() -> JobQueue:
            return JobQueue(
                f"sqlite:///{tmp_path}/jobs.db", lease_seconds=LEASE, load_entrypoints=False
            )
    else:
        shared = MemoryBackend()

        def make() -> JobQueue:
            return JobQueue(
                "memory://", backend=shared, lease_seconds=LEASE, load_entrypoints=False
            )

    def tracked() -> JobQueue:
        made.append(make())
        return made[-1]

    yield tracked
    for queue in made[1:] if request.param == "memory" else made:
        queue.close()


def frozen_heartbeat(dispatcher: Dispatcher) -> None:
    """The heartbeat, frozen: its thread still starts the slots, but no beat renews anything
    (nor registers the dispatcher) until the dispatcher finishes."""
    dispatcher._beat = lambda beats: None  # type: ignore[method-assign]


def test_handler_outliving_its_lease_loses_the_job(
    make_queue: MakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="jobqueue")
    a_started, a_may_return = threading.Event(), threading.Event()
    held: dict[str, Any] = {}

    def handle_a(job: Any) -> dict[str, str]:
        held["token"], held["started"] = job._token, time.time()
        a_started.set()
        assert a_may_return.wait(30)
        return {"by": "A"}

    queue_a, queue_b = make_queue(), make_queue()
    queue_a.add_worker("slow", handle_a)
    queue_b.add_worker("slow", lambda job: {"by": "B"})
    job = queue_a.submit_job("slow", {"n": 1})
    dispatcher_a = queue_a.dispatcher()
    frozen_heartbeat(dispatcher_a)
    thread = threading.Thread(target=dispatcher_a.run, kwargs={"burst": True, "max_jobs": 1})
    thread.start()
    try:
        assert a_started.wait(30)
        # B polls until it gets the job: never before A's lease expired.
        wait_until(lambda: queue_b.work(burst=True, max_jobs=1) == 1, 30, "B to take the job")
        assert time.time() >= held["started"] + LEASE * 0.9
        taken = queue_b.get_job_by_id(job.id)
        assert taken is not None and taken.state is JobState.COMPLETED
        assert taken.result == {"by": "B"} and taken.stalls == 1 and taken.attempts_made == 2
    finally:
        a_may_return.set()
        thread.join(30)
    assert not thread.is_alive()
    assert dispatcher_a.processed == 1

    final = queue_a.get_job_by_id(job.id)
    assert final is not None and final.state is JobState.COMPLETED
    assert final.result == {"by": "B"}, "the late completion overwrote the result"
    assert f"outcome of job {job.id} was not stored" in caplog.text
    assert f"job {job.id}: outcome discarded, its lease was lost" in caplog.text

    backend, token = queue_a.backend, held["token"]
    with pytest.raises(LeaseLostError):
        backend.complete(job.id, token, {"by": "A again"}, None)
    with pytest.raises(LeaseLostError):
        backend.fail(job.id, token, JobError("Late", "late failure"), None)
    assert backend.renew(job.id, token, 30) is False
    assert backend.release(job.id, token) is False
    after = queue_a.get_job_by_id(job.id)
    assert after is not None and after.result == {"by": "B"} and after.error is None


def test_a_live_heartbeat_keeps_the_job(make_queue: MakeQueue) -> None:
    """The control: the same handler with its heartbeat running keeps the job for 2.5 leases
    while B keeps trying to claim it."""
    a_started, a_may_return = threading.Event(), threading.Event()

    def handle_a(job: Any) -> dict[str, str]:
        a_started.set()
        assert a_may_return.wait(30)
        return {"by": "A"}

    queue_a, queue_b = make_queue(), make_queue()
    queue_a.add_worker("slow", handle_a)
    queue_b.add_worker("slow", lambda job: {"by": "B"})
    job = queue_a.submit_job("slow")
    thread = threading.Thread(target=queue_a.work, kwargs={"max_jobs": 1})
    thread.start()
    try:
        assert a_started.wait(30)
        until = time.monotonic() + 2.5 * LEASE
        while time.monotonic() < until:  # B keeps trying for 2.5 leases
            assert queue_b.work(burst=True, max_jobs=1) == 0
            time.sleep(0.05)
    finally:
        a_may_return.set()
        thread.join(30)
    done = queue_a.get_job_by_id(job.id)
    assert done is not None and done.state is JobState.COMPLETED
    assert done.result == {"by": "A"} and done.stalls == 0 and done.attempts_made == 1
