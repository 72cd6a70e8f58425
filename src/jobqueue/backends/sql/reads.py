"""Reads: jobs, listings, counts, paused names, live dispatchers, and what ``wait_for_work``
checks. Each takes a connection inside whatever transaction the caller holds (a deferred
read snapshot, or a transition's write transaction) and never writes: a dashboard or a
metrics scrape costs no transition and takes no write lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from jobqueue import lifecycle
from jobqueue.backend import DispatcherInfo
from jobqueue.backends.sql.dialect import Reader
from jobqueue.backends.sql.rows import row_to_job
from jobqueue.job import Job, JobState

CHUNK = 500
"""Ids per ``IN`` list: under SQLite's bound-parameter limit."""


def load_job(db: Reader, row: Sequence[Any]) -> Job:
    return row_to_job(row, job_logs(db, [row[0]]).get(row[0], ()))


def job_logs(db: Reader, ids: list[int]) -> dict[int, list[tuple[float, str]]]:
    found: dict[int, list[tuple[float, str]]] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        logs_by_job(db.conn.execute(db.sql.logs_in(len(chunk)), chunk), found)
    return found


def logs_by_job(
    rows: Iterable[Sequence[Any]], found: dict[int, list[tuple[float, str]]]
) -> dict[int, list[tuple[float, str]]]:
    """Rows of ``logs_in`` added to ``found`` (by job id, in order)."""
    for job_id, at, message in rows:
        found.setdefault(job_id, []).append((at, message))
    return found


def count_by_name(db: Reader) -> dict[str, dict[JobState, int]]:
    # Kept by triggers (migration 7); a name whose jobs are all gone keeps rows of zero.
    return counts_from(db.conn.execute(db.sql.NAME_COUNTS).fetchall())


def counts_from(rows: Iterable[Sequence[Any]]) -> dict[str, dict[JobState, int]]:
    """``NAME_COUNTS``'s rows as counts by name and state."""
    counts: dict[str, dict[JobState, int]] = {}
    for name, state, n in rows:
        try:
            known = JobState(state)
        except ValueError:  # a corrupt row's state: no state's count, as in a listing
            continue
        counts.setdefault(name, dict.fromkeys(JobState, 0))[known] = int(n)
    return counts


def outcome_counts(db: Reader, since_minute: int, now: float) -> dict[int, dict[str, int]]:
    """The kept minutes from ``since_minute`` up to now that have outcome counts (ones older
    than the policy keeps are left out here, not deleted: ``maintain`` drops them)."""
    first = max(since_minute, lifecycle.first_kept_minute(now))
    counts: dict[int, dict[str, int]] = {}
    for minute, outcome, n in db.conn.execute(
        db.sql.OUTCOMES, (first, lifecycle.outcome_minute(now))
    ):
        counts.setdefault(int(minute), {})[str(outcome)] = int(n)
    return counts


def has_waiting(db: Reader, names: list[str]) -> bool:
    """Whether a claim could take a job of ``names`` now: waiting, and its name not paused
    (so an idle dispatcher of paused names sleeps instead of spinning on empty claims)."""
    paused = paused_names(db)
    return any(
        db.conn.execute(db.sql.ANY_WAITING, (name,)).fetchone()
        for name in names
        if name not in paused
    )


def until_due(db: Reader, now: float) -> float:
    """Seconds until the next delayed job is due (inf when none). Expired leases wake no
    waiter: their recovery is the core's (``Engine.maintain``), whose requeue wakes them."""
    delayed = db.conn.execute(db.sql.NEXT_DELAYED).fetchone()
    return float("inf") if delayed is None else max(delayed[0] - now, 0.0)


def paused_names(db: Reader) -> frozenset[str]:
    return frozenset(name for (name,) in db.conn.execute(db.sql.PAUSED_NAMES))


def live_dispatchers(db: Reader, now: float) -> list[DispatcherInfo]:
    """Records whose lease has not run out, oldest first; expired ones are left out here,
    not deleted (a read never writes: ``maintain`` forgets them)."""
    rows = db.conn.execute(db.sql.LIVE_DISPATCHERS, (now,)).fetchall()
    return [
        DispatcherInfo(
            id=row[0],
            host=row[1],
            pid=int(row[2]),
            names=tuple(json.loads(row[3])),
            concurrency=int(row[4]),
            started_at=float(row[5]),
            last_seen=float(row[6]),
            jobs=tuple(json.loads(row[7])),
        )
        for row in rows
    ]
