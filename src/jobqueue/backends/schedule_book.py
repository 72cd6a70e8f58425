"""Periodic schedules' records kept in dicts: the in-memory backend's (``claim_tick`` and the
schedule reads), and a ready-made piece for any backend that keeps its state in Python objects.

Not thread-safe by itself: the backend calls it under the lock of the transition, so a tick's
claim, the record's change and its job's submit are one step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from jobqueue import lifecycle
from jobqueue.backend import ScheduleRecord, TickClaim, TickEntry, TickOutcome, TickResult
from jobqueue.job import Job, JobState


@dataclass(slots=True)
class _Record:
    definition: str = ""
    last_tick: float | None = None
    last_job_id: str | None = None
    paused: bool = False
    missed: int = 0
    skipped: int = 0
    updated_at: float = 0.0
    recent: deque[TickEntry] = field(
        default_factory=lambda: deque(maxlen=lifecycle.SCHEDULE_TICKS_KEPT)
    )


class ScheduleBook:
    """Every schedule's record by name, with its recent ticks (newest first, bounded)."""

    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}

    def claim(
        self,
        claim: TickClaim,
        now: float,
        job_state: Callable[[str], JobState | None],
        submit: Callable[[Job], Job],
    ) -> TickResult:
        """Apply one tick claim (see ``Transitions.claim_tick``). ``job_state`` reads a job's
        state (``None``: no such job); ``submit`` stores a job as the backend's ``submit``
        does, returning it (``deduplicated`` when a live job held its unique key)."""
        record = self._records.get(claim.schedule)
        if record is not None and record.last_tick is not None and claim.tick <= record.last_tick:
            return TickResult(TickOutcome.ALREADY_CLAIMED)
        if record is None:
            record = self._records[claim.schedule] = _Record()
        record.last_tick = claim.tick
        record.definition = claim.definition
        record.missed += claim.missed
        record.updated_at = now
        last = record.last_job_id
        outcome = lifecycle.tick_outcome(
            claim.job is not None,
            record.paused,
            claim.overlap,
            None if last is None else job_state(last),
        )
        result = TickResult(outcome) if outcome is not None else None
        entry_job = last if outcome is TickOutcome.OVERLAP_SKIPPED else None
        if result is None:
            assert claim.job is not None
            stored = submit(claim.job)
            if stored.deduplicated:
                result, entry_job = TickResult(TickOutcome.OVERLAP_SKIPPED), stored.id
            else:
                result, entry_job = TickResult(TickOutcome.SUBMITTED, stored), stored.id
                record.last_job_id = stored.id
        if result.outcome in (TickOutcome.PAUSED, TickOutcome.OVERLAP_SKIPPED):
            record.skipped += 1
        record.recent.appendleft(TickEntry(claim.tick, result.outcome, entry_job))
        return result

    def set_paused(self, name: str, paused: bool, now: float) -> None:
        record = self._records.get(name)
        if record is None:
            record = self._records[name] = _Record(updated_at=now)
        if record.paused is not paused:
            record.paused = paused
            record.updated_at = now

    def remove(self, name: str) -> bool:
        return self._records.pop(name, None) is not None

    def get(self, name: str) -> ScheduleRecord | None:
        record = self._records.get(name)
        return None if record is None else _view(name, record)

    def all(self) -> list[ScheduleRecord]:
        return [_view(name, self._records[name]) for name in sorted(self._records)]


def _view(name: str, record: _Record) -> ScheduleRecord:
    return ScheduleRecord(
        name=name,
        definition=record.definition,
        last_tick=record.last_tick,
        last_job_id=record.last_job_id,
        paused=record.paused,
        missed=record.missed,
        skipped=record.skipped,
        updated_at=record.updated_at,
        recent=tuple(record.recent),
    )
