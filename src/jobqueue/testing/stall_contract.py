"""The contract of reported stalls: ``maintain`` and ``recover_expired`` return the jobs
recovered from expired leases -- by themselves or by the claims and idle waits before them --
each recovery once, so the dispatcher can fire ``jobqueue_job_stalled`` for every stall.
Mixed into ``BackendContract``; uses its fixtures (``backend``, ``open_backend``,
``new_job``, ``clock``)."""

from __future__ import annotations

from jobqueue.backend import Backend, Claim, WorkSpec
from jobqueue.job import Job, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.fixture_types import MakeJob, OpenBackend


def _take(backend: Backend, name: str = "a", lease: float = 5.0) -> Claim:
    claim = backend.claim(WorkSpec(names=(name,), lease_seconds=lease))
    assert claim is not None, f"expected a job of {name!r} to claim"
    return claim


def _seen(jobs: list[Job]) -> list[tuple[str, JobState, int]]:
    return [(job.id, job.state, job.stalls) for job in jobs]


class StallContract:
    """Contract tests of reported stalls (see the module docstring)."""

    def test_maintain_returns_the_jobs_it_recovered(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        first = backend.submit(new_job())
        second = backend.submit(new_job())
        live = backend.submit(new_job())
        held = [_take(backend) for _ in range(3)]
        assert backend.maintain() == []  # nothing expired yet
        clock.advance(4)
        assert backend.renew(live.id, held[2].token, 30) is True
        clock.advance(2)
        recovered = backend.maintain()
        assert _seen(recovered) == [
            (first.id, JobState.WAITING, 1),
            (second.id, JobState.WAITING, 1),
        ]
        assert recovered[0].name == "a" and recovered[0].data == first.data
        assert backend.maintain() == []  # each recovery is reported once

    def test_recover_expired_returns_the_jobs_it_recovered(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        _take(backend)
        assert backend.recover_expired() == []
        clock.advance(6)
        assert _seen(backend.recover_expired()) == [(job.id, JobState.WAITING, 1)]
        assert backend.recover_expired() == []
        assert backend.maintain() == []

    def test_a_claims_recovery_is_reported_by_the_next_maintenance(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        """A claim recovers the expired lease it finds (and may take the job again): the
        recovery is not lost, the next ``maintain`` returns it -- as the job now is."""
        job = backend.submit(new_job())
        _take(backend)
        clock.advance(6)
        again = _take(backend)
        assert again.job.id == job.id and again.job.stalls == 1
        assert _seen(backend.maintain()) == [(job.id, JobState.ACTIVE, 1)]
        assert backend.maintain() == []
        clock.advance(6)  # the second lease expires too: a second stall, reported again
        assert backend.claim(WorkSpec(names=("a",), lease_seconds=5)) is not None
        assert _seen(backend.recover_expired()) == [(job.id, JobState.ACTIVE, 2)]

    def test_failed_and_cancelled_recoveries_are_reported(
        self, open_backend: OpenBackend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend = open_backend(max_stalls=0)
        failing = backend.submit(new_job())
        asked = backend.submit(new_job())
        _take(backend)
        _take(backend)
        assert backend.cancel(asked.id) is JobState.ACTIVE
        clock.advance(6)
        recovered = backend.maintain()
        assert _seen(recovered) == [
            (failing.id, JobState.FAILED, 1),
            (asked.id, JobState.CANCELLED, 1),
        ]
        assert recovered[0].error is not None
        assert recovered[0].error.type == "StalledJobError"

    def test_a_job_removed_before_the_report_is_left_out(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        gone = backend.submit(new_job())
        kept = backend.submit(new_job())
        _take(backend)
        _take(backend)
        clock.advance(6)
        assert _take(backend).job.id == gone.id  # this claim recovered both
        assert backend.remove(gone.id) is True
        assert _seen(backend.maintain()) == [(kept.id, JobState.WAITING, 1)]
