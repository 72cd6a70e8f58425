"""Differential test: the SQLite backend and the in-memory reference backend, driven by the
same random operations, must agree on every job field, order and count.

The contract's model checks invariants; this checks the exact reference semantics (ordering
ties, retention order, run_at on requeue, ...). Ids may differ (SQLite's counter also numbers
claims and finishes), so jobs are matched by submission order.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from jobqueue.backend import BackendOptions, Claim, Outcome, Retention, WorkSpec
from jobqueue.backends.memory import MemoryBackend
from jobqueue.backends.sqlite import SQLiteBackend
from jobqueue.errors import LeaseLostError
from jobqueue.job import Job, JobError, JobState
from jobqueue.testing import ManualClock

NAMES = st.sampled_from([("a",), ("b",), ("a", "b")])


class Differential(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        options = BackendOptions(
            clock=self.clock,
            max_stalls=1,
            retention=Retention(completed_seconds=50, completed_count=3, failed_count=2),
        )
        self.ref = MemoryBackend(options)
        self.red = SQLiteBackend(":memory:", options)
        self.ids: list[tuple[str, str]] = []  # (reference id, sqlite id) by submission
        self.leases: list[tuple[int, str, str]] = []  # (job index, ref token, sqlite token)

    def _index(self, ref_id: str, red_id: str) -> int:
        pair = (ref_id, red_id)
        if pair not in self.ids:
            assert ref_id not in {r for r, _ in self.ids} and red_id not in {d for _, d in self.ids}
            self.ids.append(pair)
        return self.ids.index(pair)

    def _same_job(self, ref: Job | None, red: Job | None) -> None:
        assert (ref is None) == (red is None), (ref, red)
        if ref is not None and red is not None:
            self._index(ref.id, red.id)
            one, two = ref.to_dict(), red.to_dict()
            one.pop("id"), two.pop("id")
            assert one == two

    def _same_claim(self, ref: Claim | None, red: Claim | None) -> None:
        self._same_job(ref and ref.job, red and red.job)
        if ref is not None and red is not None:
            assert ref.lease_expires_at == red.lease_expires_at
            self.leases.append((self._index(ref.job.id, red.job.id), ref.token, red.token))

    @rule(
        name=st.sampled_from(["a", "b"]),
        priority=st.integers(-1, 1),
        delay=st.sampled_from([0.0, 0.0, 5.0, 5.0, 12.0]),
        unique=st.sampled_from([None, None, "u1", "u2"]),
    )
    def submit(self, name: str, priority: int, delay: float, unique: str | None) -> None:
        now = self.clock()
        job = Job(
            id="",
            name=name,
            data=[name, priority],
            priority=priority,
            created_at=now,
            run_at=now + delay,
            unique_key=unique,
        )
        ref, red = self.ref.submit(job), self.red.submit(job)
        self._same_job(ref, red)

    @rule(names=NAMES, lease=st.sampled_from([4.0, 10.0]), cap=st.sampled_from([None, 1, 2]))
    def claim(self, names: tuple[str, ...], lease: float, cap: int | None) -> None:
        work = WorkSpec(names, lease, {} if cap is None else {"a": cap})
        self._same_claim(self.ref.claim(work), self.red.claim(work))

    @precondition(lambda self: bool(self.leases))
    @rule(
        data=st.data(),
        outcome=st.sampled_from(
            ["complete", "next", "fail", "retry", "now", "release", "renew", "progress", "log"]
        ),
    )
    def holder(self, data: st.DataObject, outcome: str) -> None:
        index, ref_token, red_token = data.draw(st.sampled_from(self.leases))
        ref_id, red_id = self.ids[index]
        now = self.clock()
        calls: dict[str, tuple[Any, ...]] = {
            "complete": ("complete", {"r": 1}, None),
            "next": ("complete", None, WorkSpec(("a", "b"), 10.0)),
            "fail": ("fail", JobError("E", "x"), None),
            "retry": ("fail", JobError("E", "y"), now + 5),
            "now": ("fail", JobError("E", "z"), now),
            "release": ("release",),
            "renew": ("renew", 10.0),
            "progress": ("set_progress", 50.0, "half"),
            "log": ("add_log", "line"),
        }
        call, *rest = calls[outcome]
        outcomes = []
        for backend, job_id, token in (
            (self.ref, ref_id, ref_token),
            (self.red, red_id, red_token),
        ):
            try:
                outcomes.append(("ok", getattr(backend, call)(job_id, token, *rest)))
            except LeaseLostError:
                outcomes.append(("lost", None))
        assert outcomes[0][0] == outcomes[1][0], (outcome, outcomes)
        ref, red = outcomes[0][1], outcomes[1][1]
        if outcome == "next":
            self._same_claim(ref, red)
        else:
            assert ref == red, (outcome, ref, red)
        self._same_job(self.ref.get(ref_id), self.red.get(red_id))

    @rule(names=NAMES, limit=st.integers(0, 3))
    def claim_many(self, names: tuple[str, ...], limit: int) -> None:
        ref = self.ref.claim_many(WorkSpec(names, 4.0), limit)
        red = self.red.claim_many(WorkSpec(names, 4.0), limit)
        assert len(ref) == len(red)
        for one, two in zip(ref, red, strict=True):
            self._same_claim(one, two)

    @precondition(lambda self: bool(self.leases))
    @rule(data=st.data(), limit=st.integers(0, 3), claim_more=st.booleans())
    def finish_many(self, data: st.DataObject, limit: int, claim_more: bool) -> None:
        picked = data.draw(st.lists(st.sampled_from(self.leases), max_size=3))
        kinds = data.draw(
            st.lists(
                st.sampled_from(["ok", "fail", "retry"]), min_size=len(picked), max_size=len(picked)
            )
        )
        now = self.clock()
        outcomes: tuple[list[Outcome], list[Outcome]] = ([], [])
        for (index, ref_token, red_token), kind in zip(picked, kinds, strict=True):
            for side, job_id, token in (
                (0, self.ids[index][0], ref_token),
                (1, self.ids[index][1], red_token),
            ):
                if kind == "ok":
                    outcomes[side].append(Outcome(job_id, token, result=[kind]))
                else:
                    retry = now + 3 if kind == "retry" else None
                    outcomes[side].append(
                        Outcome(job_id, token, error=JobError("E", kind), retry_at=retry)
                    )
        spec = WorkSpec(("a", "b"), 10.0) if claim_more else None
        ref_states, ref_claims = self.ref.finish_many(outcomes[0], spec, limit)
        red_states, red_claims = self.red.finish_many(outcomes[1], spec, limit)
        assert ref_states == red_states
        assert len(ref_claims) == len(red_claims)
        for one, two in zip(ref_claims, red_claims, strict=True):
            self._same_claim(one, two)

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        ref_id, red_id = data.draw(st.sampled_from(self.ids))
        assert self.ref.remove(ref_id) == self.red.remove(red_id)

    @rule(seconds=st.sampled_from([1.0, 4.0, 5.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def recover(self) -> None:
        assert self.ref.recover_expired() == self.red.recover_expired()

    @rule(state=st.sampled_from(list(JobState)), offset=st.integers(0, 3), limit=st.integers(1, 4))
    def listing(self, state: JobState, offset: int, limit: int) -> None:
        ref = self.ref.list_jobs(state, offset, limit)
        red = self.red.list_jobs(state, offset, limit)
        assert len(ref) == len(red)
        for one, two in zip(ref, red, strict=True):
            self._same_job(one, two)

    @rule()
    def everything_agrees(self) -> None:
        assert self.ref.count_by_state() == self.red.count_by_state()
        for ref_id, red_id in self.ids:
            self._same_job(self.ref.get(ref_id), self.red.get(red_id))


def test_sqlite_backend_matches_the_reference_backend() -> None:
    run_state_machine_as_test(
        Differential,
        settings=settings(
            max_examples=60,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
