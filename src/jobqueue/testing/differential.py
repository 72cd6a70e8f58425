"""Differential testing: a backend and the in-memory reference backend, driven by the same
random operations, must agree on every job field, order and count.

The contract's state machine checks invariants against a model; this checks the reference
semantics exactly (ordering ties, retention order, ``run_at`` on requeue, ...), the control
plane included: cancels (of waiting, delayed, active and finished jobs, one and many),
``finish_cancelled``, delayed jobs run now, retries (one and many, unique keys in the way),
purges, pauses, heartbeats and the dispatcher records, ``maintain``; and periodic schedules'
tick claims (every overlap mode, pauses, missed ticks, unique keys in the way, ticks claimed
again or out of order) with their records. Return values must be
equal, and so must every job field (state, attempts, stalls, ``cancel_requested``, result,
error, history, timestamps, lease deadlines) and the outcome counts per minute: both backends
read the same injected clock. Ids may differ between backends, so jobs are matched by
submission order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from jobqueue import lifecycle
from jobqueue.backend import (
    Backend,
    BackendOptions,
    Claim,
    DispatcherInfo,
    Outcome,
    Retention,
    ScheduleRecord,
    TickClaim,
    WorkSpec,
)
from jobqueue.backends.memory import MemoryBackend
from jobqueue.engine import Engine
from jobqueue.errors import JobStateError, LeaseLostError
from jobqueue.job import Job, JobError, JobState
from jobqueue.testing.clock import ManualClock

NAMES = st.sampled_from([("a",), ("b",), ("a", "b")])
NAME = st.sampled_from([None, "a", "b"])
RETRYABLE = st.sampled_from([JobState.FAILED, JobState.CANCELLED])
FINISHED = st.sampled_from([JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED])
CANCELLABLE = (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE)
SCHEDULES = st.sampled_from(["s1", "s2"])
FIRST_TICK = 1_700_000_040.0


class _Differential(RuleBasedStateMachine):
    make_backend: Callable[[BackendOptions], Backend]
    dispose_backend: Callable[[Backend], None]

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.start = self.clock()
        options = BackendOptions(
            clock=self.clock,
            max_stalls=1,
            retention=Retention(
                completed_seconds=50, completed_count=3, failed_count=2, cancelled_count=2
            ),
        )
        self.ref = Engine(MemoryBackend(options))
        self.other = Engine(type(self).make_backend(options))
        self.ids: list[tuple[str, str]] = []  # (reference id, other id) by submission
        self.leases: list[tuple[int, str, str]] = []  # (job index, ref token, other token)
        self.ticks: dict[str, int] = {}  # schedule -> the newest tick number claimed

    def _index(self, ref_id: str, other_id: str) -> int:
        pair = (ref_id, other_id)
        if pair not in self.ids:
            assert ref_id not in {r for r, _ in self.ids} and other_id not in {
                d for _, d in self.ids
            }
            self.ids.append(pair)
        return self.ids.index(pair)

    def _same_job(self, ref: Job | None, other: Job | None) -> None:
        assert (ref is None) == (other is None), (ref, other)
        if ref is not None and other is not None:
            self._index(ref.id, other.id)
            one, two = ref.to_dict(), other.to_dict()
            one.pop("id"), two.pop("id")
            assert one == two, {k: (v, two.get(k)) for k, v in one.items() if v != two.get(k)}

    def _same_claim(self, ref: Claim | None, other: Claim | None) -> None:
        self._same_job(ref.job if ref else None, other.job if other else None)
        if ref is not None and other is not None:
            assert ref.lease_expires_at == other.lease_expires_at
            self.leases.append((self._index(ref.job.id, other.job.id), ref.token, other.token))

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
        ref, other = self.ref.submit(job), self.other.submit(job)
        self._same_job(ref, other)

    @rule(
        names=NAMES,
        lease=st.sampled_from([4.0, 10.0]),
        cap=st.sampled_from([None, 1, 2]),
        dispatcher=st.sampled_from([None, "d1", "d2"]),
    )
    def claim(
        self, names: tuple[str, ...], lease: float, cap: int | None, dispatcher: str | None
    ) -> None:
        work = WorkSpec(names, lease, {} if cap is None else {"a": cap}, dispatcher)
        self._same_claim(self.ref.claim(work), self.other.claim(work))

    @precondition(lambda self: bool(self.leases))
    @rule(
        data=st.data(),
        outcome=st.sampled_from(
            [
                *("complete", "next", "fail", "retry", "now", "release", "renew"),
                *("progress", "log", "cancelled", "cancelled_raising"),
            ]
        ),
    )
    def holder(self, data: st.DataObject, outcome: str) -> None:
        index, ref_token, other_token = data.draw(st.sampled_from(self.leases))
        ref_id, other_id = self.ids[index]
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
            "cancelled": ("finish_cancelled", None),
            "cancelled_raising": ("finish_cancelled", JobError("JobCancelled", "stop")),
        }
        call, *rest = calls[outcome]
        outcomes = []
        for backend, job_id, token in (
            (self.ref, ref_id, ref_token),
            (self.other, other_id, other_token),
        ):
            try:
                outcomes.append(("ok", getattr(backend, call)(job_id, token, *rest)))
            except LeaseLostError:
                outcomes.append(("lost", None))
        assert outcomes[0][0] == outcomes[1][0], (outcome, outcomes)
        ref, other = outcomes[0][1], outcomes[1][1]
        if outcome == "next":
            self._same_claim(ref, other)
        else:
            assert ref == other, (outcome, ref, other)
        self._same_job(self.ref.get(ref_id), self.other.get(other_id))

    def teardown(self) -> None:
        type(self).dispose_backend(self.other.store)

    @rule(names=NAMES, limit=st.integers(0, 3))
    def claim_many(self, names: tuple[str, ...], limit: int) -> None:
        ref = self.ref.claim_many(WorkSpec(names, 4.0), limit)
        other = self.other.claim_many(WorkSpec(names, 4.0), limit)
        assert len(ref) == len(other)
        for one, two in zip(ref, other, strict=True):
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
        for (index, ref_token, other_token), kind in zip(picked, kinds, strict=True):
            for side, job_id, token in (
                (0, self.ids[index][0], ref_token),
                (1, self.ids[index][1], other_token),
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
        other_states, other_claims = self.other.finish_many(outcomes[1], spec, limit)
        assert ref_states == other_states
        assert len(ref_claims) == len(other_claims)
        for one, two in zip(ref_claims, other_claims, strict=True):
            self._same_claim(one, two)

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        ref_id, other_id = data.draw(st.sampled_from(self.ids))
        assert self.ref.remove(ref_id) == self.other.remove(other_id)

    # -- the control plane ----------------------------------------------------------------------

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        ref_id, other_id = data.draw(st.sampled_from(self.ids))
        ref, other = self.ref.cancel(ref_id), self.other.cancel(other_id)
        assert ref == other, ("cancel", ref, other)
        self._same_job(self.ref.get(ref_id), self.other.get(other_id))

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        ref_id, other_id = data.draw(st.sampled_from(self.ids))
        outcomes: list[tuple[str, Job | None]] = []
        for backend, job_id in ((self.ref, ref_id), (self.other, other_id)):
            try:
                outcomes.append(("ok", backend.retry(job_id)))
            except JobStateError:
                outcomes.append(("refused", None))
        assert outcomes[0][0] == outcomes[1][0], ("retry", outcomes)
        self._same_job(outcomes[0][1], outcomes[1][1])
        self._same_job(self.ref.get(ref_id), self.other.get(other_id))

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data())
    def promote(self, data: st.DataObject) -> None:
        ref_id, other_id = data.draw(st.sampled_from(self.ids))
        outcomes: list[tuple[str, Job | None]] = []
        for backend, job_id in ((self.ref, ref_id), (self.other, other_id)):
            try:
                outcomes.append(("ok", backend.promote(job_id)))
            except JobStateError:
                outcomes.append(("refused", None))
        assert outcomes[0][0] == outcomes[1][0], ("promote", outcomes)
        self._same_job(outcomes[0][1], outcomes[1][1])
        self._same_job(self.ref.get(ref_id), self.other.get(other_id))

    @rule(state=st.sampled_from([*CANCELLABLE, JobState.COMPLETED]), name=NAME)
    def cancel_many(self, state: JobState, name: str | None) -> None:
        ref, other = self.ref.cancel_many(state, name), self.other.cancel_many(state, name)
        assert ref == other, ("cancel_many", state, name, ref, other)

    @rule(state=RETRYABLE, name=NAME)
    def retry_many(self, state: JobState, name: str | None) -> None:
        ref, other = self.ref.retry_many(state, name), self.other.retry_many(state, name)
        assert ref == other, ("retry_many", state, name, ref, other)

    @rule(state=FINISHED, name=NAME, before=st.sampled_from([None, None, 0.0, -4.0, -30.0]))
    def purge(self, state: JobState, name: str | None, before: float | None) -> None:
        cutoff = None if before is None else self.clock() + before
        ref = self.ref.purge(state, name, cutoff)
        other = self.other.purge(state, name, cutoff)
        assert ref == other, ("purge", state, name, before, ref, other)

    @rule(name=st.sampled_from(["a", "b"]), pause=st.sampled_from([True, False, False]))
    def pause_or_resume(self, name: str, pause: bool) -> None:
        for backend in (self.ref, self.other):
            backend.pause(name) if pause else backend.resume(name)
        assert self.ref.paused() == self.other.paused()

    @rule(
        data=st.data(),
        dispatcher=st.sampled_from(["d1", "d2"]),
        lease=st.sampled_from([4.0, 10.0]),
    )
    def heartbeat(self, data: st.DataObject, dispatcher: str, lease: float) -> None:
        picked = (
            data.draw(st.lists(st.sampled_from(self.leases), max_size=3, unique=True))
            if self.leases
            else []
        )
        info = DispatcherInfo(dispatcher, "host", 7, ("a", "b"), 2, float(len(dispatcher)))
        ref = self.ref.heartbeat(info, [(self.ids[i][0], token) for i, token, _ in picked], lease)
        other = self.other.heartbeat(
            info, [(self.ids[i][1], token) for i, _, token in picked], lease
        )
        assert ref == other, ("heartbeat", ref, other)
        for index, _, _ in picked:
            self._same_job(self.ref.get(self.ids[index][0]), self.other.get(self.ids[index][1]))
        self._same_dispatchers()

    @rule(dispatcher=st.sampled_from(["d1", "d2", "d3"]))
    def remove_dispatcher(self, dispatcher: str) -> None:
        self.ref.remove_dispatcher(dispatcher)
        self.other.remove_dispatcher(dispatcher)
        self._same_dispatchers()

    def _same_dispatchers(self) -> None:
        """Equal records, the jobs they hold matched by submission order."""
        to_ref = {other_id: ref_id for ref_id, other_id in self.ids}
        ref = self.ref.dispatchers()
        other = [
            replace(info, jobs=tuple(to_ref.get(job_id, job_id) for job_id in info.jobs))
            for info in self.other.dispatchers()
        ]
        assert ref == other, ("dispatchers", ref, other)

    @rule()
    def maintain(self) -> None:
        self._same_reported(self.ref.maintain(), self.other.maintain())

    @rule(seconds=st.sampled_from([1.0, 4.0, 5.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def recover(self) -> None:
        self._same_reported(self.ref.recover_expired(), self.other.recover_expired())

    def _same_reported(self, ref: list[Job], other: list[Job]) -> None:
        """The same recovered jobs, in the same order (claim order), as they now are."""
        ref_index = {r: i for i, (r, _) in enumerate(self.ids)}
        other_index = {o: i for i, (_, o) in enumerate(self.ids)}
        assert [(ref_index.get(j.id), j.state, j.stalls) for j in ref] == [
            (other_index.get(j.id), j.state, j.stalls) for j in other
        ], ("recovered", ref, other)

    @rule(state=st.sampled_from(list(JobState)), offset=st.integers(0, 3), limit=st.integers(1, 4))
    def listing(self, state: JobState, offset: int, limit: int) -> None:
        ref = self.ref.list_jobs(state, offset, limit)
        other = self.other.list_jobs(state, offset, limit)
        assert len(ref) == len(other)
        for one, two in zip(ref, other, strict=True):
            self._same_job(one, two)

    # -- periodic schedules ---------------------------------------------------------------------

    @rule(
        schedule=SCHEDULES,
        step=st.sampled_from([-1, 0, 1, 1, 1, 3]),
        with_job=st.sampled_from([True, True, True, False]),
        overlap=st.sampled_from(["skip", "allow", "queue"]),
        missed=st.integers(0, 2),
        name=st.sampled_from(["a", "b"]),
        delay=st.sampled_from([0.0, 0.0, 5.0]),
        unique=st.sampled_from([None, None, None, "u1"]),
    )
    def claim_tick(
        self,
        schedule: str,
        step: int,
        with_job: bool,
        overlap: str,
        missed: int,
        name: str,
        delay: float,
        unique: str | None,
    ) -> None:
        number = max(self.ticks.get(schedule, 0) + step, 0)
        self.ticks[schedule] = max(self.ticks.get(schedule, 0), number)
        now = self.clock()
        job = Job(
            id="",
            name=name,
            data={"tick": number},
            created_at=now,
            run_at=now + delay,
            unique_key=unique,
        )
        claim = TickClaim(
            schedule,
            f'{{"n":{number}}}',
            FIRST_TICK + 60 * number,
            job if with_job else None,
            missed,
            overlap,
        )
        ref, other = self.ref.claim_tick(claim), self.other.claim_tick(claim)
        assert ref.outcome is other.outcome, ("claim_tick", claim, ref, other)
        self._same_job(ref.job, other.job)
        self._same_schedules()

    @rule(schedule=SCHEDULES, call=st.sampled_from(["pause", "resume", "remove"]))
    def steer_schedule(self, schedule: str, call: str) -> None:
        ref = getattr(self.ref, f"{call}_schedule")(schedule)
        other = getattr(self.other, f"{call}_schedule")(schedule)
        assert ref == other, (call, schedule, ref, other)
        if call == "remove":
            self.ticks.pop(schedule, None)
        self._same_schedules()

    def _same_schedules(self) -> None:
        """Equal records, job ids matched by submission order."""
        to_ref = {other_id: ref_id for ref_id, other_id in self.ids}

        def mapped(record: ScheduleRecord) -> ScheduleRecord:
            last = record.last_job_id
            return replace(
                record,
                last_job_id=None if last is None else to_ref.get(last, last),
                recent=tuple(
                    replace(e, job_id=None if e.job_id is None else to_ref.get(e.job_id))
                    for e in record.recent
                ),
            )

        ref = self.ref.schedule_records()
        other = [mapped(record) for record in self.other.schedule_records()]
        assert ref == other, ("schedules", ref, other)
        for record in ref:
            assert self.other.schedule_record(record.name) is not None

    @rule()
    def everything_agrees(self) -> None:
        assert self.ref.count_by_state() == self.other.count_by_state()
        since = lifecycle.outcome_minute(self.start)  # no outcome was counted before it
        assert self.ref.outcome_counts(since) == self.other.outcome_counts(since)
        assert self.ref.paused() == self.other.paused()
        self._same_dispatchers()
        self._same_schedules()
        for ref_id, other_id in self.ids:
            self._same_job(self.ref.get(ref_id), self.other.get(other_id))


def make_differential_machine(
    make_backend: Callable[[BackendOptions], Backend],
    dispose_backend: Callable[[Backend], None],
) -> type[RuleBasedStateMachine]:
    """The differential machine for one backend factory (a new, empty backend per example)."""
    return type(
        "DifferentialMachine",
        (_Differential,),
        {
            "make_backend": staticmethod(make_backend),
            "dispose_backend": staticmethod(dispose_backend),
        },
    )
