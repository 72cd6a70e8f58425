"""The state transitions, as steps inside one write transaction (``Txn``).

The backend opens the transaction (``BEGIN IMMEDIATE``) and composes these steps; nothing here
commits. Semantics follow ``jobqueue.backends.memory``: job ids come from their own counter
(``jobqueue_meta.job_id``: 1, 2, 3, …), ordering numbers from another (``jobqueue_meta.seq``),
renewed when a job is submitted, requeued, claimed (so expired leases are recovered in claim
order) or finished (so retention removes the first finished first).
"""

from __future__ import annotations

import logging
import sqlite3

from jobqueue.backend import Retention
from jobqueue.backends.sqlite.rows import error_json
from jobqueue.errors import LeaseLostError
from jobqueue.job import JobError, JobState

logger = logging.getLogger("jobqueue.backends.sqlite")

MAINTENANCE_BATCH = 5000
"""At most this many jobs are promoted, recovered or removed by retention per transaction,
so one claim never holds the write lock for long; the rest follow on the next calls."""


class Txn:
    """One write transaction: its connection, its ``now``, the order counter, and what to
    tell waiters once it commits."""

    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        self.work_added = False
        self.changed = False
        self._seq: int | None = None
        self._seq_read = 0
        self._job_id: int | None = None
        self._job_id_read = 0

    def next_seq(self, count: int = 1) -> int:
        """Reserve ``count`` consecutive numbers of the order counter; returns the first."""
        if self._seq is None:
            self._seq = self._seq_read = self._read_counter("seq")
        first = self._seq + 1
        self._seq += count
        return first

    def next_job_id(self) -> int:
        """The next job id (schema migration 2 gives every file the counter's row)."""
        if self._job_id is None:
            self._job_id = self._job_id_read = self._read_counter("job_id")
        self._job_id += 1
        return self._job_id

    def _read_counter(self, key: str) -> int:
        (value,) = self.conn.execute(
            "SELECT value FROM jobqueue_meta WHERE key = ?", (key,)
        ).fetchone()
        return int(value)

    def flush(self) -> None:
        """Write the counters back once, however many numbers were taken."""
        if self._seq is not None and self._seq != self._seq_read:
            self.conn.execute("UPDATE jobqueue_meta SET value = ? WHERE key = 'seq'", (self._seq,))
        if self._job_id is not None and self._job_id != self._job_id_read:
            self.conn.execute(
                "UPDATE jobqueue_meta SET value = ? WHERE key = 'job_id'", (self._job_id,)
            )


def job_key(job_id: str) -> int | None:
    """Ids are decimal row ids; anything else names no job."""
    if isinstance(job_id, str) and job_id.isdigit() and len(job_id) < 19:
        return int(job_id)
    return None


def holder(txn: Txn, job_id: str, token: str) -> int | None:
    """The row id if ``token`` holds the job's unexpired lease, else ``None``."""
    key = job_key(job_id)
    row = txn.conn.execute(
        "SELECT id FROM jobqueue_jobs WHERE id = ? AND lease_token = ? AND lease_expires_at > ?",
        (key, token, txn.now),
    ).fetchone()
    return None if row is None else key


def take(txn: Txn, job_id: str, token: str) -> int:
    key = holder(txn, job_id, token)
    if key is None:
        raise LeaseLostError(
            f"job {job_id} is no longer held by this lease (it expired and was recovered, "
            "or the job was removed); the result of this attempt is discarded"
        )
    return key


def record(
    txn: Txn, key: int, result: str | None, error: str | None, retry_at: float | None
) -> JobState:
    """Store a held job's outcome: completed with ``result`` when ``error`` is None, else
    the error and either a retry at ``retry_at`` or failure."""
    if error is None:
        finish(txn, key, JobState.COMPLETED, result)
        return JobState.COMPLETED
    if retry_at is None:
        finish(txn, key, JobState.FAILED, error)
        return JobState.FAILED
    txn.conn.execute("UPDATE jobqueue_jobs SET error = ? WHERE id = ?", (error, key))
    return requeue(txn, key, retry_at)


def requeue(txn: Txn, key: int, run_at: float) -> JobState:
    state = JobState.DELAYED if run_at > txn.now else JobState.WAITING
    txn.conn.execute(
        "UPDATE jobqueue_jobs SET state = ?, run_at = ?, seq = ?, lease_token = NULL, "
        "lease_expires_at = NULL WHERE id = ?",
        (state.value, run_at, txn.next_seq(), key),
    )
    txn.work_added = True
    return state


def finish(txn: Txn, key: int, state: JobState, text: str | None) -> None:
    """Completed (``text`` is the result) or failed (``text`` is the error), lease dropped."""
    column = "result" if state is JobState.COMPLETED else "error"
    txn.conn.execute(
        f"UPDATE jobqueue_jobs SET state = ?, finished_at = ?, seq = ?, lease_token = NULL, "
        f"lease_expires_at = NULL, {column} = ? WHERE id = ?",
        (state.value, txn.now, txn.next_seq(), text, key),
    )
    txn.changed = True


def maintain(txn: Txn, max_stalls: int, retention: Retention) -> None:
    """Promote due delayed jobs, recover expired leases and apply retention."""
    due = txn.conn.execute(
        "SELECT id FROM jobqueue_jobs WHERE state = 'delayed' AND run_at <= ? "
        "ORDER BY run_at, seq LIMIT ?",
        (txn.now, MAINTENANCE_BATCH),
    ).fetchall()
    if due:
        first = txn.next_seq(len(due))
        txn.conn.executemany(
            "UPDATE jobqueue_jobs SET state = 'waiting', seq = ? WHERE id = ?",
            [(first + n, row[0]) for n, row in enumerate(due)],
        )
    recover(txn, max_stalls)
    apply_retention(txn, retention)


def recover(txn: Txn, max_stalls: int) -> int:
    expired = txn.conn.execute(
        "SELECT id, stalls FROM jobqueue_jobs WHERE state = 'active' "
        "AND lease_expires_at <= ? ORDER BY seq LIMIT ?",
        (txn.now, MAINTENANCE_BATCH),
    ).fetchall()
    for key, stalls in expired:
        stalls += 1
        txn.conn.execute("UPDATE jobqueue_jobs SET stalls = ? WHERE id = ?", (stalls, key))
        if stalls > max_stalls:
            logger.warning("job %s stalled %d times: failing it", key, stalls)
            error = JobError(
                "StalledJobError",
                f"job stalled {stalls} times: its lease expired while running "
                "(the worker died, hung or lost its backend connection)",
            )
            finish(txn, key, JobState.FAILED, error_json(error))
        else:
            logger.info("job %s: lease expired, back to waiting (stall %d)", key, stalls)
            requeue(txn, key, txn.now)
    return len(expired)


def apply_retention(txn: Txn, policy: Retention) -> None:
    """Remove the first-finished jobs while there are too many or they are too old."""
    budget = MAINTENANCE_BATCH
    for state, seconds, count in (
        (JobState.COMPLETED, policy.completed_seconds, policy.completed_count),
        (JobState.FAILED, policy.failed_seconds, policy.failed_count),
    ):
        if count is None and seconds is None:
            continue
        # The count comes from the trigger-kept table: no scan even with many finished jobs.
        (total,) = txn.conn.execute(
            "SELECT n FROM jobqueue_counts WHERE state = ?", (state.value,)
        ).fetchone()
        limit = min((0 if count is None else max(total - count, 0)) + 1, budget)
        while budget > 0 and total > 0:
            rows = txn.conn.execute(
                "SELECT id, finished_at FROM jobqueue_jobs WHERE state = ? "
                "AND finished_at IS NOT NULL ORDER BY seq LIMIT ?",
                (state.value, limit),
            ).fetchall()
            drop: list[int] = []
            for key, finished_at in rows:
                too_many = count is not None and total - len(drop) > count
                too_old = seconds is not None and (finished_at or 0.0) <= txn.now - seconds
                if not (too_many or too_old):
                    break
                drop.append(key)
            delete(txn, drop)
            total -= len(drop)
            budget -= len(drop)
            if len(drop) < len(rows) or len(rows) < limit:
                break
            limit = min(limit * 2, budget)


def delete(txn: Txn, keys: list[int]) -> int:
    removed = 0
    for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        removed += txn.conn.execute(
            f"DELETE FROM jobqueue_jobs WHERE id IN ({marks})", chunk
        ).rowcount
        txn.conn.execute(f"DELETE FROM jobqueue_logs WHERE job_id IN ({marks})", chunk)
    txn.changed = txn.changed or removed > 0
    return removed
