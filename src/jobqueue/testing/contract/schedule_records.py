"""Periodic schedules' records: pausing and resuming a schedule, the checked names, the
bounded recent ticks, the schedule reads, removal -- and schedulers racing for the same
ticks, each tick submitted once.

The race runs threads against one backend, or each against a backend of its own on the same
store when ``open_same_store`` opens one (a second connection, as another process would have).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from jobqueue import lifecycle
from jobqueue.backend import ScheduleRecord, TickResult
from jobqueue.engine import Engine
from jobqueue.errors import InvalidArgumentError
from jobqueue.job import JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.schedules import (
    ALREADY,
    DEFINITION,
    PAUSED,
    RECORDED,
    SUBMITTED,
    claim_tick,
    schedule_of,
    tick,
    total,
)
from jobqueue.testing.contract.support import ContractBase, MakeJob


class ScheduleRecordContract(ContractBase):
    """Contract tests of schedules' records and racing schedulers (see the module docstring)."""

    # -- pausing -----------------------------------------------------------------------------------

    def test_pause_and_resume(self, backend: Engine, new_job: MakeJob, clock: ManualClock) -> None:
        backend.pause_schedule("p")  # before its first tick: the record is made
        paused = schedule_of(backend, "p")
        assert paused == ScheduleRecord("p", "", None, None, True, 0, 0, clock(), ())
        backend.pause_schedule("p")  # again: no change
        assert schedule_of(backend, "p") == paused
        clock.advance(60)
        assert claim_tick(backend, "p", 1, new_job()) == TickResult(PAUSED, None)
        assert claim_tick(backend, "p", 1, new_job()).outcome is ALREADY
        assert claim_tick(backend, "p", 2, None).outcome is RECORDED  # a baseline needs no job
        record = schedule_of(backend, "p")
        assert (record.last_tick, record.skipped, record.paused) == (tick(2), 1, True)
        assert record.definition == DEFINITION and record.updated_at == clock()
        assert total(backend) == 0
        clock.advance(60)
        backend.resume_schedule("p")
        record = schedule_of(backend, "p")
        assert not record.paused and record.updated_at == clock()
        result = claim_tick(backend, "p", 3, new_job())
        assert result.outcome is SUBMITTED and result.job is not None
        assert [e.outcome for e in schedule_of(backend, "p").recent] == [
            SUBMITTED,
            RECORDED,
            PAUSED,
        ]
        backend.resume_schedule("never-paused")
        assert schedule_of(backend, "never-paused") == ScheduleRecord(
            "never-paused", "", None, None, False, 0, 0, clock(), ()
        )
        assert backend.paused() == frozenset()  # worker names are not schedules

    def test_schedule_names_are_checked(self, backend: Engine) -> None:
        for name in ("", "x" * 201, 7):
            with pytest.raises(InvalidArgumentError):
                backend.pause_schedule(name)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError):
                backend.resume_schedule(name)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError):
                backend.remove_schedule(name)  # type: ignore[arg-type]
        assert backend.schedule_records() == []

    # -- records -----------------------------------------------------------------------------------

    def test_recent_ticks_are_bounded_newest_first(self, backend: Engine) -> None:
        kept = lifecycle.SCHEDULE_TICKS_KEPT
        for n in range(kept + 7):
            claim_tick(backend, "s", n, None)
        recent = schedule_of(backend, "s").recent
        assert len(recent) == kept
        assert [e.tick for e in recent] == [tick(n) for n in range(kept + 6, 6, -1)]

    def test_records_list_by_name_and_reads_change_nothing(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        odd = "nightly: report {x} ✓"
        for name in ("b", odd, "a"):
            claim_tick(backend, name, 1, new_job(), overlap="allow")
            clock.advance(1)
        backend.pause_schedule("c")
        first = backend.schedule_records()
        assert [r.name for r in first] == sorted(["a", "b", "c", odd])
        assert backend.schedule_records() == first
        assert [backend.schedule_record(r.name) for r in first] == first
        assert backend.schedule_record("missing") is None
        assert claim_tick(backend, odd, 1, new_job()).outcome is ALREADY

    def test_remove_schedule_forgets_it(self, backend: Engine, new_job: MakeJob) -> None:
        result = claim_tick(backend, "old", 5, new_job())
        assert result.job is not None
        claim_tick(backend, "kept", 1, None)
        assert backend.remove_schedule("old") is True
        assert backend.remove_schedule("old") is False
        assert backend.schedule_record("old") is None
        assert [r.name for r in backend.schedule_records()] == ["kept"]
        assert backend.get(result.job.id) is not None  # its jobs stay
        # Declared again later, it starts over: its old mark is gone with it.
        assert claim_tick(backend, "old", 1, None).outcome is RECORDED

    # -- racing schedulers -------------------------------------------------------------------------

    def test_racing_schedulers_submit_once_per_tick(
        self, backend: Engine, new_job: MakeJob, same_store: Callable[[], Engine]
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
                    claimed = claim_tick(backends[index], "race", n, job, overlap="allow")
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
        record = schedule_of(backend, "race")
        assert record.last_tick == tick(ticks) and record.last_job_id == won[ticks][0]
        assert [(e.tick, e.job_id) for e in record.recent] == [
            (tick(n), won[n][0]) for n in range(ticks, 0, -1)
        ]
