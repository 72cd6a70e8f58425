"""Counts: the per-minute outcome counts behind throughput charts (counted by the moves
themselves, a day and an hour kept) and the counts by name and state.
"""

from __future__ import annotations

from jobqueue import lifecycle
from jobqueue.backend import Claim, Outcome, Retention
from jobqueue.engine import Engine
from jobqueue.job import JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.support import (
    ERROR,
    ContractBase,
    MakeJob,
    OpenBackend,
    name_counts,
    read,
    spec,
)


class OutcomeContract(ContractBase):
    """Contract tests of the counts (see the module docstring)."""

    # -- outcome counts per minute -----------------------------------------------------------------

    def _take(self, backend: Engine, name: str, lease: float = 30.0) -> Claim:
        claim = backend.claim(spec(name, lease=lease))
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
        assert read(backend, stalling.id).state is JobState.FAILED
        asked_then_lost = backend.submit(new_job("s"))
        self._take(backend, "s", lease=5)
        backend.cancel(asked_then_lost.id)
        clock.advance(10)
        assert [j.id for j in backend.recover_expired()] == [asked_then_lost.id]
        assert read(backend, asked_then_lost.id).state is JobState.CANCELLED
        assert backend.outcome_counts(0) == {
            minute: one_of_each,
            minute + 1: {"cancelled": 2},
            minute + 2: {"retried": 1, "failed": 1, "cancelled": 1},
        }
        assert list(backend.outcome_counts(minute + 2)) == [minute + 2]
        assert backend.outcome_counts(minute + 3) == {}
        assert backend.outcome_counts(0) == backend.outcome_counts(0)  # a read writes nothing

    def test_outcome_counts_of_a_batch(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        minute = lifecycle.outcome_minute(clock())
        backend.submit_many([new_job("a", attempts=2) for _ in range(5)])
        claims = backend.claim_many(spec("a"), 4)
        outcomes = [
            Outcome(claims[0].job.id, claims[0].token, result=1),
            Outcome(claims[1].job.id, claims[1].token, result=2),
            Outcome(claims[2].job.id, claims[2].token, error=ERROR),
            Outcome(claims[3].job.id, claims[3].token, error=ERROR, retry_at=clock()),
            Outcome(claims[3].job.id, "stale-token", result=3),  # refused: counts nothing
        ]
        states, more = backend.finish_many(outcomes, spec("a"), 2)
        assert states[:4] == [JobState.COMPLETED] * 2 + [JobState.FAILED, JobState.WAITING]
        assert len(more) == 2
        assert backend.outcome_counts(minute) == {
            minute: {"completed": 2, "failed": 1, "retried": 1}
        }

    def test_outcome_counts_keep_a_day_and_an_hour(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
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

    # -- counts by name ----------------------------------------------------------------------------

    def test_count_by_name_follows_every_transition(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        assert backend.count_by_name() == {}
        a1 = backend.submit(new_job("a", attempts=3))
        a2 = backend.submit(new_job("a"))
        b1 = backend.submit(new_job("b", run_at=clock() + 60))
        assert backend.count_by_name() == {"a": name_counts(waiting=2), "b": name_counts(delayed=1)}
        claim = backend.claim(spec("a"))
        assert claim is not None and claim.job.id == a1.id
        assert backend.count_by_name()["a"] == name_counts(waiting=1, active=1)
        backend.fail(a1.id, claim.token, ERROR, clock() + 30)  # retried later: delayed
        assert backend.count_by_name()["a"] == name_counts(waiting=1, delayed=1)
        claim = backend.claim(spec("a"))
        assert claim is not None and claim.job.id == a2.id
        backend.complete(a2.id, claim.token, "ok", None)
        assert backend.count_by_name()["a"] == name_counts(delayed=1, completed=1)
        clock.advance(30)
        claim = backend.claim(spec("a"))  # promotes a1, then takes it
        assert claim is not None and claim.job.id == a1.id
        backend.fail(a1.id, claim.token, ERROR, None)  # for good
        assert backend.count_by_name()["a"] == name_counts(completed=1, failed=1)
        assert backend.cancel(b1.id) is JobState.CANCELLED
        assert backend.count_by_name()["b"] == name_counts(cancelled=1)
        assert backend.retry(b1.id) is not None
        assert backend.count_by_name()["b"] == name_counts(waiting=1)
        assert backend.retry(a1.id) is not None
        assert backend.count_by_name()["a"] == name_counts(waiting=1, completed=1)
        assert backend.purge(JobState.COMPLETED) == 1
        assert backend.count_by_name() == {"a": name_counts(waiting=1), "b": name_counts(waiting=1)}
        assert backend.remove(b1.id)
        assert backend.count_by_name() == {"a": name_counts(waiting=1)}
        assert backend.remove(a1.id)
        assert backend.count_by_name() == {}  # a name without jobs is left out

    def test_count_by_name_after_stalls_and_retention(
        self, open_backend: OpenBackend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend = open_backend(retention=Retention(completed_count=1), max_stalls=1)
        for _ in range(3):
            job = backend.submit(new_job("a"))
            claim = backend.claim(spec("a"))
            assert claim is not None
            backend.complete(job.id, claim.token, None, None)
        backend.maintain()  # retention keeps the newest completed job only
        assert backend.count_by_name() == {"a": name_counts(completed=1)}
        stalled = backend.submit(new_job("s"))
        assert backend.claim(spec("s", lease=5)) is not None
        clock.advance(10)
        assert [j.id for j in backend.maintain()] == [stalled.id]  # back to waiting, a stall
        assert backend.count_by_name()["s"] == name_counts(waiting=1)
        assert backend.claim(spec("s", lease=5)) is not None
        clock.advance(10)
        backend.maintain()  # past max_stalls: failed
        assert backend.count_by_name()["s"] == name_counts(failed=1)
        cancelled = backend.submit(new_job("s"))
        assert backend.claim(spec("s", lease=5)) is not None
        backend.cancel(cancelled.id)
        clock.advance(10)
        backend.maintain()  # a cancel-requested job whose holder died: cancelled
        assert backend.count_by_name()["s"] == name_counts(failed=1, cancelled=1)
        stored = backend.get(stalled.id)
        assert stored is not None and stored.state is JobState.FAILED
