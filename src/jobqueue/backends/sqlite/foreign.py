"""Rows written by something other than jobqueue: values of the wrong SQLite type.

Since schema version 9 the jobs table refuses them (a ``CHECK (typeof(...))`` per column);
before it, any process holding the file could store, say, a text ``priority``. The claim sorts
on ``priority`` and ``seq`` before it decodes anything, so such a value would crash every
claim instead of failing one job. Migration 9 fails the live jobs that carry one
(``fail_foreign_typed_rows``), and the claim still checks its sort keys (``sort_key_problem``)
for a file written with ``PRAGMA ignore_check_constraints``. Both give the reason in the same
words as ``CorruptJobError``.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from jobqueue import lifecycle
from jobqueue.backends.sqlite.rows import error_json
from jobqueue.backends.sqlite.transitions import Held, Txn, write
from jobqueue.job import JobError, JobState

logger = logging.getLogger("jobqueue.backends.sqlite")

# The SQLite type each plain column of the jobs table must hold (``typeof``) and whether it
# may be NULL, as migration 9 checks them: part of a released step, so never edited (a later
# change of the checks is a new migration with its own table). The JSON columns (backoff,
# data, result, error, history) are not here: decoding them turns anything foreign into
# ``CorruptJobError`` already, and a blob of valid UTF-8 JSON decodes fine.
V9_TYPES: dict[str, tuple[str, bool]] = {
    "name": ("text", False),
    "priority": ("integer", False),
    "seq": ("integer", False),
    "run_at": ("real", False),
    "lease_token": ("text", True),
    "lease_expires_at": ("real", True),
    "unique_key": ("text", True),
    "attempts": ("integer", False),
    "attempts_made": ("integer", False),
    "stalls": ("integer", False),
    "created_at": ("real", False),
    "started_at": ("real", True),
    "finished_at": ("real", True),
    "progress": ("real", False),
    "progress_message": ("text", True),
    "title": ("text", True),
    "timeout": ("real", True),
    "dispatcher": ("text", True),
    "ended_lease": ("text", True),
}

V9_STATES = ("waiting", "delayed", "active", "completed", "failed", "cancelled")
LIVE_STATES = frozenset(state.value for state in JobState if state.is_live)

# What a bad value is replaced with so that the row fits the checked table. The row itself is
# failed when it was live (its reason names the original values), so these only need to be
# valid; ``seq`` and ``finished_at`` are set by the failing itself.
_PLACEHOLDERS: dict[str, object] = {
    "priority": 0,
    "attempts": 1,
    "attempts_made": 0,
    "stalls": 0,
    "progress": 0.0,
}


def _sql_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "text"
    return "blob"


def describe(column: str, value: object, expected: str) -> str:
    """``column 'priority' holds text 'high', not integer`` (the value cut short)."""
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"column {column!r} holds {_sql_type(value)} {shown}, not {expected}"


def sort_key_problem(priority: object, seq: object) -> str | None:
    """Why a waiting row's ``priority``/``seq`` cannot be ordered (``None`` when they can)."""
    for column, value in (("priority", priority), ("seq", seq)):
        if type(value) is not int:
            return describe(column, value, "integer")
    return None


def corrupt_error(key: int, reason: str) -> JobError:
    """The error of a job failed as corrupt (``lifecycle.corrupt_error``)."""
    return lifecycle.corrupt_error(str(key), reason)


def fail_corrupt(txn: Txn, key: int, reason: str) -> None:
    """Fail a job the claim cannot hand out (its record does not decode, or its sort keys
    are not numbers), as ``lifecycle.on_corrupt`` decides: never hand a dispatcher what it
    cannot decode, and never crash it; the claim goes on to the next job."""
    logger.error("failing job %s: its stored record cannot be decoded: %s", key, reason)
    write(txn, Held.at_rest(key, JobState.ACTIVE), lifecycle.on_corrupt(str(key), reason))


def waiting_head(txn: Txn, name: str) -> tuple[int, int, int] | None:
    """``(priority, seq, id)`` of the waiting job of ``name`` a claim takes next. A row whose
    sort keys are not integers is failed as corrupt on the way: text and blobs sort before
    every number, so such a row would be the head of its name for good. Since migration 9
    only a file written with its CHECKs switched off can hold one."""
    while True:
        row = txn.conn.execute(
            "SELECT priority, seq, id FROM jobqueue_jobs WHERE state = 'waiting' "
            "AND name = ? ORDER BY priority DESC, seq LIMIT 1",
            (name,),
        ).fetchone()
        problem = None if row is None else sort_key_problem(row[0], row[1])
        if problem is None:
            return None if row is None else (row[0], row[1], row[2])
        fail_corrupt(txn, row[2], problem)


def fail_foreign_typed_rows(conn: sqlite3.Connection, now: float) -> int:
    """Make every row fit migration 9's checks, inside the caller's transaction: a live job
    with a wrong-typed value, and a row whose state is no job state, is failed as corrupt
    with the reason; a finished one keeps its state (nothing runs it again). Bad values are
    replaced either way. Returns how many rows were changed: one read of the table, and
    nothing written when every row is fine."""
    checks = []
    for column, (kind, nullable) in V9_TYPES.items():
        allowed = f"'{kind}', 'null'" if nullable else f"'{kind}'"
        checks.append(f"typeof({column}) NOT IN ({allowed})")
    states = ", ".join(f"'{state}'" for state in V9_STATES)
    columns = list(V9_TYPES)
    rows = conn.execute(
        f"SELECT id, state, {', '.join(columns)} FROM jobqueue_jobs "
        f"WHERE typeof(state) != 'text' OR state NOT IN ({states}) OR {' OR '.join(checks)}"
    ).fetchall()
    if not rows:
        return 0
    (seq,) = conn.execute("SELECT value FROM jobqueue_meta WHERE key = 'seq'").fetchone()
    for row in rows:
        key, state, values = row[0], row[1], dict(zip(columns, row[2:], strict=True))
        reasons = [] if state in V9_STATES else [describe("state", state, "a job state")]
        fixed: dict[str, Any] = {}
        for column, (kind, nullable) in V9_TYPES.items():
            value = values[column]
            if _sql_type(value) == kind or (nullable and value is None):
                continue
            reasons.append(describe(column, value, kind))
            if column == "name":  # TEXT affinity turns numbers into text: a blob gets here
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else None
                fixed[column] = str(value) if text is None else text
            elif column in ("run_at", "created_at", "finished_at"):
                fixed[column] = now
            else:
                fixed[column] = _PLACEHOLDERS.get(column)  # None for the nullable ones
        reason = "; ".join(reasons)
        if state in LIVE_STATES or state not in V9_STATES:
            logger.error("job %s: failing it, its stored record is unreadable: %s", key, reason)
            seq += 1
            fixed.update(
                state="failed",
                finished_at=now,
                seq=seq,  # as a finish takes one: retention removes the first finished first
                lease_token=None,
                lease_expires_at=None,
                dispatcher=None,
                error=error_json(corrupt_error(key, reason)),
            )
        else:
            logger.warning("job %s: replacing foreign-typed values: %s", key, reason)
            if "seq" in fixed:
                seq += 1
                fixed["seq"] = seq
        assignments = ", ".join(f"{column} = ?" for column in fixed)
        conn.execute(f"UPDATE jobqueue_jobs SET {assignments} WHERE id = ?", (*fixed.values(), key))
    conn.execute("UPDATE jobqueue_meta SET value = ? WHERE key = 'seq'", (seq,))
    # The triggers follow state changes only; a replaced name moved no count: count afresh.
    conn.execute("DELETE FROM jobqueue_name_counts")
    conn.execute(
        "INSERT INTO jobqueue_name_counts (name, state, n) "
        "SELECT name, state, COUNT(*) FROM jobqueue_jobs GROUP BY name, state"
    )
    return len(rows)
