"""Who hears of a stall (issue 19, item 6): the dispatcher that loses a lease fires
``jobqueue_lease_lost`` once -- whether its heartbeat or a refused outcome tells it -- and the
process whose maintenance recovers an expired lease fires ``jobqueue_job_stalled`` once per
recovery, which the Prometheus stall counter counts. (The real-process partition test is
tests/reliability/test_partition_stalls.py.)"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from jobqueue import Dispatcher, JobQueue, hookimpl
from jobqueue.backend import LeaseStatus, WorkSpec
from jobqueue.errors import BackendUnavailableError
from jobqueue.job import Job, JobState
from jobqueue.metrics import instrument

LEASE = 0.3


class Heard:
    """Every lease_lost / job_stalled hook call, as (hook, job id, stalls)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.stalled = threading.Event()

    @hookimpl
    def jobqueue_lease_lost(self, job: Job) -> None:
        self.calls.append(("lease_lost", job.id, job.stalls))

    @hookimpl
    def jobqueue_job_stalled(self, job: Job) -> None:
        self.calls.append(("stalled", job.id, job.stalls))
        self.stalled.set()

    def of(self, hook: str) -> list[str]:
        return [job_id for name, job_id, _ in self.calls if name == hook]


class Wrapped:
    """The queue's backend, with the heartbeat replaced and the outcome calls recorded."""

    def __init__(self, backend: Any, heartbeat: Any) -> None:
        self._backend = backend
        self._heartbeat = heartbeat
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if name in ("complete", "fail", "finish_many"):

            def recorded(*args: Any) -> Any:
                self.calls.append(name)
                return attr(*args)

            return recorded
        return attr

    def heartbeat(self, info: Any, leases: Any, lease_seconds: float) -> Any:
        return self._heartbeat(info, leases, lease_seconds)


def _until(condition: Any, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_heartbeat_lost_lease_fires_lease_lost_once_and_recovery_fires_stalled() -> None:
    """The heartbeat finds the lease lost: ``jobqueue_lease_lost`` once, though every later
    beat says so again and the late outcome is refused too; ``jobqueue_job_stalled`` comes
    from the maintenance that recovered the lease, once, not from the lease's loser."""
    heard = Heard()
    queue = JobQueue("memory://", load_entrypoints=False, plugins=[heard], lease_seconds=LEASE)

    def long(job: Job) -> None:
        if job.attempts_made == 1:
            assert heard.stalled.wait(10)

    queue.add_worker("long", long)
    job = queue.submit_job("long", None)
    refused: set[str] = set()

    def heartbeat(info: Any, leases: Any, lease_seconds: float) -> Any:
        # As a backend that took the first lease away: never renewed, always reported lost.
        if not refused and leases:
            refused.add(leases[0][1])
        answers = queue.backend.heartbeat(info, leases, lease_seconds)
        return [
            LeaseStatus.LOST if token in refused else a
            for (_, token), a in zip(leases, answers, strict=True)
        ]

    backend = Wrapped(queue.backend, heartbeat)
    dispatcher = Dispatcher(backend, queue.registry, queue.plugins.hook, lease_seconds=LEASE)  # type: ignore[arg-type]
    dispatcher.run(burst=True)
    assert heard.of("lease_lost") == [job.id]
    assert heard.of("stalled") == [job.id]
    assert ("stalled", job.id, 1) in heard.calls
    assert backend.calls[0] == "complete" and dispatcher.outcomes["lost"] == 1


@pytest.mark.parametrize(
    ("prefetch", "outcome", "call"),
    [(1, "complete", "complete"), (1, "fail", "fail"), (2, "complete", "finish_many")],
)
def test_a_refused_outcome_fires_lease_lost_once(prefetch: int, outcome: str, call: str) -> None:
    """The heartbeat cannot reach the backend, so only the refused outcome (inline, or in a
    batched ``finish_many``) tells the dispatcher: ``jobqueue_lease_lost`` once per lease."""
    heard = Heard()
    queue = JobQueue("memory://", load_entrypoints=False, plugins=[heard], lease_seconds=LEASE)
    recovered: list[str] = []

    def stalls(job: Job) -> None:
        if job.attempts_made > 1:
            return
        if not recovered:  # another process recovers the expired lease(s) meanwhile
            recovered.extend(_until(lambda: [j.id for j in queue.backend.recover_expired()]))
        if outcome == "fail":
            raise ValueError("too late")

    queue.add_worker("w", stalls, attempts=3)
    jobs = [queue.submit_job("w", n).id for n in range(prefetch)]

    def unreachable(info: Any, leases: Any, lease_seconds: float) -> Any:
        raise BackendUnavailableError("cut off")

    backend = Wrapped(queue.backend, unreachable)
    dispatcher = Dispatcher(
        backend,  # type: ignore[arg-type]
        queue.registry,
        queue.plugins.hook,
        lease_seconds=LEASE,
        prefetch=prefetch,
    )
    dispatcher.run(burst=True)
    assert sorted(recovered) == sorted(jobs)
    assert sorted(heard.of("lease_lost")) == sorted(jobs)  # each lost lease once
    assert heard.of("stalled") == []  # the recovering "process" was the test, not this one
    assert call in backend.calls


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_the_recovering_process_fires_stalled_and_counts_it_once(
    scheme: str, tmp_path: Path
) -> None:
    """A job whose holder died: the dispatcher that recovers it fires
    ``jobqueue_job_stalled`` once and ``jobqueue_stalls_total`` counts it once."""
    heard = Heard()
    url = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path / 'jobs.db'}"
    with JobQueue(url, load_entrypoints=False, plugins=[heard]) as queue:
        registry = instrument(queue)
        queue.add_worker("w", lambda job: "ran again")
        job = queue.submit_job("w", None)
        dead = queue.backend.claim(WorkSpec(names=("w",), lease_seconds=0.05))
        assert dead is not None  # a holder that dies without a word
        _until(lambda: time.time() > dead.lease_expires_at)
        assert queue.work(burst=True) == 1
        text = generate_latest(registry).decode()
        assert heard.calls == [("stalled", job.id, 1)]
        assert 'jobqueue_stalls_total{name="w"} 1.0' in text
        assert queue.backend.maintain() == []  # reported once


def test_a_burst_run_reports_the_stalls_it_recovers_before_it_exits() -> None:
    """Claims recover nothing (maintenance does, about every second); a burst run may end
    before its next maintenance: the dispatcher's last maintenance on leaving recovers the
    expired lease and reports it, once, and the job runs on the next run."""
    heard = Heard()
    with JobQueue("memory://", load_entrypoints=False, plugins=[heard]) as queue:
        queue.add_worker("w", lambda job: "ran")
        queue.add_worker("first", lambda job: _until(lambda: time.time() > dead.lease_expires_at))
        orphan = queue.submit_job("w", None)
        dead = queue.backend.claim(WorkSpec(names=("w",), lease_seconds=LEASE))
        assert dead is not None and dead.job.id == orphan.id  # a holder that dies silently
        queue.submit_job("first", None)  # runs until that lease has expired
        assert queue.work(burst=True) == 1
        assert heard.calls == [("stalled", orphan.id, 1)]
        back = queue.get_job_by_id(orphan.id)
        assert back is not None and back.state is JobState.WAITING and back.stalls == 1
        assert queue.work(burst=True) == 1
        assert heard.calls == [("stalled", orphan.id, 1)]  # reported once
