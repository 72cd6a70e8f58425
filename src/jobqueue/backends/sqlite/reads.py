"""Reads: jobs, listings, counts, paused names, live dispatchers, and what ``wait_for_work``
checks. Each takes a connection inside whatever transaction the caller holds (a deferred
read snapshot, or a transition's write transaction) and never writes: a dashboard or a
metrics scrape costs no transition and takes no write lock.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from jobqueue import lifecycle
from jobqueue.backend import DispatcherInfo
from jobqueue.backends.sqlite.rows import JOB_COLUMNS, row_to_job
from jobqueue.errors import CorruptJobError
from jobqueue.job import Job, JobState, unreadable_job

logger = logging.getLogger("jobqueue.backends.sqlite")


def load_job(conn: sqlite3.Connection, row: Sequence[Any]) -> Job:
    return row_to_job(row, job_logs(conn, [row[0]]).get(row[0], ()))


def job_logs(conn: sqlite3.Connection, ids: list[int]) -> dict[int, list[tuple[float, str]]]:
    found: dict[int, list[tuple[float, str]]] = {}
    for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for job_id, at, message in conn.execute(
            f"SELECT job_id, at, message FROM jobqueue_logs WHERE job_id IN ({marks}) "
            "ORDER BY job_id, id",
            chunk,
        ):
            found.setdefault(job_id, []).append((at, message))
    return found


def jobs_by_key(conn: sqlite3.Connection, keys: list[int]) -> list[Job]:
    """The jobs of ``keys``, in that order (a key may repeat); missing or corrupt ones are
    left out."""
    rows: dict[int, Sequence[Any]] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), 500):  # stay under SQLite's bound-parameter limit
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobqueue_jobs WHERE id IN ({marks})", chunk
        ):
            rows[row[0]] = row
    logs = job_logs(conn, list(rows))
    jobs = []
    for key in keys:
        if key in rows:
            try:
                jobs.append(row_to_job(rows[key], logs.get(key, ())))
            except CorruptJobError as exc:
                logger.error("skipping a corrupt recovered job: %s", exc)
    return jobs


def list_jobs(conn: sqlite3.Connection, state: JobState, offset: int, limit: int) -> list[Job]:
    order = {
        JobState.WAITING: "priority DESC, seq",
        JobState.DELAYED: "run_at, seq",
        JobState.ACTIVE: "lease_expires_at, id",
    }.get(state, "finished_at DESC, id DESC")
    # The state is spelled out (an enum value, never user text) so that SQLite can use the
    # partial index of that state instead of scanning the table.
    where = f"state = '{state.value}'"
    if state.is_finished:
        where += " AND finished_at IS NOT NULL"
    rows = conn.execute(
        f"SELECT {JOB_COLUMNS} FROM jobqueue_jobs WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
        (max(limit, 0), max(offset, 0)),
    ).fetchall()
    logs = job_logs(conn, [row[0] for row in rows])
    jobs = []
    for row in rows:
        try:
            jobs.append(row_to_job(row, logs.get(row[0], ())))
        except CorruptJobError as exc:  # a listing shows it, marked; get() raises
            logger.error("listing a corrupt job: %s", exc)
            jobs.append(unreadable_job(row[0], row[1], row[2], str(exc)))
    return jobs


def count_by_state(conn: sqlite3.Connection) -> dict[JobState, int]:
    counts = dict(conn.execute("SELECT state, n FROM jobqueue_counts").fetchall())
    return {state: int(counts.get(state.value, 0)) for state in JobState}


def count_by_name(conn: sqlite3.Connection) -> dict[str, dict[JobState, int]]:
    counts: dict[str, dict[JobState, int]] = {}
    # Kept by triggers (migration 7); a name whose jobs are all gone keeps rows of zero.
    rows = conn.execute("SELECT name, state, n FROM jobqueue_name_counts WHERE n > 0")
    for name, state, n in rows.fetchall():
        try:
            known = JobState(state)
        except ValueError:  # a corrupt row's state: no state's count, as in a listing
            continue
        counts.setdefault(name, dict.fromkeys(JobState, 0))[known] = int(n)
    return counts


def outcome_counts(
    conn: sqlite3.Connection, since_minute: int, now: float
) -> dict[int, dict[str, int]]:
    """The kept minutes from ``since_minute`` up to now that have outcome counts (ones older
    than the policy keeps are left out here, not deleted: ``maintain`` drops them)."""
    first = max(since_minute, lifecycle.first_kept_minute(now))
    counts: dict[int, dict[str, int]] = {}
    for minute, outcome, n in conn.execute(
        "SELECT minute, outcome, count FROM jobqueue_outcomes WHERE minute BETWEEN ? AND ? "
        "ORDER BY minute",
        (first, lifecycle.outcome_minute(now)),
    ):
        counts.setdefault(int(minute), {})[str(outcome)] = int(n)
    return counts


def has_waiting(conn: sqlite3.Connection, names: list[str]) -> bool:
    """Whether a claim could take a job of ``names`` now: waiting, and its name not paused
    (so an idle dispatcher of paused names sleeps instead of spinning on empty claims)."""
    paused = paused_names(conn)
    return any(
        conn.execute(
            "SELECT 1 FROM jobqueue_jobs WHERE state = 'waiting' AND name = ? LIMIT 1",
            (name,),
        ).fetchone()
        for name in names
        if name not in paused
    )


def until_due(conn: sqlite3.Connection, now: float) -> float:
    """Seconds until the next delayed job is due or lease expires (inf when none)."""
    delayed = conn.execute(
        "SELECT run_at FROM jobqueue_jobs WHERE state = 'delayed' ORDER BY run_at LIMIT 1"
    ).fetchone()
    lease = conn.execute(
        "SELECT lease_expires_at FROM jobqueue_jobs WHERE state = 'active' "
        "ORDER BY lease_expires_at LIMIT 1"
    ).fetchone()
    due = [row[0] for row in (delayed, lease) if row is not None]
    return max(min(due) - now, 0.0) if due else float("inf")


def paused_names(conn: sqlite3.Connection) -> frozenset[str]:
    return frozenset(name for (name,) in conn.execute("SELECT name FROM jobqueue_paused"))


def live_dispatchers(conn: sqlite3.Connection, now: float) -> list[DispatcherInfo]:
    """Records whose lease has not run out, oldest first; expired ones are left out here,
    not deleted (a read never writes: ``maintain`` forgets them)."""
    rows = conn.execute(
        "SELECT id, host, pid, names, concurrency, started_at, last_seen, jobs "
        "FROM jobqueue_dispatchers WHERE expires_at > ? ORDER BY started_at, id",
        (now,),
    ).fetchall()
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
