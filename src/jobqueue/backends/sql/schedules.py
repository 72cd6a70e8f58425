"""Periodic schedules (``Transitions.claim_tick`` and the schedule reads) as steps inside one
write transaction (``Txn``), and the reads that go with them.

A tick's claim reads the schedule's row, moves its high-water mark, stores the tick's job (the
very steps ``submit`` takes, ``transitions.store_jobs``), records the tick and trims the
recent ticks, all in the caller's write transaction: schedulers in any number of
threads and processes queue on the write lock, and the one that waited finds the mark moved.
As in ``.transitions``, nothing here commits; the semantics are ``jobqueue.backends.memory``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobqueue import lifecycle
from jobqueue.backend import ScheduleRecord, TickClaim, TickEntry, TickOutcome, TickResult
from jobqueue.backends.sql.dialect import Reader
from jobqueue.backends.sql.rows import SQLValue
from jobqueue.backends.sql.transitions import Txn, job_key, store_jobs
from jobqueue.job import JobState


def claim_tick(txn: Txn, claim: TickClaim, row: tuple[SQLValue, ...] | None) -> TickResult:
    """One tick claim (see ``Transitions.claim_tick``); ``row`` is the job's ``job_to_row``
    encoding, made before the transaction (a refused job changes nothing)."""
    found = txn.conn.execute(txn.sql.SCHEDULE_MARK, (claim.schedule,)).fetchone()
    if found is not None and found[0] is not None and claim.tick <= found[0]:
        return TickResult(TickOutcome.ALREADY_CLAIMED)
    last_job = None if found is None or found[1] is None else str(found[1])
    paused = found is not None and bool(found[2])
    outcome = lifecycle.tick_outcome(
        claim.job is not None, paused, claim.overlap, _job_state(txn, last_job)
    )
    result = TickResult(outcome) if outcome is not None else None
    entry_job = last_job if outcome is TickOutcome.OVERLAP_SKIPPED else None
    if result is None:
        assert claim.job is not None and row is not None
        (stored,) = store_jobs(txn, [claim.job], [row])
        entry_job = stored.id
        if stored.deduplicated:  # another live job holds its unique key: nothing stored
            result = TickResult(TickOutcome.OVERLAP_SKIPPED)
        else:
            result = TickResult(TickOutcome.SUBMITTED, stored)
            last_job = stored.id
    skipped = int(result.outcome in (TickOutcome.PAUSED, TickOutcome.OVERLAP_SKIPPED))
    values = (claim.definition, claim.tick, _key(last_job), claim.missed, skipped, txn.now)
    if found is None:
        txn.conn.execute(txn.sql.INSERT_SCHEDULE, (*values, claim.schedule))
    else:
        txn.conn.execute(txn.sql.UPDATE_SCHEDULE, (*values, claim.schedule))
    txn.conn.execute(
        txn.sql.INSERT_TICK,
        (claim.schedule, claim.tick, result.outcome.value, _key(entry_job)),
    )
    # Ticks only ever grow, so the newest are the highest: drop all past the kept ones.
    txn.conn.execute(
        txn.sql.TRIM_TICKS,
        (claim.schedule, claim.schedule, lifecycle.SCHEDULE_TICKS_KEPT),
    )
    return result


def _job_state(db: Reader, job_id: str | None) -> JobState | None:
    key = None if job_id is None else job_key(job_id)
    if key is None:
        return None
    found = db.conn.execute(db.sql.JOB_STATE, (key,)).fetchone()
    return None if found is None else JobState(found[0])


def _key(job_id: str | None) -> int | None:
    return None if job_id is None else job_key(job_id)


def set_paused(txn: Txn, name: str, paused: bool) -> None:
    """Pause or resume a schedule, making its record if it has none; ``updated_at`` moves
    only when something changed."""
    txn.conn.execute(
        txn.sql.SET_SCHEDULE_PAUSED,
        (name, int(paused), txn.now),
    )


def remove(txn: Txn, name: str) -> bool:
    txn.conn.execute(txn.sql.REMOVE_TICKS, (name,))
    return txn.conn.execute(txn.sql.REMOVE_SCHEDULE, (name,)).rowcount > 0


def records(db: Reader, name: str | None = None) -> list[ScheduleRecord]:
    """Every schedule's record sorted by name (``name``: that one only), in the caller's
    snapshot, with its recent ticks newest first."""
    params = () if name is None else (name,)
    sql = db.sql
    rows = db.conn.execute(sql.SCHEDULES if name is None else sql.SCHEDULE, params).fetchall()
    if not rows:
        return []
    ticks: dict[str, list[TickEntry]] = {}
    for schedule, at, outcome, job_id in db.conn.execute(
        sql.TICKS if name is None else sql.TICKS_OF, params
    ):
        entry = TickEntry(float(at), TickOutcome(outcome), None if job_id is None else str(job_id))
        ticks.setdefault(schedule, []).append(entry)
    return [_record(row, ticks.get(row[0], ())) for row in rows]


def _record(row: Sequence[Any], recent: Sequence[TickEntry]) -> ScheduleRecord:
    return ScheduleRecord(
        name=row[0],
        definition=row[1],
        last_tick=None if row[2] is None else float(row[2]),
        last_job_id=None if row[3] is None else str(row[3]),
        paused=bool(row[4]),
        missed=int(row[5]),
        skipped=int(row[6]),
        updated_at=float(row[7]),
        recent=tuple(recent),
    )
