"""The state transitions, as steps inside one write transaction (``Txn``).

The store opens the transaction (``Link.begin``: the write lock up front) and composes these
steps; nothing here commits. Semantics follow ``jobqueue.backends.memory``: job ids come from
their own counter (``jobqueue_meta.job_id``, never below the clock floor of ``jobqueue.ids``),
ordering numbers from another (``jobqueue_meta.seq``), renewed when a job is submitted,
requeued, claimed or finished (so retention removes the first finished first).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from jobqueue import ids, lifecycle
from jobqueue.backend import Retention
from jobqueue.backends.sql import reads
from jobqueue.backends.sql.dialect import Connection, Reader
from jobqueue.backends.sql.rows import (
    SQLValue,
    error_json,
    history_from_json,
    history_json,
    outcomes_json,
)
from jobqueue.backends.sql.statements import SEQ_BLOCK_SIZE, Statements
from jobqueue.changes import Change
from jobqueue.errors import CorruptJobError
from jobqueue.job import (
    MAX_HISTORY,
    Attempt,
    AttemptOutcome,
    Job,
    JobError,
    JobState,
)

INSERT_ROWS = 500
"""Jobs per ``INSERT`` statement of a bulk submit (500 x 24 parameters)."""

COLUMNAR_ROWS = 10_000
"""Jobs per ``INSERT_JOBS_COLUMNAR`` statement."""

MAINTENANCE_BATCH = 5000
"""At most this many jobs are promoted or removed by retention per transaction,
so one claim never holds the write lock for long; the rest follow on the next calls."""


class Txn(Reader):
    """One write transaction: its connection, its ``now``, the order counter, and what to
    tell waiters once it commits."""

    __slots__ = (
        "_ids_left",
        "_job_id",
        "_job_id_read",
        "_moves",
        "_outcomes",
        "_seq",
        "_seq_block",
        "_seq_end",
        "_seq_read",
        "changed",
        "integrity_error",
        "now",
        "pipelines",
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
        # What the link's ``begin`` took for this transaction, in the same round trip.
        self._seq_block: int | None = getattr(conn, "seq_block", None)
        self._seq_end = 0
        self._ids_left = 0
        reserved: tuple[int, int] | None = getattr(conn, "reserved_ids", None)
        if reserved is not None:
            self._job_id, self._ids_left = reserved[0] - reserved[1], reserved[1]
        self._outcomes: dict[str, int] = {}
        self._moves: list[tuple[object, ...]] = []
        self.pipelines = hasattr(conn, "pipeline")
        """Whether statements sent before a result is read go together (``dialect.pipeline``)."""

    def defer_move(self, params: tuple[object, ...]) -> None:
        """A ``MOVE`` sent with the others of its batch (``flush_moves``: one pipelined
        ``executemany`` instead of a round trip each)."""
        self._moves.append(params)

    def flush_moves(self) -> None:
        """Send the deferred moves: before anything reads the rows they change."""
        if self._moves:
            self.conn.executemany(self.sql.MOVE, self._moves)
            self._moves.clear()

    def fetch_each(self, sql: str, params: Sequence[Sequence[object]]) -> list[Any]:
        """The first row ``sql`` returns for each of ``params``, in order: one pipelined
        batch where the driver has one (``Connection.fetch_each``), else one by one."""
        if not params:
            return []
        many = getattr(self.conn, "fetch_each", None)
        if many is not None:
            return cast(list[Any], many(sql, params))
        return [self.conn.execute(sql, each).fetchone() for each in params]

    def count_outcome(self, outcome: AttemptOutcome) -> None:
        """Count one finished attempt in this minute's outcome counts; written with the
        counters at ``flush``, so a batch of outcomes costs one upsert per kind."""
        self._outcomes[outcome.value] = self._outcomes.get(outcome.value, 0) + 1

    def next_seq(self, count: int = 1) -> int:
        """Reserve ``count`` consecutive numbers of the order counter; returns the first.
        Where the dialect hands out blocks (``SEQ_BLOCK``), from this transaction's block
        (the one ``begin`` took, then fresh ones): no row every writer updates."""
        if self.sql.SEQ_BLOCK:
            if self._seq is None or self._seq + count > self._seq_end:
                block = self._seq_block
                self._seq_block = None
                if block is None:
                    block = int(self.conn.execute(self.sql.SEQ_BLOCK).fetchone()[0])
                self._seq, self._seq_end = block - 1, block + SEQ_BLOCK_SIZE - 1
        elif self._seq is None:
            self._seq = self._seq_read = self._read_counter("seq")
        first = self._seq + 1
        self._seq += count
        return first

    def next_job_id(self) -> int:
        """The next job id (schema migration 2 gives every file the counter's row): the first
        of a transaction is at least the clock floor (``jobqueue.ids``), so a file restored
        from a backup never hands out an id given before; the rest follow it. Where the
        dialect reserves ids (``RESERVE_IDS``), from this transaction's reservation."""
        if self.sql.RESERVE_IDS:
            if self._ids_left == 0:
                self.reserve_ids(1)
            self._ids_left -= 1
            assert self._job_id is not None
            self._job_id += 1
            return self._job_id
        if self._job_id is None:
            self._job_id = self._job_id_read = self._read_counter("job_id")
            self._job_id = ids.next_id(self._job_id) - 1
        self._job_id += 1
        return self._job_id

    def reserve_ids(self, count: int) -> None:
        """Reserve ``count`` job ids at once (``RESERVE_IDS``), unless as many are left."""
        if not self.sql.RESERVE_IDS or self._ids_left >= count:
            return
        floor = ids.clock_floor() + count - 1
        (last,) = self.conn.execute(self.sql.RESERVE_IDS, (count, floor)).fetchone()
        self._job_id, self._ids_left = int(last) - count, count

    def _read_counter(self, key: str) -> int:
        (value,) = self.conn.execute(self.sql.READ_COUNTER, (key,)).fetchone()
        return int(value)

    def flush(self) -> None:
        """Write the counters back once, however many numbers were taken."""
        self.flush_moves()
        # (A block or a reservation is counted where it was taken: nothing to write back.)
        if not self.sql.SEQ_BLOCK and self._seq is not None and self._seq != self._seq_read:
            self.conn.execute(self.sql.WRITE_SEQ, (self._seq,))
        reserved = bool(self.sql.RESERVE_IDS)
        if not reserved and self._job_id is not None and self._job_id != self._job_id_read:
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
        if job.logs:
            pending_logs.extend((job_id, log.at, log.message) for log in job.logs)
        stored.append(replace(job, id=str(job_id), state=state, logs=list(job.logs)))
    _insert(txn, pending, pending_logs)
    txn.work_added = True
    return stored


def _insert(
    txn: Txn, pending: list[tuple[SQLValue, ...]], logs: list[tuple[int, float, str]]
) -> None:
    # Many rows per statement (bounded, under every driver's parameter limit): a statement's
    # overhead, triggers included, is paid once per chunk, not per job.
    if len(pending) > 1 and txn.sql.INSERT_JOBS_COLUMNAR:
        for start in range(0, len(pending), COLUMNAR_ROWS):
            txn.conn.execute(
                txn.sql.INSERT_JOBS_COLUMNAR, _columns(pending[start : start + COLUMNAR_ROWS])
            )
        pending.clear()
    for start in range(0, len(pending), INSERT_ROWS):
        chunk = pending[start : start + INSERT_ROWS]
        if len(chunk) == 1:
            txn.conn.execute(txn.sql.INSERT_JOB, chunk[0])
        else:
            txn.conn.execute(txn.sql.insert_jobs(len(chunk)), [v for row in chunk for v in row])
    pending.clear()
    if logs:
        txn.conn.executemany(txn.sql.INSERT_LOG, logs)
        logs.clear()


_FLOAT_COLUMNS = (5, 10, 11, 12, 13, 16)  # run_at, created/started/finished_at, progress, timeout


def _columns(rows: Sequence[tuple[SQLValue, ...]]) -> list[list[SQLValue]]:
    """``rows`` as one list per column (``INSERT_JOBS_COLUMNAR``); a float column's numbers
    all floats (an array holds one type)."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    for index in _FLOAT_COLUMNS:
        columns[index] = [None if v is None else float(cast(float, v)) for v in columns[index]]
    return columns


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
    """The lease token that holds it (empty for a row no lease is checked for)."""
    stalls: int = 0
    state: JobState = JobState.ACTIVE
    # What a guard reads besides (``guarded.read``); the old verbs' reads leave them out.
    lease_expires_at: float | None = None
    ended_lease: str | None = None
    unique_key: str | None = None

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
        encoded = history_json([*history, attempt][-MAX_HISTORY:])
        assert encoded is not None  # never empty: it holds this attempt
        return encoded


def _held(row: Sequence[Any], token: str = "", stalls: int = 0) -> Held:
    return Held(row[0], row[1], row[2], row[3], row[4], bool(row[5]), token, stalls)


def holder(txn: Txn, job_id: str, token: str) -> Held | None:
    """The row if ``token`` holds the job's unexpired lease (the guard ``lifecycle.Held``),
    else ``None``."""
    row = txn.conn.execute(txn.sql.HOLDER, (job_key(job_id), token, txn.now)).fetchone()
    return None if row is None else _held(row, token)


def key_holder(txn: Txn, key: int, unique_key: str | None) -> str | None:
    """The id of another live job holding ``unique_key``, if any: what refuses bringing job
    ``key`` back to life (checked before the write, so no statement is refused midway)."""
    if unique_key is None:
        return None
    row = txn.conn.execute(txn.sql.KEY_HOLDER, (unique_key, key)).fetchone()
    return None if row is None else str(row[0])


def write(
    txn: Txn, held: Held, change: Change, result: str | None = None, *, defer: bool = False
) -> JobState:
    """Write one decided ``Change`` to ``held``'s row, whose guard the caller checked
    (``guarded.apply_one`` for the seam; ``holder``, the expired-lease scan or a state read for
    the old verbs): one statement (``MOVE``), whatever the move. ``result`` is the JSON text
    of ``change.set["result"]``, encoded before the transaction. ``defer``: sent with its
    batch's other moves (``Txn.flush_moves``); otherwise the deferred ones go first."""
    fields = change.set
    leaving = held.state is JobState.ACTIVE and change.to is not JobState.ACTIVE
    ended = change.ended
    attempts = fields.get("attempts_made")
    history = None
    if ended is not None:
        attempt = ended.record(held.attempts_made, held.dispatcher, held.started_at, txn.now)
        history = held.with_attempt(attempt, txn.log)
        if not ended.counted and attempts is None:  # given back: the record kept its number
            attempts = max(held.attempts_made - 1, 0)
    if change.fence:
        ended_lease: tuple[bool, str | None] = (True, None)
    elif change.ends_lease is not None and leaving:
        ended_lease = (True, f"{change.ends_lease} {held.token}")
    else:
        ended_lease = (False, None)
    error = fields.get("error")
    finished = change.to.is_finished
    requeued = change.to in _REQUEUED
    blocked = change.to is JobState.BLOCKED  # a flow's job retried: in line again
    run_at = None
    if requeued and change.run_at is not None:
        run_at = txn.now + change.run_at
    cancel = fields.get("cancel_requested")
    params: tuple[object, ...] = (
        change.to.value,
        run_at,
        txn.next_seq() if finished or requeued or blocked else None,
        leaving,
        leaving,
        leaving or ended is not None,
        attempts,
        fields.get("stalls"),
        None if cancel is None else int(bool(cancel)),
        finished or "finished_at" in fields,
        txn.now if finished else fields.get("finished_at"),
        "result" in fields,
        result,
        "error" in fields,
        error_json(error) if isinstance(error, JobError) else None,
        history,
        *ended_lease,
        held.key,
    )
    if defer:
        txn.defer_move(params)
    else:
        txn.flush_moves()
        txn.conn.execute(txn.sql.MOVE, params)
    if "dependency_outcomes" in fields:  # a flow's job only: a statement of its own
        outcomes = fields["dependency_outcomes"]
        txn.flush_moves()
        txn.conn.execute(
            txn.sql.SET_OUTCOMES,
            (outcomes_json(outcomes) if isinstance(outcomes, Mapping) else None, held.key),
        )
    if requeued:
        txn.work_added = True  # idle dispatchers wake (delayed: for its due time)
    elif finished:
        txn.changed = True  # finish-waiters wake
    if change.counts_as is not None:
        txn.count_outcome(change.counts_as)
    return change.to


_REQUEUED = frozenset({JobState.WAITING, JobState.DELAYED})


def promote_due(txn: Txn, due: list[Any] | None = None) -> int:
    """Due delayed jobs to waiting, at the end of the line in their due order (``due``: the
    rows of ``DUE_DELAYED``, when the caller read them already)."""
    if due is None:
        due = txn.conn.execute(txn.sql.DUE_DELAYED, (txn.now, MAINTENANCE_BATCH)).fetchall()
    if due:
        first = txn.next_seq(len(due))
        txn.conn.executemany(
            txn.sql.PROMOTE_DUE,
            [(first + n, row[0]) for n, row in enumerate(due)],
        )
        txn.work_added = True
    return len(due)


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
