"""A lease holder's decided changes and the next claim in ONE round trip: the server-side
function ``jobqueue_apply_held`` (migration 4), called as one statement that is its own
transaction.

The store's long way (``SQLStore.apply``) costs four round trips on PostgreSQL: BEGIN with the
clock, the guards' read, the moves with the claim, COMMIT. Here the changes go as arrays, one
element per change, and the claim ask as scalars; the function checks each guard against the
row (``guarded.check``'s rule for ``Held``/``Expired``: active, held by this token, the lease
unexpired -- or expired --, the cancel flag as decided), writes the change as given (what
``transitions.write`` writes), counts outcomes, then promotes due delayed jobs and claims the
next jobs of the served names (pause, caps, ``SKIP LOCKED`` in run order). It decides nothing.

What it does not cover goes the long way (``apply`` returns ``None``): a change guarded by state
(the control plane's, which may read a unique key's holder), a change of a flow's job (a
delivery, a move into BLOCKED), a job twice in one batch, a claim for more than
``ONE_STEP_NAMES`` names. A claimed record that does not decode is handed back
in ``Stepped.corrupt`` for the store to fail (``corrupt.fail_corrupt``) and replace: the claim
has committed by then.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

from jobqueue.backends.postgres.connections import PostgresLink, ServerClock
from jobqueue.backends.postgres.dialect import PostgresDialect, lock_key
from jobqueue.backends.sql.claim_cursor import ClaimCursor
from jobqueue.backends.sql.dialect import Stepped
from jobqueue.backends.sql.guarded import ended_by
from jobqueue.backends.sql.rows import (
    FLOW_WIDTH,
    JOB_WIDTH,
    LEASE_EXPIRES_AT,
    error_json,
    row_to_job,
)
from jobqueue.backends.sql.statements import SEQ_BLOCK_SIZE
from jobqueue.backends.sql.transitions import MAINTENANCE_BATCH, job_key
from jobqueue.changes import Change, ClaimAsk, Conflict, Expired, InState
from jobqueue.errors import CorruptJobError
from jobqueue.job import MAX_HISTORY, JobError, JobState
from jobqueue.values import Claim

_ARRAYS = (
    "bigint[]",  # ids
    "text[]",  # tokens
    "boolean[]",  # the guard is Expired
    "smallint[]",  # the guard's cancel flag (NULL: any)
    "text[]",  # to
    "float8[]",  # run_at: a delay
    "bigint[]",  # set attempts_made
    "bigint[]",  # set stalls
    "smallint[]",  # set cancel_requested
    "boolean[]",  # set finished_at ...
    "float8[]",  # ... to this
    "boolean[]",  # set result ...
    "text[]",  # ... to this JSON
    "boolean[]",  # set error ...
    "text[]",  # ... to this JSON
    "text[]",  # the ended attempt's outcome (NULL: none ended)
    "text[]",  # its error's JSON
    "boolean[]",  # it counted
    "text[]",  # ends_lease: the call
    "boolean[]",  # fence
    "text[]",  # counts_as
)
_SCALARS = (
    "float8",  # now (NULL: the server's clock)
    "integer",  # history records kept
    "text[]",  # the names claimed (NULL: no claim)
    "integer[]",  # their caps (NULL: none)
    "integer",  # limit
    "boolean",  # unless_conflict
    "float8",  # lease seconds
    "text",  # dispatcher
    "text[]",  # the claims' tokens
    "integer",  # the advisory lock's keys
    "integer",
    "integer",  # due delayed jobs promoted at most
)
ONE_STEP_NAMES = 8
"""A claim for more names goes the long way (``claims``: the cross-name order, not a seek
per name)."""
_FIELDS = 5  # n, now, promoted, lease token, ended lease; then JOB_COLUMNS, the logs...
_JOB_END = _FIELDS + JOB_WIDTH - FLOW_WIDTH
"""Where ``JOB_COLUMNS`` but the flow columns end; then the logs, the waiting seq, the claim's
time and, last (so that the version before reads its columns where they were), the flow
columns."""
_FLOW_COLUMNS = _JOB_END + 4


class OneStep:
    """``jobqueue_apply_held`` of one schema, on its link's write connection."""

    def __init__(
        self,
        link: PostgresLink,
        dialect: PostgresDialect,
        clock: Callable[[], float],
        server_clock: ServerClock | None,
        cursor: ClaimCursor | None = None,
    ) -> None:
        self._link = link
        self._cursor = cursor
        self._clock = clock
        self._server_clock = server_clock
        marks = ", ".join(f"%s::{kind}" for kind in (*_ARRAYS, *_SCALARS))
        self._sql = f"SELECT * FROM {dialect.quoted}.jobqueue_apply_held({marks})"
        self._lock = lock_key(dialect.schema)

    def apply(
        self,
        changes: Sequence[Change],
        results: Sequence[str | None],
        then: ClaimAsk | None,
    ) -> Stepped | None:
        """Write ``changes`` (``results``: their results' JSON) and claim for ``then`` in one
        call, or ``None``: not a call this covers (nothing was done)."""
        claiming = then is not None and then.limit > 0
        if not changes and not claiming:
            return None
        keys: list[int] = []
        for change in changes:
            key = job_key(change.job_id)
            if key is None or isinstance(change.guard, InState) or _of_a_flow(change):
                return None
            keys.append(key)
        # The order numbers taken (one block: ``SEQ_BLOCK_SIZE``) must not run out.
        if len(set(keys)) < len(keys) or len(keys) >= SEQ_BLOCK_SIZE // 4:
            return None
        names: tuple[str, ...] | None = None
        limit = 0
        if then is not None and claiming:
            names = tuple(dict.fromkeys(then.spec.names))
            if len(names) > ONE_STEP_NAMES or then.limit >= SEQ_BLOCK_SIZE // 4:
                return None
            cursor = self._cursor
            if cursor is not None and any(cursor.seeking(name) for name in names):
                # Dead index entries pile up (a long transaction): the store's claim seeks
                # past its cursor, which this function's full scan from the start cannot.
                return None
            limit = then.limit
        # The store's clock when it is not the server's (a test's): NULL asks for the server's.
        now = None if self._server_clock is not None else self._clock()
        params = self._params(changes, keys, results, then, names, limit, now)
        stepped = self._read(changes, self._link.run_alone(self._sql, params, repeatable=True))
        if names is not None and self._cursor is not None and stepped.claim_seconds is not None:
            # The function's claim was a full scan: the cursor learns how long it took.
            for name in names:
                positions = stepped.positions.get(name, [])
                self._cursor.scanned(name, positions, stepped.claim_seconds)
        return stepped

    def _params(
        self,
        changes: Sequence[Change],
        keys: list[int],
        results: Sequence[str | None],
        then: ClaimAsk | None,
        names: tuple[str, ...] | None,
        limit: int,
        now: float | None,
    ) -> list[object]:
        columns: list[list[object]] = [[] for _ in _ARRAYS]
        columns[0].extend(keys)
        (
            _,
            tokens,
            expired,
            cancel_guard,
            to,
            delay,
            attempts,
            stalls,
            cancel,
            set_finished,
            finished_at,
            set_result,
            result_json,
            set_error,
            error_text,
            outcome,
            ended_error,
            counted,
            ends_lease,
            fence,
            counts_as,
        ) = columns
        for change, result in zip(changes, results, strict=True):
            guard = change.guard
            assert not isinstance(guard, InState)
            fields = change.set
            tokens.append(guard.token)
            expired.append(isinstance(guard, Expired))
            wanted = guard.cancel_requested
            cancel_guard.append(None if wanted is None else int(wanted))
            to.append(change.to.value)
            delay.append(None if change.run_at is None else float(change.run_at))
            attempts.append(fields.get("attempts_made"))
            stalls.append(fields.get("stalls"))
            flag = fields.get("cancel_requested")
            cancel.append(None if flag is None else int(bool(flag)))
            set_finished.append("finished_at" in fields)
            at = fields.get("finished_at")
            finished_at.append(None if at is None else float(at))  # type: ignore[arg-type]
            set_result.append("result" in fields)
            result_json.append(result)
            error = fields.get("error")
            set_error.append("error" in fields)
            error_text.append(error_json(error) if isinstance(error, JobError) else None)
            ended = change.ended
            outcome.append(None if ended is None else ended.outcome.value)
            ended_error.append(
                None if ended is None or ended.error is None else error_json(ended.error)
            )
            counted.append(True if ended is None else ended.counted)
            ends_lease.append(change.ends_lease)
            fence.append(change.fence)
            counts_as.append(None if change.counts_as is None else change.counts_as.value)
        spec = then.spec if then is not None else None
        caps = None if spec is None or names is None else [spec.max_active.get(n) for n in names]
        return [
            *columns,
            now,
            MAX_HISTORY,
            None if names is None else list(names),
            caps,
            limit,
            bool(then is not None and then.unless_conflict),
            None if spec is None else float(spec.lease_seconds),
            None if spec is None else spec.dispatcher,
            [secrets.token_hex(8) for _ in range(limit)],
            *self._lock,
            MAINTENANCE_BATCH,
        ]

    def _read(self, changes: Sequence[Change], rows: list[tuple[Any, ...]]) -> Stepped:
        stepped = Stepped([None] * len(changes))
        claimed: list[tuple[int, Claim]] = []
        for row in rows:
            n = row[0]
            if n == 0:
                stepped.promoted = row[2]
                stepped.claim_seconds = row[_JOB_END + 3]
                if self._server_clock is not None:
                    self._server_clock.follow(float(row[1]))
            elif n < 0:
                stepped.conflicts[-n - 1] = _conflict(changes[-n - 1], row)
            else:
                job_row = (*row[_FIELDS:_JOB_END], *row[_FLOW_COLUMNS:])
                logs = list(zip(row[_JOB_END] or (), row[_JOB_END + 1] or (), strict=True))
                try:
                    job = row_to_job(job_row, logs)
                except CorruptJobError as exc:
                    key = job_row[0]
                    stepped.corrupt.append((key, str(exc).removeprefix(f"job {key}: ")))
                    continue
                claimed.append((n, Claim(job, row[3], job_row[LEASE_EXPIRES_AT])))
                stepped.positions.setdefault(job.name, []).append((job.priority, row[_JOB_END + 2]))
        claimed.sort(key=lambda pair: pair[0])
        stepped.claims = [claim for _, claim in claimed]
        return stepped


def _of_a_flow(change: Change) -> bool:
    """A delivery, or a move into BLOCKED: the long way (``flows``) writes its flow columns
    and decides whether the job leaves BLOCKED."""
    return change.deliver is not None or change.to is JobState.BLOCKED


def _conflict(change: Change, row: Sequence[Any]) -> Conflict:
    """The answer for a change whose guard did not hold, from its row as found (as
    ``guarded.check`` answers)."""
    if row[_FIELDS] is None:
        return Conflict(None)
    guard = change.guard
    assert not isinstance(guard, InState)
    state = JobState(row[_FIELDS + 2])
    expires = row[_FIELDS + LEASE_EXPIRES_AT]
    holds = state is JobState.ACTIVE and row[3] == guard.token
    unexpired = holds and expires is not None and expires > row[1]
    return Conflict(
        state,
        held=unexpired,
        ended_by=ended_by(row[4], guard.token),
        cancel_requested=bool(row[_FIELDS + 20]),
    )
