"""The control-plane transitions (cancel, retry, purge, pause, heartbeats, dispatcher records)
as steps inside one write transaction (``Txn``), and the reads that go with them.

As in ``.transitions``, nothing here commits, and the semantics are those of
``jobqueue.backends.memory``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from jobqueue.backend import DispatcherInfo, LeaseStatus
from jobqueue.backends.sqlite.rows import error_json
from jobqueue.backends.sqlite.transitions import (
    Txn,
    delete,
    finish,
    holder,
    job_key,
    repeated,
    requeue,
)
from jobqueue.errors import JobStateError
from jobqueue.job import AttemptOutcome, JobError, JobState, dumps_json

_RETRIABLE = (JobState.FAILED, JobState.CANCELLED)


def cancel(txn: Txn, job_id: str) -> JobState | None:
    """Waiting or delayed: cancelled now. Active: flagged for its holder. Finished: as is."""
    key = job_key(job_id)
    if key is None:
        return None
    row = txn.conn.execute("SELECT state FROM jobqueue_jobs WHERE id = ?", (key,)).fetchone()
    if row is None:
        return None
    state = JobState(row[0])
    if state in (JobState.WAITING, JobState.DELAYED):
        # Leaving the live states frees the unique key (the partial index lists only those).
        finish(txn, key, JobState.CANCELLED)
        return JobState.CANCELLED
    if state is JobState.ACTIVE:
        # The holder learns it from its next heartbeat; until then the job stays active so
        # that exactly one party (holder or lease recovery) ends the attempt.
        txn.conn.execute("UPDATE jobqueue_jobs SET cancel_requested = 1 WHERE id = ?", (key,))
    return state


def finish_cancelled(txn: Txn, job_id: str, token: str, error: JobError | None) -> bool:
    held = holder(txn, job_id, token)
    if held is None:
        return repeated(txn, job_id, token, "finish_cancelled") is not None
    history = held.ended(txn.now, AttemptOutcome.CANCELLED, error)
    text = None if error is None else error_json(error)
    ended = held.ended_by("finish_cancelled")
    finish(txn, held.key, JobState.CANCELLED, error=text, history=history, ended=ended)
    txn.count_outcome(AttemptOutcome.CANCELLED)
    return True


def retry(txn: Txn, job_id: str) -> bool:
    """A failed or cancelled job back to waiting; ``False`` if there is no such job. Raises
    ``JobStateError`` for another state or a unique key another live job holds."""
    key = job_key(job_id)
    if key is None:
        return False
    row = txn.conn.execute(
        "SELECT state, unique_key FROM jobqueue_jobs WHERE id = ?", (key,)
    ).fetchone()
    if row is None:
        return False
    state = JobState(row[0])
    if state not in _RETRIABLE:
        raise JobStateError(
            f"job {job_id} is {state.value}: only failed or cancelled jobs are retried"
        )
    if not _requeue_finished(txn, key):
        other = txn.conn.execute(
            "SELECT id FROM jobqueue_jobs WHERE unique_key = ? AND id != ? "
            "AND state IN ('waiting', 'delayed', 'active')",
            (row[1], key),
        ).fetchone()
        raise JobStateError(
            f"job {job_id} cannot be retried: job {other[0] if other else '?'} holds its "
            f"unique key {row[1]!r}"
        )
    return True


def retry_many(txn: Txn, state: JobState, name: str | None) -> int:
    if state not in _RETRIABLE:
        return 0
    # In finishing order, as the reference: of two jobs with one unique key, the first wins.
    rows = txn.conn.execute(
        "SELECT id FROM jobqueue_jobs WHERE state = ? AND finished_at IS NOT NULL "
        "AND (? IS NULL OR name = ?) ORDER BY seq",
        (state.value, name, name),
    ).fetchall()
    return sum(_requeue_finished(txn, key) for (key,) in rows)


def _requeue_finished(txn: Txn, key: int) -> bool:
    """Reset a finished job's run counters and requeue it now (one statement); ``False``,
    nothing changed, when the unique index refuses it: another live job holds its key."""
    try:
        txn.conn.execute(
            "UPDATE jobqueue_jobs SET state = 'waiting', run_at = ?, seq = ?, lease_token = NULL, "
            "lease_expires_at = NULL, dispatcher = NULL, attempts_made = 0, stalls = 0, "
            "cancel_requested = 0, result = NULL, finished_at = NULL, ended_lease = NULL "
            "WHERE id = ?",  # a new life: the last attempt's token is fenced
            (txn.now, txn.next_seq(), key),
        )
    except sqlite3.IntegrityError:
        return False  # SQLite undid this statement alone; the transaction goes on
    txn.work_added = True
    return True


def promote(txn: Txn, job_id: str) -> bool:
    """A delayed job to waiting now, at the end of its line; ``False`` if there is no such
    job. Raises ``JobStateError`` for a job in another state."""
    key = job_key(job_id)
    if key is None:
        return False
    row = txn.conn.execute("SELECT state FROM jobqueue_jobs WHERE id = ?", (key,)).fetchone()
    if row is None:
        return False
    state = JobState(row[0])
    if state is not JobState.DELAYED:
        raise JobStateError(
            f"job {job_id} is {state.value}: only delayed jobs are run ahead of time"
        )
    requeue(txn, key, txn.now)  # a new seq and work_added: idle dispatchers wake
    return True


def cancel_many(txn: Txn, state: JobState, name: str | None) -> int:
    """Waiting or delayed jobs (of ``name``, when given) cancelled in the order they would
    have run; active ones flagged for their holders. Returns how many changed."""
    named = "" if name is None else " AND name = ?"
    params = () if name is None else (name,)
    if state is JobState.ACTIVE:
        return txn.conn.execute(
            "UPDATE jobqueue_jobs SET cancel_requested = 1 "
            f"WHERE state = 'active' AND cancel_requested = 0{named}",
            params,
        ).rowcount
    # The orders are those of the partial indexes jobqueue_waiting and jobqueue_delayed.
    order = {JobState.WAITING: "name, priority DESC, seq", JobState.DELAYED: "run_at, seq"}
    if state not in order:
        return 0
    keys = [
        key
        for (key,) in txn.conn.execute(
            f"SELECT id FROM jobqueue_jobs WHERE state = '{state.value}'{named} "
            f"ORDER BY {order[state]}",
            params,
        )
    ]
    if keys:
        # What ``finish`` writes for a job without a lease, one statement for the lot; each
        # gets its own seq, so retention removes them in this order. Leaving the live states
        # frees their unique keys (the partial index lists only those).
        first = txn.next_seq(len(keys))
        txn.conn.executemany(
            "UPDATE jobqueue_jobs SET state = 'cancelled', finished_at = ?, seq = ? WHERE id = ?",
            [(txn.now, first + n, key) for n, key in enumerate(keys)],
        )
        txn.changed = True
    return len(keys)


def purge(txn: Txn, state: JobState, name: str | None, finished_before: float | None) -> int:
    if not state.is_finished:
        return 0
    rows = txn.conn.execute(
        "SELECT id FROM jobqueue_jobs WHERE state = ? AND finished_at IS NOT NULL "
        "AND (? IS NULL OR name = ?) AND (? IS NULL OR finished_at < ?)",
        (state.value, name, name, finished_before, finished_before),
    ).fetchall()
    return delete(txn, [key for (key,) in rows])


def pause(txn: Txn, name: str) -> None:
    # Claims read this table inside their own transaction, so no claim after this commit,
    # in any process, takes a job of ``name``.
    txn.conn.execute("INSERT OR IGNORE INTO jobqueue_paused (name) VALUES (?)", (name,))


def resume(txn: Txn, name: str) -> None:
    txn.conn.execute("DELETE FROM jobqueue_paused WHERE name = ?", (name,))
    # Its waiting jobs are claimable again: wake idle dispatchers as a submit would (this
    # process through the condition, others see the commit in PRAGMA data_version).
    txn.work_added = True


def heartbeat(
    txn: Txn, info: DispatcherInfo, leases: Sequence[tuple[str, str]], lease_seconds: float
) -> list[LeaseStatus]:
    statuses = []
    deadline = txn.now + lease_seconds
    for job_id, token in leases:
        held = holder(txn, job_id, token)
        if held is None:
            statuses.append(LeaseStatus.LOST)
            continue
        txn.conn.execute(
            "UPDATE jobqueue_jobs SET lease_expires_at = ? WHERE id = ?", (deadline, held.key)
        )
        statuses.append(LeaseStatus.CANCEL if held.cancel_requested else LeaseStatus.HELD)
    # The record is replaced whole, as the reference does: the latest heartbeat is the truth.
    txn.conn.execute(
        "INSERT OR REPLACE INTO jobqueue_dispatchers (id, host, pid, names, concurrency, "
        "started_at, last_seen, expires_at, jobs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            info.id,
            info.host,
            info.pid,
            dumps_json(list(info.names)),
            info.concurrency,
            info.started_at,
            txn.now,
            deadline,
            dumps_json([job_id for job_id, _ in leases]),
        ),
    )
    return statuses


def remove_dispatcher(txn: Txn, dispatcher_id: str) -> None:
    txn.conn.execute("DELETE FROM jobqueue_dispatchers WHERE id = ?", (dispatcher_id,))


def forget_dead_dispatchers(txn: Txn) -> None:
    txn.conn.execute("DELETE FROM jobqueue_dispatchers WHERE expires_at <= ?", (txn.now,))
