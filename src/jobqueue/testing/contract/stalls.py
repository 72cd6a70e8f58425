"""Maintenance: expired leases recovered (a stall counted; failed past ``max_stalls``;
cancelled when a cancel was asked), each recovery reported once by ``maintain`` or
``recover_expired`` -- whoever recovered it -- so the dispatcher can fire
``jobqueue_job_stalled`` for every stall; and retention by count and by age.
"""

from __future__ import annotations

from jobqueue.backend import Claim, Retention, WorkSpec
from jobqueue.engine import Engine
from jobqueue.job import MAX_HISTORY, AttemptOutcome, Job, JobError, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.support import ERROR, ContractBase, MakeJob, OpenBackend, spec


def _take(backend: Engine, name: str = "a", lease: float = 5.0) -> Claim:
    claim = backend.claim(WorkSpec(names=(name,), lease_seconds=lease))
    assert claim is not None, f"expected a job of {name!r} to claim"
    return claim


def _seen(jobs: list[Job]) -> list[tuple[str, JobState, int]]:
    return [(job.id, job.state, job.stalls) for job in jobs]


class StallContract(ContractBase):
    """Contract tests of maintenance and reported stalls (see the module docstring)."""

    # -- expired leases recovered by maintenance ---------------------------------------------------

    def test_recover_expired_returns_jobs_to_waiting(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        self._claim(backend, "a", lease=5)
        assert backend.recover_expired() == []
        clock.advance(6)
        assert [j.id for j in backend.recover_expired()] == [job.id]
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.WAITING and stored.stalls == 1

    def test_too_many_stalls_fail_the_job(
        self, open_backend: OpenBackend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend = open_backend(max_stalls=1)
        job = backend.submit(new_job())
        self._claim(backend, "a", lease=5)
        clock.advance(6)
        backend.maintain()
        self._claim(backend, "a", lease=5)
        clock.advance(6)
        backend.maintain()
        assert backend.claim(spec("a")) is None
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.FAILED
        assert stored.error is not None and stored.error.type == "StalledJobError"
        assert "stalled" in stored.error.message

    def test_cancelled_job_whose_holder_died_ends_cancelled(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job(attempts=3))
        assert backend.claim(spec("a", lease=5)) is not None
        backend.cancel(job.id)
        clock.advance(10)
        backend.maintain()
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.CANCELLED
        assert backend.claim(spec("a")) is None

    def test_history_records_stalls_and_is_bounded(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job(attempts=MAX_HISTORY + 5))
        claim = backend.claim(spec("a", lease=5, dispatcher="gone"))
        assert claim is not None
        clock.advance(10)
        backend.maintain()
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.WAITING and stored.stalls == 1
        assert [(a.outcome, a.dispatcher) for a in stored.history] == [
            (AttemptOutcome.STALLED, "gone")
        ]
        for _ in range(MAX_HISTORY + 2):
            again = backend.claim(spec("a"))
            assert again is not None
            backend.fail(job.id, again.token, ERROR, clock())
        stored = backend.get(job.id)
        assert stored is not None and len(stored.history) == MAX_HISTORY
        assert all(a.outcome is AttemptOutcome.RETRIED for a in stored.history)

    # -- each recovery reported once ---------------------------------------------------------------

    def test_maintain_returns_the_jobs_it_recovered(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
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
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        _take(backend)
        assert backend.recover_expired() == []
        clock.advance(6)
        assert _seen(backend.recover_expired()) == [(job.id, JobState.WAITING, 1)]
        assert backend.recover_expired() == []
        assert backend.maintain() == []

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

    # -- retention ---------------------------------------------------------------------------------

    def _finish(self, backend: Engine, new_job: MakeJob, *, fail: bool = False) -> str:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a")
        if fail:
            backend.fail(job.id, claim.token, JobError("E", "x"), None)
        else:
            backend.complete(job.id, claim.token, None, None)
        return job.id

    def test_retention_by_count(
        self, open_backend: OpenBackend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend = open_backend(retention=Retention(completed_count=3, failed_count=2))
        done = []
        for _ in range(6):
            clock.advance(1)
            done.append(self._finish(backend, new_job))
        failed = []
        for _ in range(4):
            clock.advance(1)
            failed.append(self._finish(backend, new_job, fail=True))
        backend.maintain()
        assert [j.id for j in backend.list_jobs(JobState.COMPLETED)] == done[:-4:-1]
        assert [j.id for j in backend.list_jobs(JobState.FAILED)] == failed[:-3:-1]
        assert backend.get(done[0]) is None and backend.get(failed[0]) is None

    def test_retention_by_age(
        self, open_backend: OpenBackend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend = open_backend(retention=Retention(completed_seconds=60, failed_seconds=600))
        old_done = self._finish(backend, new_job)
        old_failed = self._finish(backend, new_job, fail=True)
        clock.advance(61)
        new_done = self._finish(backend, new_job)
        backend.maintain()
        assert backend.get(old_done) is None
        assert backend.get(new_done) is not None
        assert backend.get(old_failed) is not None
        clock.advance(600)
        backend.maintain()
        assert backend.get(old_failed) is None
        assert backend.count_by_state()[JobState.FAILED] == 0
