"""Periodic schedules (``Transitions.claim_tick`` and the schedule reads) as steps inside one
write transaction (``Txn``), and the reads that go with them.

A tick's claim reads the schedule's row, moves its high-water mark, stores the tick's job (the
very steps ``submit`` takes, ``transitions.store_jobs``), records the tick and trims the
recent ticks, all in the caller's ``BEGIN IMMEDIATE`` transaction: schedulers in any number of
threads and processes queue on the write lock, and the one that waited finds the mark moved.
As in ``.transitions``, nothing here commits; the semantics are ``jobqueue.backends.memory``'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from jobqueue import lifecycle
from jobqueue.backend import ScheduleRecord, TickClaim, TickEntry, TickOutcome, TickResult
from jobqueue.backends.sqlite.transitions import Txn, job_key, store_jobs
from jobqueue.job import JobState

_SCHEDULE_COLUMNS = "name, definition, last_tick, last_job_id, paused, missed, skipped, updated_at"


def claim_tick(txn: Txn, claim: TickClaim, row: tuple[Any, ...] | None) -> TickResult:
    """One tick claim (see ``Transitions.claim_tick``); ``row`` is the job's ``job_to_row``
    encoding, made before the transaction (a refused job changes nothing)."""
    found = txn.conn.execute(
        "SELECT last_tick, last_job_id, paused FROM jobqueue_schedules WHERE name = ?",
        (claim.schedule,),
    ).fetchone()
    if found is not None and found[0] is not None and claim.tick <= found[0]:
        return TickResult(TickOutcome.ALREADY_CLAIMED)
    last_job = None if found is None or found[1] is None else str(found[1])
    paused = found is not None and bool(found[2])
    outcome = lifecycle.tick_outcome(
        claim.job is not None, paused, claim.overlap, _job_state(txn.conn, last_job)
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
        txn.conn.execute(
            "INSERT INTO jobqueue_schedules (definition, last_tick, last_job_id, missed, "
            "skipped, updated_at, name, paused) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
            (*values, claim.schedule),
        )
    else:
        txn.conn.execute(
            "UPDATE jobqueue_schedules SET definition = ?, last_tick = ?, last_job_id = ?, "
            "missed = missed + ?, skipped = skipped + ?, updated_at = ? WHERE name = ?",
            (*values, claim.schedule),
        )
    txn.conn.execute(
        "INSERT INTO jobqueue_schedule_ticks (schedule, tick, outcome, job_id) VALUES (?, ?, ?, ?)",
        (claim.schedule, claim.tick, result.outcome.value, _key(entry_job)),
    )
    # Ticks only ever grow, so the newest are the highest: drop all past the kept ones.
    txn.conn.execute(
        "DELETE FROM jobqueue_schedule_ticks WHERE schedule = ? AND tick <= ("
        "SELECT tick FROM jobqueue_schedule_ticks WHERE schedule = ? "
        "ORDER BY tick DESC LIMIT 1 OFFSET ?)",
        (claim.schedule, claim.schedule, lifecycle.SCHEDULE_TICKS_KEPT),
    )
    return result


def _job_state(conn: sqlite3.Connection, job_id: str | None) -> JobState | None:
    key = None if job_id is None else job_key(job_id)
    if key is None:
        return None
    found = conn.execute("SELECT state FROM jobqueue_jobs WHERE id = ?", (key,)).fetchone()
    return None if found is None else JobState(found[0])


def _key(job_id: str | None) -> int | None:
    return None if job_id is None else job_key(job_id)


def set_paused(txn: Txn, name: str, paused: bool) -> None:
    """Pause or resume a schedule, making its record if it has none; ``updated_at`` moves
    only when something changed."""
    txn.conn.execute(
        "INSERT INTO jobqueue_schedules (name, definition, paused, updated_at) "
        "VALUES (?, '', ?, ?) ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, "
        "updated_at = excluded.updated_at WHERE paused != excluded.paused",
        (name, int(paused), txn.now),
    )


def remove(txn: Txn, name: str) -> bool:
    txn.conn.execute("DELETE FROM jobqueue_schedule_ticks WHERE schedule = ?", (name,))
    return txn.conn.execute("DELETE FROM jobqueue_schedules WHERE name = ?", (name,)).rowcount > 0


def records(conn: sqlite3.Connection, name: str | None = None) -> list[ScheduleRecord]:
    """Every schedule's record sorted by name (``name``: that one only), in the caller's
    snapshot, with its recent ticks newest first."""
    where, params = ("", ()) if name is None else (" WHERE name = ?", (name,))
    rows = conn.execute(
        f"SELECT {_SCHEDULE_COLUMNS} FROM jobqueue_schedules{where} ORDER BY name", params
    ).fetchall()
    if not rows:
        return []
    where = "" if name is None else " WHERE schedule = ?"
    ticks: dict[str, list[TickEntry]] = {}
    for schedule, at, outcome, job_id in conn.execute(
        "SELECT schedule, tick, outcome, job_id FROM jobqueue_schedule_ticks"
        f"{where} ORDER BY schedule, tick DESC",
        params,
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
