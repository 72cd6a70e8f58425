"""The control plane: cancel (at once, or asked of the holder), operator retry and purge,
running a delayed job now (``promote``) and cancelling in bulk.
"""

from __future__ import annotations

import pytest

from jobqueue.backend import DispatcherInfo, LeaseStatus, Retention
from jobqueue.engine import Engine
from jobqueue.errors import JobStateError, LeaseLostError
from jobqueue.job import AttemptOutcome, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.support import (
    ERROR,
    ContractBase,
    MakeJob,
    OpenBackend,
    dispatcher_info,
    read,
    spec,
)


class ControlContract(ContractBase):
    """Contract tests of the control plane (see the module docstring)."""

    # -- cancel ------------------------------------------------------------------------------------

    def test_cancel_waiting_and_delayed_jobs_at_once(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        waiting = backend.submit(new_job(unique_key="k1"))
        delayed = backend.submit(new_job(run_at=clock() + 60))
        assert backend.cancel(waiting.id) is JobState.CANCELLED
        assert backend.cancel(delayed.id) is JobState.CANCELLED
        stored = backend.get(waiting.id)
        assert stored is not None and stored.state is JobState.CANCELLED
        assert stored.finished_at == clock()
        assert backend.claim(spec("a")) is None
        clock.advance(120)
        assert backend.claim(spec("a")) is None  # the delayed one does not come due
        assert backend.count_by_state()[JobState.CANCELLED] == 2
        assert backend.submit(new_job(unique_key="k1")).id != waiting.id  # key freed
        assert backend.cancel("999999") is None

    def test_cancel_finished_job_changes_nothing(self, backend: Engine, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        claim = backend.claim(spec("a"))
        assert claim is not None
        backend.complete(job.id, claim.token, "r", None)
        assert backend.cancel(job.id) is JobState.COMPLETED
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.COMPLETED and stored.result == "r"

    def test_cancel_active_job_reaches_its_holder(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        claim = backend.claim(spec("a", dispatcher="d1"))
        assert claim is not None
        info = dispatcher_info(clock)
        assert backend.heartbeat(info, [(job.id, claim.token)], 30) == [LeaseStatus.HELD]
        assert backend.cancel(job.id) is JobState.ACTIVE
        stored = backend.get(job.id)
        assert stored is not None and stored.cancel_requested and stored.state is JobState.ACTIVE
        assert backend.heartbeat(info, [(job.id, claim.token)], 30) == [LeaseStatus.CANCEL]
        assert backend.finish_cancelled(job.id, claim.token, None)
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.CANCELLED
        assert [a.outcome for a in stored.history] == [AttemptOutcome.CANCELLED]
        assert stored.history[0].dispatcher == "d1"
        # A repeat with the same token reports the stored outcome (idempotent per token).
        assert backend.finish_cancelled(job.id, claim.token, None)
        with pytest.raises(LeaseLostError):  # a late outcome never overwrites a cancel
            backend.complete(job.id, claim.token, "late", None)
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.CANCELLED and stored.result is None

    def test_completion_before_the_cancel_is_delivered_keeps_the_result(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        job = backend.submit(new_job())
        claim = backend.claim(spec("a"))
        assert claim is not None
        backend.cancel(job.id)
        backend.complete(job.id, claim.token, "done", None)
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.COMPLETED and stored.result == "done"

    def test_failure_of_a_cancelled_job_is_not_retried(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job(attempts=3))
        claim = backend.claim(spec("a"))
        assert claim is not None
        backend.cancel(job.id)
        assert backend.fail(job.id, claim.token, ERROR, clock()) is JobState.CANCELLED
        assert backend.claim(spec("a")) is None

    # -- retry and purge ---------------------------------------------------------------------------

    def test_retry_failed_job_keeps_its_history(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job(attempts=1))
        claim = backend.claim(spec("a", dispatcher="d1"))
        assert claim is not None
        backend.fail(job.id, claim.token, ERROR, None)
        retried = backend.retry(job.id)
        assert retried is not None and retried.state is JobState.WAITING
        assert (retried.attempts_made, retried.stalls, retried.finished_at) == (0, 0, None)
        assert retried.error == ERROR  # the last error stays readable
        again = backend.claim(spec("a", dispatcher="d2"))
        assert again is not None and again.job.id == job.id and again.job.attempts_made == 1
        backend.complete(job.id, again.token, "ok", None)
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.COMPLETED
        assert [(a.outcome, a.dispatcher) for a in stored.history] == [
            (AttemptOutcome.FAILED, "d1"),
            (AttemptOutcome.COMPLETED, "d2"),
        ]
        assert stored.history[0].error == ERROR and stored.history[1].error is None

    def test_retry_refuses_unfinished_jobs(self, backend: Engine, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        with pytest.raises(JobStateError):
            backend.retry(job.id)
        assert backend.retry("999999") is None

    def test_retry_of_a_cancelled_job(self, backend: Engine, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        backend.cancel(job.id)
        retried = backend.retry(job.id)
        assert retried is not None and retried.state is JobState.WAITING
        claim = backend.claim(spec("a"))
        assert claim is not None and claim.job.id == job.id

    def test_retry_many_by_state_and_name(self, backend: Engine, new_job: MakeJob) -> None:
        for name in ("a", "a", "b"):
            job = backend.submit(new_job(name))
            claim = backend.claim(spec(name))
            assert claim is not None
            backend.fail(job.id, claim.token, ERROR, None)
        assert backend.retry_many(JobState.FAILED, "b") == 1
        assert backend.count_by_state()[JobState.FAILED] == 2
        assert backend.retry_many(JobState.FAILED) == 2
        assert backend.count_by_state()[JobState.WAITING] == 3

    def test_purge_by_state_name_and_age(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        old = backend.submit(new_job("a"))
        backend.cancel(old.id)
        clock.advance(100)
        young = backend.submit(new_job("a"))
        backend.cancel(young.id)
        other = backend.submit(new_job("b"))
        backend.cancel(other.id)
        waiting = backend.submit(new_job("a"))
        assert backend.purge(JobState.CANCELLED, "a", finished_before=clock() - 50) == 1
        assert backend.get(old.id) is None and backend.get(young.id) is not None
        assert backend.purge(JobState.CANCELLED, "a") == 1
        assert backend.purge(JobState.CANCELLED) == 1
        assert backend.purge(JobState.COMPLETED) == 0
        assert backend.get(waiting.id) is not None
        assert backend.count_by_state()[JobState.CANCELLED] == 0

    # -- running a delayed job now -----------------------------------------------------------------

    def test_promote_runs_a_delayed_job_now(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        ahead = backend.submit(new_job(data="ahead"))
        later = backend.submit(new_job(data="later", run_at=clock() + 3600))
        other = backend.submit(new_job(data="other", run_at=clock() + 3600))
        clock.advance(5)
        promoted = backend.promote(later.id)
        assert promoted is not None and promoted.id == later.id
        assert promoted.state is JobState.WAITING and promoted.run_at == clock()
        assert read(backend, later.id).state is JobState.WAITING
        assert backend.count_by_state()[JobState.DELAYED] == 1
        # At the end of the line, as a job coming due would be: after what already waited.
        first = backend.claim(spec("a"))
        second = backend.claim(spec("a"))
        assert first is not None and second is not None
        assert (first.job.id, second.job.id) == (ahead.id, later.id)
        assert backend.claim(spec("a")) is None  # the other delayed job still waits
        assert read(backend, other.id).state is JobState.DELAYED
        for claim in (first, second):
            backend.complete(claim.job.id, claim.token, None, None)
        clock.advance(3600)  # its old due time passes: nothing left over runs it twice
        backend.maintain()
        third = backend.claim(spec("a"))
        assert third is not None and third.job.id == other.id
        assert backend.claim(spec("a")) is None

    def test_promote_refuses_jobs_that_are_not_delayed(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        waiting = backend.submit(new_job())
        with pytest.raises(JobStateError, match="delayed"):
            backend.promote(waiting.id)
        claim = backend.claim(spec("a"))
        assert claim is not None
        with pytest.raises(JobStateError):
            backend.promote(waiting.id)
        backend.complete(waiting.id, claim.token, None, None)
        with pytest.raises(JobStateError):
            backend.promote(waiting.id)
        assert read(backend, waiting.id).state is JobState.COMPLETED
        assert backend.promote("999999") is None

    # -- cancelling in bulk ------------------------------------------------------------------------

    def test_cancel_many_waiting_and_delayed_jobs(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        a1 = backend.submit(new_job("a", unique_key="k"))
        a2 = backend.submit(new_job("a", priority=5))
        b1 = backend.submit(new_job("b"))
        d1 = backend.submit(new_job("a", run_at=clock() + 60))
        d2 = backend.submit(new_job("b", run_at=clock() + 30))
        assert backend.cancel_many(JobState.WAITING, "a") == 2
        for job in (a1, a2):
            stored = read(backend, job.id)
            assert stored.state is JobState.CANCELLED and stored.finished_at == clock()
        assert read(backend, b1.id).state is JobState.WAITING
        assert backend.submit(new_job("a", unique_key="k")).id != a1.id  # the key is free
        assert backend.cancel_many(JobState.DELAYED) == 2
        assert {read(backend, j.id).state for j in (d1, d2)} == {JobState.CANCELLED}
        clock.advance(120)
        backend.maintain()  # their due times pass: nothing of them comes back
        assert backend.cancel_many(JobState.DELAYED) == 0
        assert backend.cancel_many(JobState.WAITING) == 2  # b1 and the new "k"
        assert backend.claim(spec("a", "b")) is None
        assert backend.count_by_state()[JobState.CANCELLED] == 6
        for finished in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED):
            assert backend.cancel_many(finished) == 0
        assert backend.count_by_state()[JobState.CANCELLED] == 6

    def test_cancel_many_active_jobs_asks_their_holders(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        jobs = [backend.submit(new_job(name)) for name in ("a", "a", "b")]
        claims = [backend.claim(spec(job.name)) for job in jobs]
        assert all(claims)
        assert backend.cancel(jobs[0].id) is JobState.ACTIVE  # asked once already
        assert backend.cancel_many(JobState.ACTIVE, "a") == 1
        assert backend.cancel_many(JobState.ACTIVE) == 1
        assert backend.cancel_many(JobState.ACTIVE) == 0
        for job in jobs:
            stored = read(backend, job.id)
            assert stored.state is JobState.ACTIVE and stored.cancel_requested
        info = DispatcherInfo("d1", "host", 1, ("a", "b"), 3, clock())
        leases = [(c.job.id, c.token) for c in claims if c is not None]
        assert backend.heartbeat(info, leases, 30) == [LeaseStatus.CANCEL] * 3
        first = claims[0]
        assert first is not None
        assert backend.finish_cancelled(first.job.id, first.token, None)
        assert read(backend, first.job.id).state is JobState.CANCELLED

    def test_cancel_many_goes_in_the_order_jobs_would_run(
        self, open_backend: OpenBackend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        """Cancelled in run order, so retention (oldest-finished first) keeps the last."""
        backend = open_backend(retention=Retention(cancelled_count=2))
        low = backend.submit(new_job("a", data="low"))
        high = backend.submit(new_job("a", data="high", priority=3))
        other = backend.submit(new_job("b", data="b"))
        backend.cancel_many(JobState.WAITING)
        backend.maintain()
        assert read(backend, other.id).state is JobState.CANCELLED
        assert read(backend, low.id).state is JobState.CANCELLED
        assert backend.get(high.id) is None  # the first in line was the first cancelled
        late = backend.submit(new_job("a", data="late", run_at=clock() + 20))
        # Twelve due at once (ids past 9, should a store order ties by id text): by submission.
        tied = [backend.submit(new_job("b", data=i, run_at=clock() + 10)) for i in range(12)]
        backend.cancel_many(JobState.DELAYED)
        backend.maintain()
        kept = {job.id for job in backend.list_jobs(JobState.CANCELLED)}
        assert kept == {tied[-1].id, late.id}

    def test_cancel_many_more_than_a_batch(self, backend: Engine, new_job: MakeJob) -> None:
        backend.submit_many([new_job("a", data=i, priority=i % 3) for i in range(2100)])
        backend.submit_many([new_job("b", data=i) for i in range(5)])
        assert backend.cancel_many(JobState.WAITING, "a") == 2100
        counts = backend.count_by_state()
        assert (counts[JobState.WAITING], counts[JobState.CANCELLED]) == (5, 2100)
        claim = backend.claim(spec("a", "b"))
        assert claim is not None and claim.job.name == "b"
