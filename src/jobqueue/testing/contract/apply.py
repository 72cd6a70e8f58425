"""The storage seam itself, on the raw store (no ``Engine``): the one guarded write
(``apply``: guards, conflicts, what a written change moves, the claim in the same step) and
the primitives the core builds its verbs on (``scan``, ``expired``, ``delete``,
``housekeep``, ``annotate``, ``heartbeat`` without a dispatcher)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobqueue.backend import Backend, BackendOptions, Claim, Retention
from jobqueue.changes import Change, ClaimAsk, Conflict, Ended, Expired, Held, InState, Selector
from jobqueue.job import AttemptOutcome, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.support import ERROR, ContractBase, MakeJob, spec

_WAITING = frozenset({JobState.WAITING})
_RETRIABLE = frozenset({JobState.FAILED, JobState.CANCELLED})


def _done(job_id: str, token: str, **guard: bool) -> Change:
    return Change(
        job_id,
        Held(token, **guard),
        JobState.COMPLETED,
        set={"result": "ok"},
        ended=Ended(AttemptOutcome.COMPLETED),
        ends_lease="complete",
        counts_as=AttemptOutcome.COMPLETED,
    )


class ApplyContract(ContractBase):
    """Contract tests of the storage seam on the store itself (see the module docstring)."""

    @pytest.fixture
    def store(self, clock: ManualClock) -> Iterator[Backend]:
        made = self.make_backend(BackendOptions(clock=clock))
        assert isinstance(made, Backend), "make_backend must return a store on the seam"
        yield made
        self.dispose_backend(made)

    def _take_from(self, store: Backend, name: str = "a", lease: float = 30.0) -> Claim:
        claims = store.claim_many(spec(name, lease=lease, dispatcher="d1"), 1)
        assert len(claims) == 1, f"expected a job of {name!r} to claim"
        return claims[0]

    # -- guards ---------------------------------------------------------------------------

    def test_a_held_change_is_written_once(
        self, store: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = store.insert([new_job()])[0]
        claim = self._take_from(store)
        clock.advance(2)
        assert store.apply([_done(job.id, claim.token)]) == ([None], [])
        done = store.get(job.id)
        assert done is not None and done.state is JobState.COMPLETED and done.result == "ok"
        assert done.finished_at == clock() and done.dispatcher is None
        [attempt] = done.history
        assert (attempt.number, attempt.dispatcher, attempt.outcome) == (
            1,
            "d1",
            AttemptOutcome.COMPLETED,
        )
        assert (attempt.started_at, attempt.finished_at) == (clock() - 2, clock())
        minute = int(clock() // 60)
        assert store.outcome_counts(minute) == {minute: {"completed": 1}}
        # The same change again: the token ended the lease with "complete".
        (conflict,), _ = store.apply([_done(job.id, claim.token)])
        assert conflict == Conflict(JobState.COMPLETED, ended_by="complete")

    def test_a_guard_that_fails_changes_nothing(
        self, store: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = store.insert([new_job()])[0]
        claim = self._take_from(store, lease=5)
        before = store.get(job.id)
        (wrong,), _ = store.apply([_done(job.id, "not-the-token")])
        assert wrong == Conflict(JobState.ACTIVE)
        (missing,), _ = store.apply([_done("999999", claim.token)])
        assert missing == Conflict(None)
        clock.advance(6)  # expired: no longer held, though nobody recovered it
        (late,), _ = store.apply([_done(job.id, claim.token)])
        assert late is not None and late.state is JobState.ACTIVE and not late.held
        assert store.get(job.id) == before

    def test_the_cancel_flag_the_change_was_decided_for(
        self, store: Backend, new_job: MakeJob
    ) -> None:
        job = store.insert([new_job()])[0]
        claim = self._take_from(store)
        flag = Change(job.id, InState(frozenset({JobState.ACTIVE})), JobState.ACTIVE)
        flagged = Change(flag.job_id, flag.guard, flag.to, set={"cancel_requested": True})
        assert store.apply([flagged]) == ([None], [])
        (conflict,), _ = store.apply([_done(job.id, claim.token, cancel_requested=False)])
        assert conflict == Conflict(JobState.ACTIVE, held=True, cancel_requested=True)
        assert store.apply([_done(job.id, claim.token, cancel_requested=True)])[0] == [None]

    def test_an_expired_guard_waits_for_the_deadline(
        self, store: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = store.insert([new_job()])[0]
        claim = self._take_from(store, lease=5)
        stall = Change(
            job.id,
            Expired(claim.token, cancel_requested=False),
            JobState.WAITING,
            run_at=0.0,
            set={"stalls": 1},
            ended=Ended(AttemptOutcome.STALLED),
            counts_as=AttemptOutcome.RETRIED,
        )
        assert store.expired(10) == []
        (early,), _ = store.apply([stall])
        assert early is not None and early.held
        clock.advance(5)
        [expired] = store.expired(10)
        assert (expired.job.id, expired.token) == (job.id, claim.token)
        assert store.apply([stall]) == ([None], [])
        again = store.get(job.id)
        assert again is not None and again.state is JobState.WAITING and again.stalls == 1
        assert store.expired(10) == []

    def test_a_live_unique_key_refuses_a_new_life(self, store: Backend, new_job: MakeJob) -> None:
        first = store.insert([new_job(unique_key="k")])[0]
        cancel = Change(first.id, InState(frozenset({JobState.WAITING})), JobState.CANCELLED)
        assert store.apply([cancel]) == ([None], [])
        second = store.insert([new_job(unique_key="k")])[0]
        assert second.id != first.id and not second.deduplicated
        retry = Change(first.id, InState(_RETRIABLE), JobState.WAITING, run_at=0.0, fence=True)
        (conflict,), _ = store.apply([retry])
        assert conflict is not None and conflict.unique_holder == second.id
        assert conflict.state is JobState.CANCELLED

    # -- what a written change moves ------------------------------------------------------

    def test_a_delay_and_a_new_place_in_line(
        self, store: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        first, second = store.insert([new_job(), new_job()])
        claim = self._take_from(store)
        assert claim.job.id == first.id
        fail = Change(
            first.id,
            Held(claim.token, cancel_requested=False),
            JobState.DELAYED,
            run_at=10.0,
            set={"error": ERROR},
            ended=Ended(AttemptOutcome.RETRIED, ERROR),
            ends_lease="fail",
            counts_as=AttemptOutcome.RETRIED,
        )
        assert store.apply([fail]) == ([None], [])
        delayed = store.get(first.id)
        assert delayed is not None and delayed.state is JobState.DELAYED
        assert delayed.run_at == clock() + 10 and delayed.error == ERROR
        assert [j.id for j in store.scan(Selector(JobState.DELAYED), 0, 10)] == [first.id]
        clock.advance(10)
        assert store.housekeep() >= 1
        waiting = store.scan(Selector(JobState.WAITING), 0, 10)
        assert [j.id for j in waiting] == [second.id, first.id]  # behind the one queued before

    def test_an_attempt_given_back_is_not_counted(self, store: Backend, new_job: MakeJob) -> None:
        job = store.insert([new_job()])[0]
        claim = self._take_from(store)
        release = Change(
            job.id,
            Held(claim.token, cancel_requested=False),
            JobState.WAITING,
            run_at=0.0,
            ended=Ended(AttemptOutcome.RELEASED, counted=False),
            ends_lease="release",
        )
        assert store.apply([release]) == ([None], [])
        back = store.get(job.id)
        assert back is not None and back.attempts_made == 0
        assert [a.number for a in back.history] == [1]  # recorded as the attempt it ran as

    def test_the_next_claims_come_in_the_same_step(self, store: Backend, new_job: MakeJob) -> None:
        first, *rest = store.insert([new_job() for _ in range(3)])
        claim = self._take_from(store)
        ask = ClaimAsk(spec("a"), 2)
        conflicts, claims = store.apply([_done(first.id, claim.token)], ask)
        assert conflicts == [None] and [c.job.id for c in claims] == [j.id for j in rest]
        assert all(c.job.state is JobState.ACTIVE for c in claims)
        # A change not written: no claim when asked so.
        extra = store.insert([new_job()])[0]
        lost = _done(first.id, "stale")
        _, none = store.apply([lost], ClaimAsk(spec("a"), 1, unless_conflict=True))
        assert none == []
        _, some = store.apply([lost], ClaimAsk(spec("a"), 1))
        assert [c.job.id for c in some] == [extra.id]

    # -- the other primitives -------------------------------------------------------------

    def test_scan_selects_by_name_and_finish_time(
        self, store: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        jobs = store.insert([new_job("a"), new_job("b"), new_job("a")])
        cancel = [Change(j.id, InState(_WAITING), JobState.CANCELLED) for j in jobs]
        for change in cancel:
            clock.advance(1)
            assert store.apply([change]) == ([None], [])
        newest_first = [j.id for j in reversed(jobs)]
        assert [j.id for j in store.scan(Selector(JobState.CANCELLED), 0, 10)] == newest_first
        by_a = store.scan(Selector(JobState.CANCELLED, name="a"), 0, 10)
        assert [j.id for j in by_a] == [jobs[2].id, jobs[0].id]
        before = store.scan(Selector(JobState.CANCELLED, finished_before=clock() - 1.5), 0, 10)
        assert [j.id for j in before] == [jobs[0].id]
        assert [j.id for j in store.scan(Selector(JobState.CANCELLED), 1, 1)] == [jobs[1].id]

    def test_delete_housekeep_and_annotate(self, clock: ManualClock, new_job: MakeJob) -> None:
        store = self.make_backend(
            BackendOptions(clock=clock, retention=Retention(completed_count=1))
        )
        assert isinstance(store, Backend)
        try:
            jobs = store.insert([new_job() for _ in range(3)])
            for job in jobs[:2]:
                claim = self._take_from(store)
                assert store.annotate(job.id, claim.token, progress=(50.0, "half"), log="hi")
                assert not store.annotate(job.id, "stale", log="no")
                assert store.apply([_done(job.id, claim.token)]) == ([None], [])
            done = store.get(jobs[1].id)
            assert done is not None and done.progress == 50.0
            assert done.progress_message == "half" and [e.message for e in done.logs] == ["hi"]
            assert store.housekeep() == 1  # retention keeps the newest completed one
            assert store.get(jobs[0].id) is None and store.get(jobs[1].id) is not None
            assert store.delete([jobs[1].id, jobs[2].id, "999999"]) == 2
            assert store.counts() == {}
        finally:
            self.dispose_backend(store)

    def test_a_heartbeat_without_a_dispatcher_only_renews(
        self, store: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = store.insert([new_job()])[0]
        claim = self._take_from(store, lease=5)
        clock.advance(4)
        assert [s.value for s in store.heartbeat(None, [(job.id, claim.token)], 5)] == ["held"]
        clock.advance(4)
        assert store.expired(10) == [] and store.dispatchers() == []
