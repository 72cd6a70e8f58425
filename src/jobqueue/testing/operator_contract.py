"""The operator's part of the contract: what a dashboard reads and does beyond the control
plane -- lease deadlines on reads, running a delayed job now, cancelling in bulk, and the
per-minute outcome counts behind throughput charts. Mixed into ``BackendContract``; uses its
fixtures (``backend``, ``open_backend``, ``new_job``, ``clock``)."""

from __future__ import annotations

import threading

import pytest

from jobqueue import lifecycle
from jobqueue.backend import (
    Backend,
    BatchBackend,
    Claim,
    DispatcherInfo,
    LeaseStatus,
    Outcome,
    Retention,
    WorkSpec,
)
from jobqueue.errors import JobStateError
from jobqueue.job import Job, JobError, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.fixture_types import MakeJob, OpenBackend

ERROR = JobError("ValueError", "boom", "Traceback ...")


def _spec(*names: str, lease: float = 30.0) -> WorkSpec:
    return WorkSpec(names=names, lease_seconds=lease)


def _read(backend: Backend, job_id: str) -> Job:
    job = backend.get(job_id)
    assert job is not None, f"job {job_id} is gone"
    return job


class OperatorContract:
    """Contract tests of the operator's reads and bulk steering (see the module docstring)."""

    # -- lease deadlines on reads -------------------------------------------------------------

    def test_reads_show_the_lease_deadline_of_active_jobs(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        first = backend.submit(new_job(unique_key="k"))
        waiting = backend.submit(new_job())
        assert _read(backend, first.id).lease_expires_at is None
        claim = backend.claim(_spec("a", lease=10))
        assert claim is not None and claim.job.id == first.id
        assert claim.job.lease_expires_at == clock() + 10
        assert _read(backend, first.id).lease_expires_at == clock() + 10
        clock.advance(4)
        assert backend.renew(first.id, claim.token, 10)
        renewed = clock() + 10
        assert _read(backend, first.id).lease_expires_at == renewed
        assert [j.lease_expires_at for j in backend.list_jobs(JobState.ACTIVE)] == [renewed]
        assert [j.lease_expires_at for j in backend.list_jobs(JobState.WAITING)] == [None]
        held = backend.submit(new_job(unique_key="k"))  # the live job holding the key
        assert held.id == first.id and held.lease_expires_at == renewed
        as_dict = _read(backend, first.id).to_dict()
        assert as_dict["lease_expires_at"] == renewed
        assert Job.from_dict(as_dict).lease_expires_at == renewed
        clock.advance(20)  # expired, not yet recovered: a read still shows the old deadline
        assert _read(backend, first.id).lease_expires_at == renewed
        backend.maintain()
        assert _read(backend, first.id).lease_expires_at is None  # back to waiting
        claim = backend.claim(_spec("a", lease=10))
        assert claim is not None
        backend.complete(claim.job.id, claim.token, None, None)
        assert _read(backend, claim.job.id).lease_expires_at is None
        assert _read(backend, waiting.id).lease_expires_at is None

    # -- running a delayed job now ------------------------------------------------------------

    def test_promote_runs_a_delayed_job_now(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        ahead = backend.submit(new_job(data="ahead"))
        later = backend.submit(new_job(data="later", run_at=clock() + 3600))
        other = backend.submit(new_job(data="other", run_at=clock() + 3600))
        clock.advance(5)
        promoted = backend.promote(later.id)
        assert promoted is not None and promoted.id == later.id
        assert promoted.state is JobState.WAITING and promoted.run_at == clock()
        assert _read(backend, later.id).state is JobState.WAITING
        assert backend.count_by_state()[JobState.DELAYED] == 1
        # At the end of the line, as a job coming due would be: after what already waited.
        first = backend.claim(_spec("a"))
        second = backend.claim(_spec("a"))
        assert first is not None and second is not None
        assert (first.job.id, second.job.id) == (ahead.id, later.id)
        assert backend.claim(_spec("a")) is None  # the other delayed job still waits
        assert _read(backend, other.id).state is JobState.DELAYED
        for claim in (first, second):
            backend.complete(claim.job.id, claim.token, None, None)
        clock.advance(3600)  # its old due time passes: nothing left over runs it twice
        backend.maintain()
        third = backend.claim(_spec("a"))
        assert third is not None and third.job.id == other.id
        assert backend.claim(_spec("a")) is None

    def test_promote_refuses_jobs_that_are_not_delayed(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        waiting = backend.submit(new_job())
        with pytest.raises(JobStateError, match="delayed"):
            backend.promote(waiting.id)
        claim = backend.claim(_spec("a"))
        assert claim is not None
        with pytest.raises(JobStateError):
            backend.promote(waiting.id)
        backend.complete(waiting.id, claim.token, None, None)
        with pytest.raises(JobStateError):
            backend.promote(waiting.id)
        assert _read(backend, waiting.id).state is JobState.COMPLETED
        assert backend.promote("999999") is None

    def test_promote_wakes_an_idle_waiter(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job(run_at=clock() + 3600))
        woke: list[bool] = []
        about_to_block = clock.read_elsewhere()  # the waiter reads "now" to size its wait
        waiter = threading.Thread(target=lambda: woke.append(backend.wait_for_work(["a"], 30)))
        waiter.start()
        assert about_to_block.wait(10), "wait_for_work never looked at the clock"
        assert backend.promote(job.id) is not None
        waiter.join(20)  # well under its 30 s: only a wake-up ends it in time
        assert not waiter.is_alive() and woke == [True], "promote did not wake the waiter"

    # -- cancelling in bulk -------------------------------------------------------------------

    def test_cancel_many_waiting_and_delayed_jobs(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        a1 = backend.submit(new_job("a", unique_key="k"))
        a2 = backend.submit(new_job("a", priority=5))
        b1 = backend.submit(new_job("b"))
        d1 = backend.submit(new_job("a", run_at=clock() + 60))
        d2 = backend.submit(new_job("b", run_at=clock() + 30))
        assert backend.cancel_many(JobState.WAITING, "a") == 2
        for job in (a1, a2):
            stored = _read(backend, job.id)
            assert stored.state is JobState.CANCELLED and stored.finished_at == clock()
        assert _read(backend, b1.id).state is JobState.WAITING
        assert backend.submit(new_job("a", unique_key="k")).id != a1.id  # the key is free
        assert backend.cancel_many(JobState.DELAYED) == 2
        assert {_read(backend, j.id).state for j in (d1, d2)} == {JobState.CANCELLED}
        clock.advance(120)
        backend.maintain()  # their due times pass: nothing of them comes back
        assert backend.cancel_many(JobState.DELAYED) == 0
        assert backend.cancel_many(JobState.WAITING) == 2  # b1 and the new "k"
        assert backend.claim(_spec("a", "b")) is None
        assert backend.count_by_state()[JobState.CANCELLED] == 6
        for finished in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED):
            assert backend.cancel_many(finished) == 0
        assert backend.count_by_state()[JobState.CANCELLED] == 6

    def test_cancel_many_active_jobs_asks_their_holders(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        jobs = [backend.submit(new_job(name)) for name in ("a", "a", "b")]
        claims = [backend.claim(_spec(job.name)) for job in jobs]
        assert all(claims)
        assert backend.cancel(jobs[0].id) is JobState.ACTIVE  # asked once already
        assert backend.cancel_many(JobState.ACTIVE, "a") == 1
        assert backend.cancel_many(JobState.ACTIVE) == 1
        assert backend.cancel_many(JobState.ACTIVE) == 0
        for job in jobs:
            stored = _read(backend, job.id)
            assert stored.state is JobState.ACTIVE and stored.cancel_requested
        info = DispatcherInfo("d1", "host", 1, ("a", "b"), 3, clock())
        leases = [(c.job.id, c.token) for c in claims if c is not None]
        assert backend.heartbeat(info, leases, 30) == [LeaseStatus.CANCEL] * 3
        first = claims[0]
        assert first is not None
        assert backend.finish_cancelled(first.job.id, first.token, None)
        assert _read(backend, first.job.id).state is JobState.CANCELLED

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
        assert _read(backend, other.id).state is JobState.CANCELLED
        assert _read(backend, low.id).state is JobState.CANCELLED
        assert backend.get(high.id) is None  # the first in line was the first cancelled
        late = backend.submit(new_job("a", data="late", run_at=clock() + 20))
        # Twelve due at once (ids past 9, should a store order ties by id text): by submission.
        tied = [backend.submit(new_job("b", data=i, run_at=clock() + 10)) for i in range(12)]
        backend.cancel_many(JobState.DELAYED)
        backend.maintain()
        kept = {job.id for job in backend.list_jobs(JobState.CANCELLED)}
        assert kept == {tied[-1].id, late.id}

    def test_cancel_many_more_than_a_batch(self, backend: Backend, new_job: MakeJob) -> None:
        backend.submit_many([new_job("a", data=i, priority=i % 3) for i in range(2100)])
        backend.submit_many([new_job("b", data=i) for i in range(5)])
        assert backend.cancel_many(JobState.WAITING, "a") == 2100
        counts = backend.count_by_state()
        assert (counts[JobState.WAITING], counts[JobState.CANCELLED]) == (5, 2100)
        claim = backend.claim(_spec("a", "b"))
        assert claim is not None and claim.job.name == "b"

    # -- outcome counts per minute ------------------------------------------------------------

    def _take(self, backend: Backend, name: str, lease: float = 30.0) -> Claim:
        claim = backend.claim(_spec(name, lease=lease))
        assert claim is not None, f"expected a job of {name!r} to claim"
        return claim

    def test_outcome_counts_count_every_finished_attempt_by_minute(
        self, open_backend: OpenBackend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend = open_backend(max_stalls=1)
        minute = lifecycle.outcome_minute(clock())
        assert backend.outcome_counts(0) == {}
        for _ in range(4):
            backend.submit(new_job("a", attempts=3))
        claim = self._take(backend, "a")
        backend.complete(claim.job.id, claim.token, "ok", None)
        claim = self._take(backend, "a")
        backend.fail(claim.job.id, claim.token, ERROR, None)
        claim = self._take(backend, "a")
        backend.fail(claim.job.id, claim.token, ERROR, clock() + 3600)
        claim = self._take(backend, "a")
        backend.cancel(claim.job.id)
        assert backend.fail(claim.job.id, claim.token, ERROR, clock()) is JobState.CANCELLED
        one_of_each = {"completed": 1, "failed": 1, "retried": 1, "cancelled": 1}
        assert backend.outcome_counts(minute) == {minute: one_of_each}

        clock.advance(60)  # the next minute: releases, cancels and the holder's own stop
        released = backend.submit(new_job("b"))
        claim = self._take(backend, "b")
        assert backend.release(released.id, claim.token)  # handed back: no attempt ended
        claim = self._take(backend, "b")
        backend.cancel(released.id)
        assert backend.release(released.id, claim.token)  # asked to stop: ends cancelled
        asked = backend.submit(new_job("b"))
        claim = self._take(backend, "b")
        backend.cancel(asked.id)
        assert backend.finish_cancelled(asked.id, claim.token, None)
        backend.cancel(backend.submit(new_job("b")).id)  # waiting: no attempt ended
        backend.submit(new_job("b", run_at=clock() + 60))
        assert backend.cancel_many(JobState.DELAYED, "b") == 1
        assert backend.outcome_counts(minute + 1) == {minute + 1: {"cancelled": 2}}

        clock.advance(60)  # and expired leases: requeued, stalled too often, cancelled
        stalling = backend.submit(new_job("s"))
        self._take(backend, "s", lease=5)
        clock.advance(10)
        backend.maintain()
        self._take(backend, "s", lease=5)
        clock.advance(10)
        backend.maintain()
        assert _read(backend, stalling.id).state is JobState.FAILED
        asked_then_lost = backend.submit(new_job("s"))
        self._take(backend, "s", lease=5)
        backend.cancel(asked_then_lost.id)
        clock.advance(10)
        assert [j.id for j in backend.recover_expired()] == [asked_then_lost.id]
        assert _read(backend, asked_then_lost.id).state is JobState.CANCELLED
        assert backend.outcome_counts(0) == {
            minute: one_of_each,
            minute + 1: {"cancelled": 2},
            minute + 2: {"retried": 1, "failed": 1, "cancelled": 1},
        }
        assert list(backend.outcome_counts(minute + 2)) == [minute + 2]
        assert backend.outcome_counts(minute + 3) == {}
        assert backend.outcome_counts(0) == backend.outcome_counts(0)  # a read writes nothing

    def test_outcome_counts_of_a_batch(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        if not isinstance(backend, BatchBackend):
            pytest.skip("this backend does not offer the optional BatchBackend methods")
        minute = lifecycle.outcome_minute(clock())
        backend.submit_many([new_job("a", attempts=2) for _ in range(5)])
        claims = backend.claim_many(_spec("a"), 4)
        outcomes = [
            Outcome(claims[0].job.id, claims[0].token, result=1),
            Outcome(claims[1].job.id, claims[1].token, result=2),
            Outcome(claims[2].job.id, claims[2].token, error=ERROR),
            Outcome(claims[3].job.id, claims[3].token, error=ERROR, retry_at=clock()),
            Outcome(claims[3].job.id, "stale-token", result=3),  # refused: counts nothing
        ]
        states, more = backend.finish_many(outcomes, _spec("a"), 2)
        assert states[:4] == [JobState.COMPLETED] * 2 + [JobState.FAILED, JobState.WAITING]
        assert len(more) == 2
        assert backend.outcome_counts(minute) == {
            minute: {"completed": 2, "failed": 1, "retried": 1}
        }

    def test_outcome_counts_keep_a_day_and_an_hour(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        first = lifecycle.outcome_minute(clock())
        for _ in range(2):
            backend.submit(new_job())
        claim = self._take(backend, "a")
        backend.complete(claim.job.id, claim.token, None, None)
        clock.advance(60 * (lifecycle.OUTCOME_MINUTES_KEPT - 1))  # the last minute it is kept
        last = lifecycle.outcome_minute(clock())
        assert last == first + lifecycle.OUTCOME_MINUTES_KEPT - 1
        assert backend.outcome_counts(0) == {first: {"completed": 1}}
        claim = self._take(backend, "a")
        backend.complete(claim.job.id, claim.token, None, None)
        clock.advance(60)  # the first minute is past keeping: never read back again
        assert backend.outcome_counts(0) == {last: {"completed": 1}}
        backend.maintain()  # and storage lets it go
        assert backend.outcome_counts(first) == {last: {"completed": 1}}
