"""The state transitions, as steps inside one write transaction (``Txn``).

The store opens the transaction (``Link.begin``: the write lock up front) and composes these
steps; nothing here commits. Semantics follow ``jobqueue.backends.memory``: job ids come from
their own counter (``jobqueue_meta.job_id``, never below the clock floor of ``jobqueue.ids``),
ordering numbers from another (``jobqueue_meta.seq``), renewed when a job is submitted,
requeued, claimed (so expired leases are recovered in claim order) or finished (so retention
removes the first finished first).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from jobqueue import ids, lifecycle
from jobqueue.backend import Retention
from jobqueue.backends.sql import reads
from jobqueue.backends.sql.dialect import Connection, Reader
from jobqueue.backends.sql.rows import SQLValue, error_json, history_from_json, history_json
from jobqueue.backends.sql.statements import Statements
from jobqueue.errors import CorruptJobError, LeaseLostError
from jobqueue.job import (
    FINISHED_STATES,
    Attempt,
    AttemptOutcome,
    Job,
    JobError,
    JobState,
)
from jobqueue.lifecycle import Change

MAINTENANCE_BATCH = 5000
"""At most this many jobs are promoted, recovered or removed by retention per transaction,
so one claim never holds the write lock for long; the rest follow on the next calls."""


class Txn(Reader):
    """One write transaction: its connection, its ``now``, the order counter, and what to
    tell waiters once it commits."""

    __slots__ = (
        "_job_id",
        "_job_id_read",
        "_outcomes",
        "_seq",
        "_seq_read",
        "changed",
        "integrity_error",
        "now",
        "recovered",
        "work_added",
    )

    def __init__(
        self,
        conn: Connection,
        sql: Statements,
        log: logging.Logger,
        now: float,
        integrity_error: type[Exception],
    ) -> None:
        self.conn = conn  # not super().__init__: a call less on every transaction
        self.sql = sql
        self.log = log
        self.now = now
        self.integrity_error = integrity_error  # a refused constraint (the dialect's)
        self.work_added = False
        self.changed = False
        self._seq: int | None = None
        self._seq_read = 0
        self._job_id: int | None = None
        self._job_id_read = 0
        self._outcomes: dict[str, int] = {}
        self.recovered: list[int] = []  # keys of jobs whose expired lease this one ended

    def count_outcome(self, outcome: AttemptOutcome) -> None:
        """Count one finished attempt in this minute's outcome counts; written with the
        counters at ``flush``, so a batch of outcomes costs one upsert per kind."""
        self._outcomes[outcome.value] = self._outcomes.get(outcome.value, 0) + 1

    def next_seq(self, count: int = 1) -> int:
        """Reserve ``count`` consecutive numbers of the order counter; returns the first."""
        if self._seq is None:
            self._seq = self._seq_read = self._read_counter("seq")
        first = self._seq + 1
        self._seq += count
        return first

    def next_job_id(self) -> int:
        """The next job id (schema migration 2 gives every file the counter's row): the first
        of a transaction is at least the clock floor (``jobqueue.ids``), so a file restored
        from a backup never hands out an id given before; the rest follow it."""
        if self._job_id is None:
            self._job_id = self._job_id_read = self._read_counter("job_id")
            self._job_id = ids.next_id(self._job_id) - 1
        self._job_id += 1
        return self._job_id

    def _read_counter(self, key: str) -> int:
        (value,) = self.conn.execute(self.sql.READ_COUNTER, (key,)).fetchone()
        return int(value)

    def flush(self) -> None:
        """Write the counters back once, however many numbers were taken."""
        if self._seq is not None and self._seq != self._seq_read:
            self.conn.execute(self.sql.WRITE_SEQ, (self._seq,))
        if self._job_id is not None and self._job_id != self._job_id_read:
            self.conn.execute(self.sql.WRITE_JOB_ID, (self._job_id,))
        if self._outcomes:
            minute = lifecycle.outcome_minute(self.now)
            self.conn.executemany(
                self.sql.COUNT_OUTCOMES,
                [(minute, outcome, n) for outcome, n in self._outcomes.items()],
            )


def store_jobs(txn: Txn, jobs: Sequence[Job], rows: Sequence[tuple[SQLValue, ...]]) -> list[Job]:
    """Store new jobs (``rows`` their ``job_to_row`` encodings, made before the transaction so
    that a refused job stores nothing): ids, WAITING or DELAYED, logs, waking waiters. A job
    whose ``unique_key`` a live job holds stores nothing and yields that job instead
    (``deduplicated``). What ``submit`` and a submitted tick (``claim_tick``) both do."""
    stored: list[Job] = []
    pending: list[tuple[SQLValue, ...]] = []
    pending_logs: list[tuple[int, float, str]] = []
    for job, row in zip(jobs, rows, strict=True):
        if job.unique_key is not None:
            _insert(txn, pending, pending_logs)
            existing = txn.conn.execute(txn.sql.LIVE_WITH_KEY, (job.unique_key,)).fetchone()
            if existing is not None:
                stored.append(replace(reads.load_job(txn, existing), deduplicated=True))
                continue
        job_id = txn.next_job_id()
        state = lifecycle.due_state(job.run_at, txn.now)
        pending.append((job_id, row[1], state.value, row[3], txn.next_seq(), *row[5:]))
        pending_logs.extend((job_id, log.at, log.message) for log in job.logs)
        stored.append(replace(job, id=str(job_id), state=state, logs=list(job.logs)))
    _insert(txn, pending, pending_logs)
    txn.work_added = True
    return stored


def _insert(
    txn: Txn, pending: list[tuple[SQLValue, ...]], logs: list[tuple[int, float, str]]
) -> None:
    if pending:
        txn.conn.executemany(txn.sql.INSERT_JOB, pending)
        pending.clear()
    if logs:
        txn.conn.executemany(txn.sql.INSERT_LOG, logs)
        logs.clear()


def job_key(job_id: str) -> int | None:
    """Ids are decimal row ids; anything else names no job."""
    if isinstance(job_id, str) and job_id.isdigit() and len(job_id) < 19:
        return int(job_id)
    return None


@dataclass(frozen=True, slots=True)
class Held:
    """An active row as the rules (``lifecycle.Running``) and the write of an ended attempt
    need it."""

    key: int
    attempts_made: int
    dispatcher: str | None
    started_at: float | None
    history: str | None
    cancel_requested: bool
    token: str = ""
    """The lease token that holds it (empty for an expired lease being recovered)."""
    stalls: int = 0
    state: JobState = JobState.ACTIVE

    @property
    def id(self) -> str:
        return str(self.key)

    @classmethod
    def at_rest(cls, key: int, state: JobState, cancel_requested: bool = False) -> Held:
        """A row no lease is checked for (the control plane's moves), as the rules read it."""
        return cls(key, 0, None, None, None, cancel_requested, state=state)

    def with_attempt(self, attempt: Attempt, log: logging.Logger) -> str:
        """The ``history`` column with ``attempt`` appended (bounded)."""
        try:
            history = history_from_json(self.history)
        except CorruptJobError as exc:
            # Losing old records beats refusing the outcome: the job itself is still fine.
            log.warning("job %s: dropping its unreadable attempt history: %s", self.key, exc)
            history = []
        encoded = history_json(lifecycle.bounded_history(history, attempt))
        assert encoded is not None  # never empty: it holds this attempt
        return encoded


def _held(row: Sequence[Any], token: str = "", stalls: int = 0) -> Held:
    return Held(row[0], row[1], row[2], row[3], row[4], bool(row[5]), token, stalls)


def holder(txn: Txn, job_id: str, token: str) -> Held | None:
    """The row if ``token`` holds the job's unexpired lease (the guard ``lifecycle.Held``),
    else ``None``."""
    row = txn.conn.execute(txn.sql.HOLDER, (job_key(job_id), token, txn.now)).fetchone()
    return None if row is None else _held(row, token)


def repeated(txn: Txn, job_id: str, token: str, call: str) -> JobState | None:
    """For a token that no longer holds the job: the state a repeat of ``call`` reports
    (``lifecycle.repeat_or_lost``), else ``None``."""
    row = txn.conn.execute(txn.sql.ENDED_BY, (job_key(job_id), f"{call} {token}")).fetchone()
    return lifecycle.repeat_or_lost(
        call, row is not None, None if row is None else JobState(row[0])
    )


def take(txn: Txn, job_id: str, token: str) -> Held:
    held = holder(txn, job_id, token)
    if held is None:
        raise LeaseLostError(lifecycle.lease_lost_message(job_id))
    return held


def record(
    txn: Txn, held: Held, result: str | None, error: JobError | None, retry_at: float | None
) -> JobState:
    """Store a held job's outcome as ``lifecycle`` decides it: completed with ``result`` (its
    JSON text) when ``error`` is None, else ``lifecycle.on_fail``'s move."""
    if error is None:
        change = lifecycle.on_complete(held, held.token, None, txn.now)
    else:
        change = lifecycle.on_fail(held, held.token, error, retry_at, txn.now)
    return write(txn, held, change, result)


def write(txn: Txn, held: Held, change: Change, result: str | None = None) -> JobState:
    """Write one decided ``Change`` to ``held``'s row, whose guard the caller's read checked
    (``holder`` for a lease, the expired-lease scan for a stall). ``result`` is the JSON text
    of a completion's result, encoded before the transaction."""
    fields = change.set
    error = fields.get("error")
    text = error_json(error) if isinstance(error, JobError) else None
    history, attempts_made = None, fields.get("attempts_made", held.attempts_made)
    if change.ended is not None:
        attempt = change.ended.record(held.attempts_made, held.dispatcher, held.started_at, txn.now)
        history = held.with_attempt(attempt, txn.log)
        if not change.ended.counted:
            attempts_made = max(held.attempts_made - 1, 0)
    ended = None if change.ends_lease is None else f"{change.ends_lease} {held.token}"
    if attempts_made != held.attempts_made or "stalls" in fields:  # release, stall: one statement
        txn.conn.execute(
            txn.sql.SET_COUNTERS,
            (
                attempts_made,
                fields.get("stalls"),
                held.key,
            ),
        )
    if change.to in FINISHED_STATES:
        finish(txn, held.key, change.to, result=result, error=text, history=history, ended=ended)
    elif change.to is JobState.ACTIVE:  # a cancel request for its holder
        txn.conn.execute(
            txn.sql.SET_CANCEL_REQUESTED, (bool(fields.get("cancel_requested")), held.key)
        )
    else:
        run_at = txn.now + (change.run_at or 0.0)
        requeue(txn, held.key, change.to, run_at, error=text, history=history, ended=ended)
    if change.counts_as is not None:
        txn.count_outcome(change.counts_as)
    return change.to


def requeue(
    txn: Txn,
    key: int,
    state: JobState,
    run_at: float,
    *,
    error: str | None = None,
    history: str | None = None,
    ended: str | None = None,
) -> None:
    """Back to ``state`` (waiting, or delayed until ``run_at``), lease and holder dropped;
    ``error``, ``history`` and ``ended`` (``ended_lease``) replace the stored ones when given."""
    txn.conn.execute(
        txn.sql.REQUEUE,
        (state.value, run_at, txn.next_seq(), error, history, ended, key),
    )
    txn.work_added = True


def finish(
    txn: Txn,
    key: int,
    state: JobState,
    *,
    result: str | None = None,
    error: str | None = None,
    history: str | None = None,
    ended: str | None = None,
) -> None:
    """A finished state, lease and holder dropped. ``result`` is stored when COMPLETED;
    ``error``, ``history`` and ``ended`` (``ended_lease``) replace the stored ones when given
    (a cancel keeps the lease's ``ended_lease``, as the other backends keep theirs)."""
    txn.conn.execute(
        txn.sql.FINISH,
        (
            state.value,
            txn.now,
            txn.next_seq(),
            state is JobState.COMPLETED,
            result,
            error,
            history,
            ended,
            key,
        ),
    )
    txn.changed = True


def maintain(txn: Txn, max_stalls: int, retention: Retention) -> int:
    """Promote due delayed jobs, recover expired leases and apply retention; returns how
    many jobs moved or were removed."""
    due = txn.conn.execute(txn.sql.DUE_DELAYED, (txn.now, MAINTENANCE_BATCH)).fetchall()
    if due:
        first = txn.next_seq(len(due))
        txn.conn.executemany(
            txn.sql.PROMOTE_DUE,
            [(first + n, row[0]) for n, row in enumerate(due)],
        )
        txn.work_added = True
    return len(due) + recover(txn, max_stalls) + apply_retention(txn, retention)


def recover(txn: Txn, max_stalls: int) -> int:
    """Expired leases (the guard ``lifecycle.Expired``), each ended as ``lifecycle.on_stall``
    decides."""
    expired = txn.conn.execute(txn.sql.EXPIRED, (txn.now, MAINTENANCE_BATCH)).fetchall()
    for row in expired:
        held = _held(row, stalls=row[6])
        txn.recovered.append(held.key)
        change = lifecycle.on_stall(held, max_stalls, txn.now)
        if change.to is JobState.WAITING:
            txn.log.info("job %s: lease expired, back to waiting (stall %d)", held.key, row[6] + 1)
        elif change.to is JobState.FAILED:
            txn.log.warning("job %s stalled %d times: failing it", held.key, row[6] + 1)
        else:
            txn.log.info("job %s: lease expired after a cancel request: cancelled", held.key)
        write(txn, held, change)
    return len(expired)


def apply_retention(txn: Txn, retention: Retention) -> int:
    """Remove the first-finished jobs while there are too many or they are too old; returns
    how many were removed."""
    budget = MAINTENANCE_BATCH
    for cutoff in lifecycle.retention_cutoffs(retention):
        if cutoff.keep is None and cutoff.seconds is None:
            continue
        # The count comes from the trigger-kept table: no scan even with many finished jobs.
        (total,) = txn.conn.execute(txn.sql.STATE_COUNT, (cutoff.state.value,)).fetchone()
        limit = min((0 if cutoff.keep is None else max(total - cutoff.keep, 0)) + 1, budget)
        while budget > 0 and total > 0:
            rows = txn.conn.execute(txn.sql.FIRST_FINISHED, (cutoff.state.value, limit)).fetchall()
            drop: list[int] = []
            for key, finished_at in rows:
                if not cutoff.removes(total - len(drop), finished_at or 0.0, txn.now):
                    break
                drop.append(key)
            delete(txn, drop)
            total -= len(drop)
            budget -= len(drop)
            if len(drop) < len(rows) or len(rows) < limit:
                break
            limit = min(limit * 2, budget)
    return MAINTENANCE_BATCH - budget


def delete(txn: Txn, keys: list[int]) -> int:
    removed = 0
    for start in range(0, len(keys), reads.CHUNK):
        chunk = keys[start : start + reads.CHUNK]
        removed += txn.conn.execute(txn.sql.delete_jobs(len(chunk)), chunk).rowcount
        txn.conn.execute(txn.sql.delete_logs(len(chunk)), chunk)
    txn.changed = txn.changed or removed > 0
    return removed


def forget_old_outcomes(txn: Txn) -> None:
    """Drop the outcome counts older than the policy keeps (a seek on the primary key)."""
    txn.conn.execute(txn.sql.FORGET_OUTCOMES, (lifecycle.first_kept_minute(txn.now),))
