"""The periodic schedules' part of the contract: ``claim_tick`` (the high-water mark that makes
each (schedule, tick) submit at most one job, however many schedulers race), the overlap
rules, pauses, the missed and skipped counters, bounded recent ticks, and the schedule reads.
Mixed into ``BackendContract``; uses its fixtures (``backend``, ``open_backend``, ``new_job``,
``clock``).

The race runs threads against one backend, or each against a backend of its own on the same
store when ``open_same_store`` opens one (a second connection, as another process would have).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from jobqueue import lifecycle
from jobqueue.backend import (
    Backend,
    BackendOptions,
    Retention,
    ScheduleRecord,
    TickClaim,
    TickEntry,
    TickOutcome,
    TickResult,
    WorkSpec,
)
from jobqueue.errors import InvalidArgumentError, NotSerializableError
from jobqueue.job import Job, JobError, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.fixture_types import MakeJob, OpenBackend

T0 = 1_700_000_040.0  # a whole minute
DEFINITION = '{"every":60}'

SUBMITTED = TickOutcome.SUBMITTED
RECORDED = TickOutcome.RECORDED
ALREADY = TickOutcome.ALREADY_CLAIMED
SKIPPED = TickOutcome.OVERLAP_SKIPPED
PAUSED = TickOutcome.PAUSED


def tick(n: int) -> float:
    """The n-th tick of a once-a-minute schedule."""
    return T0 + 60.0 * n


def _claim(
    backend: Backend,
    schedule: str,
    n: int,
    job: Job | None,
    *,
    missed: int = 0,
    overlap: str = "skip",
    definition: str = DEFINITION,
) -> TickResult:
    return backend.claim_tick(TickClaim(schedule, definition, tick(n), job, missed, overlap))


def _record(backend: Backend, name: str) -> ScheduleRecord:
    record = backend.schedule_record(name)
    assert record is not None, f"schedule {name!r} has no record"
    return record


def _total(backend: Backend) -> int:
    return sum(backend.count_by_state().values())


class ScheduleContract:
    """Contract tests of periodic schedules' tick claims and records (see the module
    docstring). Override ``open_same_store`` to race separate connections."""

    def open_same_store(self, backend: Backend, options: BackendOptions) -> Backend | None:
        """Another backend on ``backend``'s store (a second connection), or ``None`` when
        the store cannot be shared (then threads share ``backend`` itself). Closed with
        ``close()`` after the test; never disposed of as a store of its own."""
        return None

    @pytest.fixture
    def same_store(self, backend: Backend, clock: ManualClock) -> Iterator[Callable[[], Backend]]:
        opened: list[Backend] = []

        def same_store() -> Backend:
            other = self.open_same_store(backend, BackendOptions(clock=clock))
            if other is None:
                return backend
            opened.append(other)
            return other

        yield same_store
        for other in opened:
            other.close()

    # -- the high-water mark ------------------------------------------------------------------

    def test_a_first_claim_without_a_job_records_the_baseline(
        self, backend: Backend, clock: ManualClock
    ) -> None:
        assert backend.schedule_record("nightly") is None
        assert backend.schedule_records() == []
        result = _claim(backend, "nightly", 0, None)
        assert result == TickResult(RECORDED, None)
        assert _record(backend, "nightly") == ScheduleRecord(
            name="nightly",
            definition=DEFINITION,
            last_tick=tick(0),
            last_job_id=None,
            paused=False,
            missed=0,
            skipped=0,
            updated_at=clock(),
            recent=(TickEntry(tick(0), RECORDED, None),),
        )
        assert _total(backend) == 0
        assert _claim(backend, "nightly", 0, None).outcome is ALREADY

    def test_a_tick_submits_once_and_older_ticks_are_already_claimed(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        _claim(backend, "s", 0, None)
        clock.advance(60)
        result = _claim(backend, "s", 1, new_job(data={"tick": 1}))
        assert result.outcome is SUBMITTED and result.job is not None
        job = result.job
        assert job.id and job.state is JobState.WAITING and job.data == {"tick": 1}
        stored = backend.get(job.id)
        assert stored is not None and stored.to_dict() == job.to_dict()
        after = _record(backend, "s")
        assert (after.last_tick, after.last_job_id, after.updated_at) == (tick(1), job.id, clock())
        assert after.recent[0] == TickEntry(tick(1), SUBMITTED, job.id)
        clock.advance(5)
        for n in (1, 0, -3):  # the same tick again, and older ones: nothing changes
            again = _claim(backend, "s", n, new_job(data={"tick": n}), missed=4)
            assert again == TickResult(ALREADY, None)
        assert _record(backend, "s") == after
        assert _total(backend) == 1

    def test_ascending_ticks_each_submit_once(self, backend: Backend, new_job: MakeJob) -> None:
        ids = []
        for n in range(1, 8):
            result = _claim(backend, "s", n, new_job(data=n), overlap="allow")
            assert result.outcome is SUBMITTED and result.job is not None
            ids.append(result.job.id)
            assert _claim(backend, "s", n, new_job(data=n), overlap="allow").outcome is ALREADY
        assert len(set(ids)) == 7
        assert backend.count_by_state()[JobState.WAITING] == 7
        record = _record(backend, "s")
        assert record.last_job_id == ids[-1] and record.last_tick == tick(7)
        assert [(e.tick, e.outcome, e.job_id) for e in record.recent] == [
            (tick(n), SUBMITTED, ids[n - 1]) for n in range(7, 0, -1)
        ]
        assert (record.missed, record.skipped) == (0, 0)

    def test_the_definition_follows_the_winning_claims(
        self, backend: Backend, new_job: MakeJob
    ) -> None:
        _claim(backend, "s", 1, None, definition='{"every":60}')
        _claim(backend, "s", 1, None, definition='{"every":5}')  # lost: not stored
        assert _record(backend, "s").definition == '{"every":60}'
        _claim(backend, "s", 2, None, definition='{"every":30}')
        assert _record(backend, "s").definition == '{"every":30}'

    def test_missed_and_skipped_are_counted_by_winning_claims(
        self, backend: Backend, new_job: MakeJob
    ) -> None:
        _claim(backend, "s", 0, None)
        assert _claim(backend, "s", 4, new_job(), missed=3).outcome is SUBMITTED
        assert _claim(backend, "s", 4, new_job(), missed=9).outcome is ALREADY
        record = _record(backend, "s")
        assert (record.missed, record.skipped) == (3, 0)
        assert _claim(backend, "s", 7, new_job(), missed=2).outcome is SKIPPED
        assert _claim(backend, "s", 8, None, missed=1).outcome is RECORDED
        record = _record(backend, "s")
        assert (record.missed, record.skipped) == (6, 1)
        assert [e.outcome for e in record.recent] == [RECORDED, SKIPPED, SUBMITTED, RECORDED]

    # -- overlap ------------------------------------------------------------------------------

    def _previous_job_in(self, backend: Backend, name: str, state: str) -> None:
        """Move the only job of worker ``name`` (just submitted, waiting or delayed) on."""
        job = backend.list_jobs(JobState.WAITING) + backend.list_jobs(JobState.DELAYED)
        (mine,) = [j for j in job if j.name == name]
        if state in ("waiting", "delayed"):
            assert mine.state is JobState(state)
            return
        if state == "cancelled":
            assert backend.cancel(mine.id) is JobState.CANCELLED
            return
        if state == "removed":
            assert backend.remove(mine.id)
            return
        claim = backend.claim(WorkSpec((name,), 30.0))
        assert claim is not None and claim.job.id == mine.id
        if state == "completed":
            backend.complete(mine.id, claim.token, None, None)
        elif state == "failed":
            backend.fail(mine.id, claim.token, JobError("E", "x"), None)
        assert _read_state(backend, mine.id) is JobState(state)

    @pytest.mark.parametrize("overlap", ["skip", "allow", "queue"])
    def test_overlap_against_the_previous_tick_job(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock, overlap: str
    ) -> None:
        states = ["waiting", "delayed", "active", "completed", "failed", "cancelled", "removed"]
        blocked = {"skip": {"waiting", "delayed", "active"}, "queue": {"waiting", "delayed"}}
        for state in states:
            name = f"w-{state}"
            run_at = clock() + 3600 if state == "delayed" else clock()
            first = _claim(backend, name, 1, new_job(name, run_at=run_at), overlap=overlap)
            assert first.outcome is SUBMITTED and first.job is not None
            self._previous_job_in(backend, name, state)
            before = _total(backend)
            second = _claim(backend, name, 2, new_job(name), overlap=overlap)
            record = _record(backend, name)
            if state in blocked.get(overlap, set()):
                assert second == TickResult(SKIPPED, None), (overlap, state)
                assert _total(backend) == before
                assert record.last_job_id == first.job.id and record.skipped == 1
                assert record.recent[0] == TickEntry(tick(2), SKIPPED, first.job.id)
            else:
                assert second.outcome is SUBMITTED and second.job is not None, (overlap, state)
                assert _total(backend) == before + 1
                assert record.last_job_id == second.job.id and record.skipped == 0
                assert record.recent[0] == TickEntry(tick(2), SUBMITTED, second.job.id)
            assert record.last_tick == tick(2)

    def test_a_purged_or_retained_away_last_job_no_longer_blocks(
        self, open_backend: OpenBackend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend = open_backend(retention=Retention(completed_count=0))
        first = _claim(backend, "s", 1, new_job())
        assert first.job is not None
        claim = backend.claim(WorkSpec(("a",), 30.0))
        assert claim is not None and claim.job.id == first.job.id
        backend.complete(first.job.id, claim.token, None, None)
        backend.maintain()  # retention keeps no completed job
        assert backend.get(first.job.id) is None
        second = _claim(backend, "s", 2, new_job())
        assert second.outcome is SUBMITTED and second.job is not None
        claim = backend.claim(WorkSpec(("a",), 30.0))
        assert claim is not None
        backend.fail(second.job.id, claim.token, JobError("E", "x"), None)
        assert backend.purge(JobState.FAILED) == 1
        assert _record(backend, "s").last_job_id == second.job.id  # kept, pointing at nothing
        assert _claim(backend, "s", 3, new_job()).outcome is SUBMITTED

    def test_a_unique_key_held_by_a_live_job_skips_the_tick(
        self, backend: Backend, new_job: MakeJob
    ) -> None:
        holder = backend.submit(new_job(unique_key="report"))
        result = _claim(backend, "s", 1, new_job(unique_key="report"), overlap="allow")
        assert result == TickResult(SKIPPED, None)
        assert _total(backend) == 1
        record = _record(backend, "s")
        assert (record.last_tick, record.last_job_id, record.skipped) == (tick(1), None, 1)
        assert record.recent == (TickEntry(tick(1), SKIPPED, holder.id),)
        claim = backend.claim(WorkSpec(("a",), 30.0))
        assert claim is not None and claim.job.id == holder.id
        backend.complete(holder.id, claim.token, None, None)
        fresh = _claim(backend, "s", 2, new_job(unique_key="report"), overlap="allow")
        assert fresh.outcome is SUBMITTED and fresh.job is not None
        assert fresh.job.id != holder.id and not fresh.job.deduplicated
        assert _record(backend, "s").last_job_id == fresh.job.id

    # -- the job, as submit stores it ---------------------------------------------------------

    def test_the_job_is_stored_as_submit_stores_it(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = new_job("report", data={"day": "mon"}, title="Monday", priority=3)
        later = _claim(backend, "s", 1, new_job("report", run_at=clock() + 30), overlap="allow")
        assert later.job is not None and later.job.state is JobState.DELAYED
        now = _claim(backend, "s", 2, job, overlap="allow")
        assert now.job is not None and now.job.state is JobState.WAITING
        for made in (later.job, now.job):
            stored = backend.get(made.id)
            assert stored is not None and stored.to_dict() == made.to_dict()
        assert (now.job.title, now.job.priority, now.job.data) == ("Monday", 3, {"day": "mon"})
        counts = backend.count_by_name()["report"]
        assert (counts[JobState.WAITING], counts[JobState.DELAYED]) == (1, 1)
        claim = backend.claim(WorkSpec(("report",), 30.0))
        assert claim is not None and claim.job.id == now.job.id

    def test_a_submitted_tick_wakes_idle_dispatchers(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        result: list[bool] = []
        about_to_block = clock.read_elsewhere()
        waiter = threading.Thread(target=lambda: result.append(backend.wait_for_work(["a"], 20)))
        waiter.start()
        assert about_to_block.wait(10), "wait_for_work never looked at the clock"
        assert _claim(backend, "s", 1, new_job()).outcome is SUBMITTED
        waiter.join(timeout=15)
        assert not waiter.is_alive(), "wait_for_work was not woken by a submitted tick"
        assert result == [True]

    def test_a_refused_job_changes_nothing(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        bad = new_job(data={"not json": {1, 2}})
        with pytest.raises(NotSerializableError):
            _claim(backend, "fresh", 1, bad)
        assert backend.schedule_record("fresh") is None
        _claim(backend, "s", 1, None)
        before = _record(backend, "s")
        clock.advance(60)
        with pytest.raises(NotSerializableError):
            _claim(backend, "s", 2, bad, missed=3)
        assert _record(backend, "s") == before
        assert _total(backend) == 0
        assert _claim(backend, "s", 2, new_job()).outcome is SUBMITTED  # the tick is still open

    def test_a_malformed_claim_cannot_be_made(self, new_job: MakeJob) -> None:
        for schedule, definition, at, missed, overlap in [
            ("", DEFINITION, T0, 0, "skip"),
            (1, DEFINITION, T0, 0, "skip"),
            ("s", "not json", T0, 0, "skip"),
            ("s", DEFINITION, T0 + 0.5, 0, "skip"),
            ("s", DEFINITION, float("nan"), 0, "skip"),
            ("s", DEFINITION, -60.0, 0, "skip"),
            ("s", DEFINITION, True, 0, "skip"),
            ("s", DEFINITION, T0, -1, "skip"),
            ("s", DEFINITION, T0, 0, "sometimes"),
        ]:
            with pytest.raises(InvalidArgumentError):
                TickClaim(schedule, definition, at, new_job(), missed, overlap)  # type: ignore[arg-type]
        assert TickClaim("s", DEFINITION, int(T0), None).tick == T0

    # -- pausing ------------------------------------------------------------------------------

    def test_pause_and_resume(self, backend: Backend, new_job: MakeJob, clock: ManualClock) -> None:
        backend.pause_schedule("p")  # before its first tick: the record is made
        paused = _record(backend, "p")
        assert paused == ScheduleRecord("p", "", None, None, True, 0, 0, clock(), ())
        backend.pause_schedule("p")  # again: no change
        assert _record(backend, "p") == paused
        clock.advance(60)
        assert _claim(backend, "p", 1, new_job()) == TickResult(PAUSED, None)
        assert _claim(backend, "p", 1, new_job()).outcome is ALREADY
        assert _claim(backend, "p", 2, None).outcome is RECORDED  # a baseline needs no job
        record = _record(backend, "p")
        assert (record.last_tick, record.skipped, record.paused) == (tick(2), 1, True)
        assert record.definition == DEFINITION and record.updated_at == clock()
        assert _total(backend) == 0
        clock.advance(60)
        backend.resume_schedule("p")
        record = _record(backend, "p")
        assert not record.paused and record.updated_at == clock()
        result = _claim(backend, "p", 3, new_job())
        assert result.outcome is SUBMITTED and result.job is not None
        assert [e.outcome for e in _record(backend, "p").recent] == [SUBMITTED, RECORDED, PAUSED]
        backend.resume_schedule("never-paused")
        assert _record(backend, "never-paused") == ScheduleRecord(
            "never-paused", "", None, None, False, 0, 0, clock(), ()
        )
        assert backend.paused() == frozenset()  # worker names are not schedules

    def test_schedule_names_are_checked(self, backend: Backend) -> None:
        for name in ("", "x" * 201, 7):
            with pytest.raises(InvalidArgumentError):
                backend.pause_schedule(name)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError):
                backend.resume_schedule(name)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError):
                backend.remove_schedule(name)  # type: ignore[arg-type]
        assert backend.schedule_records() == []

    # -- records ------------------------------------------------------------------------------

    def test_recent_ticks_are_bounded_newest_first(self, backend: Backend) -> None:
        kept = lifecycle.SCHEDULE_TICKS_KEPT
        for n in range(kept + 7):
            _claim(backend, "s", n, None)
        recent = _record(backend, "s").recent
        assert len(recent) == kept
        assert [e.tick for e in recent] == [tick(n) for n in range(kept + 6, 6, -1)]

    def test_records_list_by_name_and_reads_change_nothing(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        odd = "nightly: report {x} ✓"
        for name in ("b", odd, "a"):
            _claim(backend, name, 1, new_job(), overlap="allow")
            clock.advance(1)
        backend.pause_schedule("c")
        first = backend.schedule_records()
        assert [r.name for r in first] == sorted(["a", "b", "c", odd])
        assert backend.schedule_records() == first
        assert [backend.schedule_record(r.name) for r in first] == first
        assert backend.schedule_record("missing") is None
        assert _claim(backend, odd, 1, new_job()).outcome is ALREADY

    def test_remove_schedule_forgets_it(self, backend: Backend, new_job: MakeJob) -> None:
        result = _claim(backend, "old", 5, new_job())
        assert result.job is not None
        _claim(backend, "kept", 1, None)
        assert backend.remove_schedule("old") is True
        assert backend.remove_schedule("old") is False
        assert backend.schedule_record("old") is None
        assert [r.name for r in backend.schedule_records()] == ["kept"]
        assert backend.get(result.job.id) is not None  # its jobs stay
        # Declared again later, it starts over: its old mark is gone with it.
        assert _claim(backend, "old", 1, None).outcome is RECORDED

    # -- racing schedulers --------------------------------------------------------------------

    def test_racing_schedulers_submit_once_per_tick(
        self, backend: Backend, new_job: MakeJob, same_store: Callable[[], Backend]
    ) -> None:
        schedulers, ticks = 6, 12
        backends = [same_store() for _ in range(schedulers)]
        start = threading.Barrier(schedulers)
        results: list[list[tuple[int, TickResult]]] = [[] for _ in range(schedulers)]
        errors: list[BaseException] = []

        def scheduler(index: int) -> None:
            try:
                start.wait(10)
                for n in range(1, ticks + 1):
                    job = new_job(data={"tick": n})
                    claimed = _claim(backends[index], "race", n, job, overlap="allow")
                    results[index].append((n, claimed))
            except BaseException as exc:  # reported below, with the thread's others
                errors.append(exc)

        threads = [threading.Thread(target=scheduler, args=(i,)) for i in range(schedulers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads), "a scheduler hung"
        assert not errors, errors
        won: dict[int, list[str]] = {}
        for mine in results:
            assert len(mine) == ticks
            for n, result in mine:
                assert result.outcome in (SUBMITTED, ALREADY), result
                if result.outcome is SUBMITTED:
                    assert result.job is not None and result.job.data == {"tick": n}
                    won.setdefault(n, []).append(result.job.id)
        assert {n: len(ids) for n, ids in won.items()} == dict.fromkeys(range(1, ticks + 1), 1)
        assert backend.count_by_state()[JobState.WAITING] == ticks
        record = _record(backend, "race")
        assert record.last_tick == tick(ticks) and record.last_job_id == won[ticks][0]
        assert [(e.tick, e.job_id) for e in record.recent] == [
            (tick(n), won[n][0]) for n in range(ticks, 0, -1)
        ]


def _read_state(backend: Backend, job_id: str) -> JobState | None:
    job = backend.get(job_id)
    return None if job is None else job.state
