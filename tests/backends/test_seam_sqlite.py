"""The storage seam (``jobqueue.backend.Backend``) on the SQL family, through SQLite: every new
method called directly, on a hand-moved clock. The rules are not tested here (lifecycle's
tests do that): each change is written out by hand, and these tests check that the store
checks its guard and writes it as ``changes.Change`` says, and nothing else."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobqueue import lifecycle
from jobqueue.backend import (
    Backend,
    BackendOptions,
    DispatcherInfo,
    LeaseStatus,
    Retention,
    WorkSpec,
)
from jobqueue.backends.sqlite import SQLiteBackend
from jobqueue.changes import (
    Change,
    ClaimAsk,
    Conflict,
    Ended,
    Expired,
    Held,
    InState,
    Selector,
)
from jobqueue.engine import Engine
from jobqueue.errors import NotSerializableError
from jobqueue.job import MAX_HISTORY, AttemptOutcome, Job, JobError, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.values import Claim

W, D, A = JobState.WAITING, JobState.DELAYED, JobState.ACTIVE
DONE, FAILED, CANCELLED = JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED
ERROR = JobError("ValueError", "boom")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[SQLiteBackend]:
    backend = SQLiteBackend(str(tmp_path / "jobs.db"), BackendOptions(clock=clock))
    yield backend
    backend.close()


def job(clock: ManualClock, name: str = "a", **fields: Any) -> Job:
    fields.setdefault("created_at", clock())
    fields.setdefault("run_at", clock())
    return Job(id="", name=name, data={"n": 1}, **fields)


def claim(store: SQLiteBackend, name: str = "a", lease: float = 30.0, **spec: Any) -> Claim:
    claims = store.claim_many(WorkSpec((name,), lease, **spec), 1)
    assert len(claims) == 1
    return claims[0]


def got(store: SQLiteBackend, job_id: str) -> Job:
    found = store.get(job_id)
    assert found is not None
    return found


def complete(c: Claim, result: object = None) -> Change:
    return Change(
        c.job.id,
        Held(c.token),
        DONE,
        set={"result": result},
        ended=Ended(AttemptOutcome.COMPLETED),
        ends_lease="complete",
        counts_as=AttemptOutcome.COMPLETED,
    )


def test_sqlite_is_a_storage(store: SQLiteBackend) -> None:
    assert isinstance(store, Backend)
    assert not hasattr(store, "complete")  # the verbs are the Engine's


# -- insert ------------------------------------------------------------------------------------


def test_insert_stores_waiting_or_delayed_and_returns_a_live_holder_of_its_key(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    now = clock()
    first, later, twin, other = store.insert(
        [
            job(clock, unique_key="k"),
            job(clock, run_at=now + 10),
            job(clock, unique_key="k"),  # held by the first, earlier in the same batch
            job(clock, unique_key="other"),
        ]
    )
    assert (first.state, later.state, other.state) == (W, D, W)
    assert twin.id == first.id and twin.deduplicated
    assert len({first.id, later.id, other.id}) == 3
    again = store.insert([job(clock, unique_key="other")])[0]
    assert again.id == other.id and again.deduplicated
    assert store.counts() == {"a": {**dict.fromkeys(JobState, 0), W: 2, D: 1}}


# -- apply: lease guards -----------------------------------------------------------------------


def test_complete_writes_the_attempt_and_claims_the_next_job_in_the_same_call(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    first, second = store.insert([job(clock), job(clock)])
    c = store.claim_many(WorkSpec(("a",), 30, dispatcher="d1"), 1)[0]
    clock.advance(5)
    answers, claims = store.apply([complete(c, {"ok": 1})], then=ClaimAsk(WorkSpec(("a",)), 1))
    assert answers == [None]
    assert [x.job.id for x in claims] == [second.id]
    done = got(store, first.id)
    assert done.state is DONE and done.result == {"ok": 1}
    assert done.finished_at == clock() and done.dispatcher is None
    assert done.lease_expires_at is None and done.attempts_made == 1
    (attempt,) = done.history
    assert (attempt.number, attempt.dispatcher, attempt.outcome) == (
        1,
        "d1",
        AttemptOutcome.COMPLETED,
    )
    assert (attempt.started_at, attempt.finished_at) == (clock() - 5, clock())
    minute = lifecycle.outcome_minute(clock())
    assert store.outcome_counts(minute) == {minute: {"completed": 1}}
    assert store.scan(Selector(DONE), 0, 10) == [done]


def test_a_repeat_learns_which_call_ended_its_lease(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    store.insert([job(clock)])
    c = claim(store)
    assert store.apply([complete(c)])[0] == [None]
    assert store.apply([complete(c)])[0] == [Conflict(DONE, ended_by="complete")]
    # Another token, or no job at all: nothing ended by it.
    other = Change(c.job.id, Held("nope"), DONE)
    assert store.apply([other])[0] == [Conflict(DONE)]
    assert store.apply([Change("999", Held("x"), DONE), Change("x1", Held("x"), DONE)])[0] == [
        Conflict(None),
        Conflict(None),
    ]
    minute = lifecycle.outcome_minute(clock())
    assert store.outcome_counts(minute) == {minute: {"completed": 1}}


def test_held_guards_check_token_deadline_and_cancel_flag(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    store.insert([job(clock)])
    c = claim(store, lease=10)
    flag = Change(c.job.id, InState(frozenset({A})), A, set={"cancel_requested": True})
    assert store.apply([flag])[0] == [None]
    flagged = got(store, c.job.id)
    assert flagged.state is A and flagged.cancel_requested
    assert flagged.lease_expires_at == c.lease_expires_at  # the lease is kept as it was
    fail = Change(c.job.id, Held(c.token, cancel_requested=False), FAILED, ends_lease="fail")
    assert store.apply([fail])[0] == [Conflict(A, held=True, cancel_requested=True)]
    assert store.apply([Change(c.job.id, Held("other"), FAILED)])[0] == [
        Conflict(A, cancel_requested=True)
    ]
    early = Change(c.job.id, Expired(c.token), W, run_at=0.0)
    assert store.apply([early])[0] == [Conflict(A, held=True, cancel_requested=True)]
    clock.advance(10)  # the deadline itself: expired
    assert store.apply([fail])[0] == [Conflict(A, cancel_requested=True)]
    assert store.apply([Change(c.job.id, Expired("other"), W)])[0] == [
        Conflict(A, cancel_requested=True)
    ]
    stall = Change(
        c.job.id,
        Expired(c.token, cancel_requested=True),
        CANCELLED,
        set={"stalls": 1},
        ended=Ended(AttemptOutcome.STALLED),
        counts_as=AttemptOutcome.CANCELLED,
    )
    assert store.apply([stall])[0] == [None]
    gone = got(store, c.job.id)
    assert (gone.state, gone.stalls, gone.history[-1].outcome) == (
        CANCELLED,
        1,
        AttemptOutcome.STALLED,
    )
    # A stall ends no call: a repeat of the stall learns nothing of who ended it.
    assert store.apply([stall])[0] == [Conflict(CANCELLED, cancel_requested=True)]


def test_fail_to_delayed_requeues_at_the_end_with_its_error(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    first, second = store.insert([job(clock, attempts=3), job(clock)])
    c = claim(store)
    change = Change(
        c.job.id,
        Held(c.token, cancel_requested=False),
        D,
        run_at=30.0,
        set={"error": ERROR},
        ended=Ended(AttemptOutcome.RETRIED, ERROR),
        ends_lease="fail",
        counts_as=AttemptOutcome.RETRIED,
    )
    assert store.apply([change])[0] == [None]
    delayed = got(store, first.id)
    assert (delayed.state, delayed.run_at, delayed.error) == (D, clock() + 30, ERROR)
    assert delayed.history[-1].error == ERROR and delayed.lease_expires_at is None
    assert store.apply([change])[0] == [Conflict(D, ended_by="fail")]
    minute = lifecycle.outcome_minute(clock())
    assert store.outcome_counts(minute) == {minute: {"retried": 1}}
    clock.advance(30)
    assert store.housekeep() == 1  # promoted: behind the job that waited all along
    assert [j.id for j in store.scan(Selector(W), 0, 10)] == [second.id, first.id]


def test_an_attempt_given_back_is_not_counted_but_keeps_its_record(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    store.insert([job(clock)])
    c = claim(store)
    release = Change(
        c.job.id,
        Held(c.token, cancel_requested=False),
        W,
        run_at=0.0,
        ended=Ended(AttemptOutcome.RELEASED, counted=False),
        ends_lease="release",
    )
    assert store.apply([release])[0] == [None]
    back = got(store, c.job.id)
    assert (back.state, back.attempts_made, back.dispatcher) == (W, 0, None)
    assert [(a.number, a.outcome) for a in back.history] == [(1, AttemptOutcome.RELEASED)]
    assert store.outcome_counts(0) == {}  # no counts_as: nothing counted
    assert store.apply([release])[0] == [Conflict(W, ended_by="release")]
    again = claim(store)  # a new lease fences the old token's memory
    assert store.apply([release])[0] == [Conflict(A)]
    assert again.job.attempts_made == 1


def test_history_keeps_the_last_attempts(store: SQLiteBackend, clock: ManualClock) -> None:
    store.insert([job(clock)])
    for n in range(MAX_HISTORY + 3):
        c = claim(store)
        ended = Ended(AttemptOutcome.RETRIED, JobError("E", str(n)))
        assert store.apply([Change(c.job.id, Held(c.token), W, run_at=0.0, ended=ended)])[0] == [
            None
        ]
    history = got(store, c.job.id).history
    assert len(history) == MAX_HISTORY
    assert [a.error.message for a in history if a.error] == [
        str(n) for n in range(3, MAX_HISTORY + 3)
    ]


def test_changes_apply_in_order_each_on_its_own_guard(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    store.insert([job(clock), job(clock)])
    c1, c2 = store.claim_many(WorkSpec(("a",)), 2)
    answers, claims = store.apply(
        [complete(c1, 1), complete(c1, 2), Change(c2.job.id, Held("bad"), DONE), complete(c2, 3)]
    )
    assert answers == [None, Conflict(DONE, ended_by="complete"), Conflict(A), None]
    assert claims == []
    assert got(store, c1.job.id).result == 1 and got(store, c2.job.id).result == 3


def test_a_result_that_is_not_json_stores_nothing(store: SQLiteBackend, clock: ManualClock) -> None:
    store.insert([job(clock), job(clock)])
    c1, c2 = store.claim_many(WorkSpec(("a",)), 2)
    with pytest.raises(NotSerializableError):
        store.apply([complete(c1), complete(c2, {1j})])
    assert got(store, c1.job.id).state is A


# -- apply: state guards, unique keys ----------------------------------------------------------


def test_cancel_promote_and_retry_under_state_guards(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    waiting, delayed = store.insert([job(clock, unique_key="k"), job(clock, run_at=clock() + 100)])
    cancel = Change(waiting.id, InState(frozenset({W, D})), CANCELLED)
    assert store.apply([cancel])[0] == [None]
    cancelled = got(store, waiting.id)
    assert cancelled.state is CANCELLED and cancelled.finished_at == clock()
    assert store.apply([cancel])[0] == [Conflict(CANCELLED)]
    # The key is free: a new job takes it; the cancelled one cannot come back while it lives.
    holder = store.insert([job(clock, unique_key="k")])[0]
    assert not holder.deduplicated
    retry = Change(
        waiting.id,
        InState(frozenset({FAILED, CANCELLED})),
        W,
        run_at=0.0,
        set={"attempts_made": 0, "stalls": 0, "cancel_requested": False, "finished_at": None},
        fence=True,
    )
    assert store.apply([retry])[0] == [Conflict(CANCELLED, unique_holder=holder.id)]
    assert store.delete([holder.id]) == 1
    assert store.apply([retry])[0] == [None]
    back = got(store, waiting.id)
    assert (back.state, back.finished_at, back.run_at) == (W, None, clock())
    promote = Change(delayed.id, InState(frozenset({D})), W, run_at=0.0)
    assert store.apply([promote])[0] == [None]
    assert [j.id for j in store.scan(Selector(W), 0, 10)] == [waiting.id, delayed.id]
    assert store.apply([promote])[0] == [Conflict(W)]


def test_a_retry_fences_the_last_lease(store: SQLiteBackend, clock: ManualClock) -> None:
    store.insert([job(clock)])
    c = claim(store)
    failed = Change(c.job.id, Held(c.token), FAILED, ended=Ended(AttemptOutcome.FAILED))
    assert store.apply([failed._replace(ends_lease="fail")])[0] == [None]
    retry = Change(c.job.id, InState(frozenset({FAILED})), W, run_at=0.0, fence=True)
    assert store.apply([retry])[0] == [None]
    assert store.apply([failed])[0] == [Conflict(W)]  # no longer "ended by fail"


# -- waits woken by apply ----------------------------------------------------------------------


def test_apply_wakes_finish_waiters_and_idle_dispatchers(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    store.insert([job(clock)])
    c = claim(store)
    finished: list[Job | None] = []
    waiter = threading.Thread(target=lambda: finished.append(store.wait_for_finish(c.job.id, 30)))
    waiter.start()
    store.apply([complete(c, "r")])
    waiter.join(20)
    assert not waiter.is_alive() and finished[0] is not None and finished[0].result == "r"

    store.insert([job(clock, name="b")])
    b = claim(store, "b")
    woke: list[bool] = []
    about_to_block = clock.read_elsewhere()
    idle = threading.Thread(target=lambda: woke.append(store.wait_for_work(["b"], 30)))
    started = time.monotonic()
    idle.start()
    assert about_to_block.wait(20)
    store.apply([Change(b.job.id, Held(b.token), W, run_at=0.0)])
    idle.join(20)
    assert woke == [True] and time.monotonic() - started < 20


# -- the other writes --------------------------------------------------------------------------


def test_heartbeat_without_a_dispatcher_extends_leases_only(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    store.insert([job(clock), job(clock)])
    c1, c2 = store.claim_many(WorkSpec(("a",), 10), 2)
    store.apply([Change(c2.job.id, InState(frozenset({A})), A, set={"cancel_requested": True})])
    clock.advance(5)
    leases = [(c1.job.id, c1.token), (c2.job.id, c2.token), (c1.job.id, "stale")]
    assert store.heartbeat(None, leases, 60) == [
        LeaseStatus.HELD,
        LeaseStatus.CANCEL,
        LeaseStatus.LOST,
    ]
    assert got(store, c1.job.id).lease_expires_at == clock() + 60
    assert store.dispatchers() == []
    info = DispatcherInfo("d1", "h", 1, ("a",), 2, started_at=clock())
    store.heartbeat(info, [(c1.job.id, c1.token)], 60)
    assert [(d.id, d.jobs) for d in store.dispatchers()] == [("d1", (c1.job.id,))]
    assert store.forget("dispatcher", "d1") is True
    assert store.forget("dispatcher", "d1") is False
    assert store.dispatchers() == []


def test_annotate_needs_the_lease(store: SQLiteBackend, clock: ManualClock) -> None:
    store.insert([job(clock)])
    c = claim(store, lease=10)
    assert store.annotate(c.job.id, c.token, progress=(40.0, "x" * 5000), log="y" * 5000)
    assert store.annotate(c.job.id, c.token, log="second")
    seen = got(store, c.job.id)
    assert seen.progress == 40.0 and seen.progress_message is not None
    assert len(seen.progress_message) < 5000
    assert [len(line.message) < 5000 for line in seen.logs] == [True, True]
    assert seen.logs[-1].message == "second" and seen.logs[-1].at == clock()
    assert not store.annotate(c.job.id, "other", log="no")
    clock.advance(10)
    assert not store.annotate(c.job.id, c.token, progress=(50.0, None))
    assert got(store, c.job.id).progress == 40.0


def test_delete_removes_whatever_the_state_and_wakes_finish_waiters(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    kept, active, delayed = store.insert(
        [job(clock), job(clock, unique_key="k", logs=[]), job(clock, run_at=clock() + 9)]
    )
    c = claim(store)
    assert c.job.id == kept.id
    c2 = claim(store)
    assert c2.job.id == active.id
    store.annotate(c2.job.id, c2.token, log="line")
    finished: list[Job | None] = []
    waiter = threading.Thread(target=lambda: finished.append(store.wait_for_finish(active.id, 30)))
    waiter.start()
    assert store.delete([active.id, delayed.id, active.id, "999", "bad"]) == 2
    waiter.join(20)
    assert not waiter.is_alive() and finished == [None]
    assert store.get(active.id) is None and store.get(delayed.id) is None
    assert store.expired(10) == []
    assert not store.insert([job(clock, unique_key="k")])[0].deduplicated
    assert store.counts()["a"][A] == 1
    assert store.apply([Change(active.id, Held(c2.token), DONE)])[0] == [Conflict(None)]


def test_set_paused_for_workers_and_schedules(store: SQLiteBackend, clock: ManualClock) -> None:
    store.insert([job(clock)])
    store.set_paused("worker", "a", True)
    assert store.paused() == frozenset({"a"})
    assert store.claim_many(WorkSpec(("a",)), 1) == []
    woke: list[bool] = []
    about_to_block = clock.read_elsewhere()
    idle = threading.Thread(target=lambda: woke.append(store.wait_for_work(["a"], 30)))
    idle.start()
    assert about_to_block.wait(20)
    store.set_paused("worker", "a", False)  # resuming wakes idle dispatchers
    idle.join(20)
    assert woke == [True] and store.paused() == frozenset()

    store.set_paused("schedule", "nightly", True)
    (record,) = store.schedule_records("nightly")
    assert record.paused and record.name == "nightly"
    store.set_paused("schedule", "other", False)
    assert [r.name for r in store.schedule_records()] == ["nightly", "other"]
    assert store.schedule_records("absent") == []
    assert store.forget("schedule", "nightly") is True
    assert store.forget("schedule", "nightly") is False
    assert [r.name for r in store.schedule_records()] == ["other"]


def test_housekeep_promotes_retains_and_forgets_but_recovers_no_lease(
    tmp_path: Path, clock: ManualClock
) -> None:
    retention = Retention(completed_seconds=100, completed_count=None)
    store = SQLiteBackend(str(tmp_path / "h.db"), BackendOptions(clock=clock, retention=retention))
    try:
        old, delayed, running = store.insert(
            [job(clock), job(clock, run_at=clock() + 50), job(clock)]
        )
        c = claim(store, lease=10)
        store.apply([complete(c)])
        c2 = claim(store, lease=10)
        store.heartbeat(DispatcherInfo("d1", "h", 1, ("a",), 1, started_at=clock()), [], 10)
        clock.advance(OUTCOME_DAY)
        assert store.housekeep() == 2  # the delayed job promoted, the old completed removed
        assert store.get(old.id) is None
        assert got(store, delayed.id).state is W
        still = got(store, c2.job.id)
        assert still.state is A  # its lease expired, but stalls are the core's
        assert [x.job.id for x in store.expired(10)] == [running.id]
        assert store.dispatchers() == []
        store.heartbeat(None, [], 10)
        assert store.outcome_counts(0) == {}
        assert store.housekeep() == 0
    finally:
        store.close()


OUTCOME_DAY = (lifecycle.OUTCOME_MINUTES_KEPT + 1) * 60.0


# -- reads -------------------------------------------------------------------------------------


def test_scan_orders_and_filters(store: SQLiteBackend, clock: ManualClock) -> None:
    b_low, a_low, b_high, a_high = store.insert(
        [
            job(clock, name="b"),
            job(clock, name="a"),
            job(clock, name="b", priority=5),
            job(clock, name="a", priority=5),
        ]
    )
    ids = [j.id for j in store.scan(Selector(W), 0, 10)]  # run order, across names
    assert ids == [b_high.id, a_high.id, b_low.id, a_low.id]
    assert [j.id for j in store.scan(Selector(W, name="b"), 0, 10)] == [b_high.id, b_low.id]
    assert [j.id for j in store.scan(Selector(W), 1, 2)] == [a_high.id, b_low.id]
    late, soon = store.insert(
        [job(clock, run_at=clock() + 20), job(clock, name="b", run_at=clock() + 10)]
    )
    assert [j.id for j in store.scan(Selector(D), 0, 10)] == [soon.id, late.id]
    assert [j.id for j in store.scan(Selector(D, name="a"), 0, 10)] == [late.id]
    long = claim(store, "a", lease=100)
    short = claim(store, "b", lease=50)
    assert [j.id for j in store.scan(Selector(A), 0, 10)] == [short.job.id, long.job.id]
    assert store.scan(Selector(A), 0, 10)[0].lease_expires_at == short.lease_expires_at
    store.insert([job(clock, name="a")])
    finished = []
    for name in ("a", "b", "a"):
        c = claim(store, name)
        store.apply([complete(c)])
        finished.append(c.job.id)
        clock.advance(1)
    newest_first = finished[::-1]
    assert [j.id for j in store.scan(Selector(DONE), 0, 10)] == newest_first
    assert [j.id for j in store.scan(Selector(DONE, name="a"), 0, 10)] == [
        finished[2],
        finished[0],
    ]
    before = Selector(DONE, finished_before=clock() - 1)  # the first two
    assert [j.id for j in store.scan(before, 0, 10)] == [finished[1], finished[0]]
    strictly = Selector(DONE, finished_before=clock() - 2)  # the second finished at it
    assert [j.id for j in store.scan(strictly, 0, 10)] == [finished[0]]
    named_before = Selector(DONE, name="a", finished_before=clock() - 1)
    assert [j.id for j in store.scan(named_before, 0, 10)] == [finished[0]]
    # finished_before means nothing for a live state
    assert len(store.scan(Selector(A, finished_before=0.0), 0, 10)) == 2
    assert store.scan(Selector(FAILED), 0, 10) == []


def test_expired_lists_expired_leases_soonest_first(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    store.insert([job(clock) for _ in range(4)])
    c30 = claim(store, lease=30)
    c10 = claim(store, lease=10)
    c20 = claim(store, lease=20)
    c99 = claim(store, lease=99)
    assert store.expired(10) == []
    clock.advance(30)
    found = store.expired(10)
    assert [(x.job.id, x.token, x.lease_expires_at) for x in found] == [
        (c.job.id, c.token, c.lease_expires_at) for c in (c10, c20, c30)
    ]
    assert [x.job.id for x in store.expired(2)] == [c10.job.id, c20.job.id]
    assert c99.job.id not in {x.job.id for x in found}
    assert got(store, c10.job.id).state is A  # reads never write


def test_counts_follow_every_move(store: SQLiteBackend, clock: ManualClock) -> None:
    store.insert([job(clock), job(clock, name="b"), job(clock, name="b")])
    c = claim(store, "b")
    store.apply([Change(c.job.id, Held(c.token), FAILED, ended=Ended(AttemptOutcome.FAILED))])
    zero = dict.fromkeys(JobState, 0)
    assert store.counts() == {"a": {**zero, W: 1}, "b": {**zero, W: 1, FAILED: 1}}


def test_the_engine_and_a_hand_made_change_meet_in_one_write(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    engine = Engine(store)
    store.insert([job(clock), job(clock)])
    old, new = store.claim_many(WorkSpec(("a",)), 2)
    assert engine.complete(old.job.id, old.token, "old", None) is None
    assert store.apply([complete(old)])[0] == [Conflict(DONE, ended_by="complete")]
    assert store.apply([complete(new, "new")])[0] == [None]
    assert engine.complete(new.job.id, new.token, "again", None) is None  # a repeat, not lost
    assert got(store, new.job.id).result == "new"
    assert [j.result for j in store.scan(Selector(DONE), 0, 10)] == ["new", "old"]


def test_then_claims_up_to_its_limit_within_caps(store: SQLiteBackend, clock: ManualClock) -> None:
    store.insert([job(clock) for _ in range(5)])
    c = claim(store)
    spec = WorkSpec(("a",), 30, max_active={"a": 3})
    answers, claims = store.apply([complete(c)], then=ClaimAsk(spec, 4))
    assert answers == [None] and len(claims) == 3  # the cap, not the limit
    assert all(x.job.state is A and x.job.attempts_made == 1 for x in claims)
    assert store.apply([], then=ClaimAsk(spec, 4)) == ([], [])


def test_reads_show_a_record_that_does_not_decode(store: SQLiteBackend, clock: ManualClock) -> None:
    store.insert([job(clock)])
    c = claim(store, lease=10)
    conn = store._pool.get()  # what another program could have written into the file
    conn.execute("UPDATE jobqueue_jobs SET data = 'not json' WHERE id = ?", (int(c.job.id),))
    clock.advance(10)
    (found,) = store.expired(5)
    assert found.job.unreadable and found.token == c.token
    assert [j.unreadable for j in store.scan(Selector(A), 0, 5)] == [True]


def test_complete_and_claim_next_are_one_transaction_of_few_statements(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    spec = WorkSpec(("a",))
    store.insert([job(clock) for _ in range(4)])
    statements: list[str] = []
    store._pool.get().set_trace_callback(statements.append)  # every statement, triggers too
    c = claim(store)
    statements.clear()
    _, claims = store.apply([complete(c, "r")], then=ClaimAsk(spec, 1))
    assert len(claims) == 1
    assert sum(s.startswith("BEGIN") for s in statements) == 1
    # Before the seam the old complete took 32 (trigger steps included; its claim recovered
    # leases and applied retention inline, as claims no longer do).
    assert len(statements) <= 27, statements


def test_an_expired_lease_does_not_wake_an_idle_waiter(
    store: SQLiteBackend, clock: ManualClock
) -> None:
    """Claims no longer recover leases, so an expired one is nothing to claim: a waiter
    sleeps its timeout out instead of returning at once (and its dispatcher spinning)."""
    store.insert([job(clock)])
    claim(store, lease=5)
    clock.advance(10)
    started = time.monotonic()
    assert store.wait_for_work(["a"], 0.3) is False
    assert time.monotonic() - started >= 0.25
    assert store.claim_many(WorkSpec(("a",)), 1) == []  # still the core's to recover
