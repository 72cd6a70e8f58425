"""The seam's guarded write (``Storage.apply``) and its reads, as steps inside one write
transaction (``Txn``) or read snapshot (``Reader``).

``apply`` reads each change's row once (``GUARD_ROW``), checks the guard in Python against
it (mechanics only: the guard's fields against the row, and for a job coming back to life its
unique key) and writes the move with ``transitions.write``, the one write the old verbs use
too. Nothing here decides a rule: the change says where the job goes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from jobqueue.backends.sql import flows, reads
from jobqueue.backends.sql.dialect import Reader
from jobqueue.backends.sql.rows import JOB_WIDTH, LEASE_EXPIRES_AT, row_to_job
from jobqueue.backends.sql.statements import Statements
from jobqueue.backends.sql.transitions import Held, Txn, job_key, key_holder, write
from jobqueue.changes import Change, Conflict, Expired, InState, Selector
from jobqueue.errors import CorruptJobError
from jobqueue.job import Job, JobState, unreadable_job
from jobqueue.values import Claim


def read(txn: Txn, key: int) -> Held | None:
    """The row as a guard and the write read it, or ``None``: no such job."""
    row = txn.conn.execute(txn.sql.GUARD_ROW, (key,)).fetchone()
    return None if row is None else _guard_row(row)


def read_many(txn: Txn, keys: Sequence[int]) -> dict[int, Held]:
    """``read`` of many rows in one statement per ``reads.CHUNK``; missing ones left out."""
    found: dict[int, Held] = {}
    for start in range(0, len(keys), reads.CHUNK):
        chunk = keys[start : start + reads.CHUNK]
        for row in txn.conn.execute(txn.sql.guard_rows(len(chunk)), chunk):
            found[row[0]] = _guard_row(row)
    return found


def apply_all(
    txn: Txn, changes: Sequence[Change], results: Sequence[str | None]
) -> list[Conflict | None]:
    """``apply_one`` of each change in order. A batch of distinct jobs reads its rows in one
    statement and sends the lease holders' moves together (``Txn.flush_moves``); a change
    guarded by state (which may read other rows: a unique key's holder) sends the moves
    before it first."""
    keys = [job_key(change.job_id) for change in changes]
    if len(changes) < 2 or None in keys or len(set(keys)) < len(keys):
        return [apply_one(txn, c, r) for c, r in zip(changes, results, strict=True)]
    rows = read_many(txn, cast(list[int], keys))
    answers: list[Conflict | None] = []
    for change, key, result in zip(changes, keys, results, strict=True):
        row = rows.get(cast(int, key))
        if row is None:
            answers.append(Conflict(None))
            continue
        # A move guarded by state, or a delivery (which reads another job), sees the
        # batch's earlier moves: they are sent first.
        held = not isinstance(change.guard, InState) and change.deliver is None
        if not held:
            txn.flush_moves()
        conflict = check(txn, row, change)
        if conflict is None:
            conflict = write_checked(txn, row, change, result, defer=held)
        answers.append(conflict)
    txn.flush_moves()
    return answers


def _guard_row(row: Sequence[Any]) -> Held:
    return Held(
        key=row[0],
        attempts_made=row[1],
        dispatcher=row[2],
        started_at=row[3],
        history=row[4],
        cancel_requested=bool(row[5]),
        token=row[8] or "",
        stalls=row[6],
        state=JobState(row[7]),
        lease_expires_at=row[9],
        ended_lease=row[10],
        unique_key=row[11],
    )


def apply_one(txn: Txn, change: Change, result: str | None) -> Conflict | None:
    """Write ``change`` if its guard holds (``None``), else say why not. ``result`` is the
    JSON text of ``change.set["result"]``, encoded before the transaction."""
    key = job_key(change.job_id)
    row = None if key is None else read(txn, key)
    if row is None:
        return Conflict(None)
    conflict = check(txn, row, change)
    if conflict is None:
        conflict = write_checked(txn, row, change, result)
    return conflict


def write_checked(
    txn: Txn, row: Held, change: Change, result: str | None, *, defer: bool = False
) -> Conflict | None:
    """Write ``change``, whose own guard holds: a delivery's guard is checked, and its
    conditional move made, by ``flows.deliver``."""
    if change.deliver is not None:
        return flows.deliver(txn, row, change, change.deliver, result)
    write(txn, row, change, result, defer=defer)
    return None


def check(txn: Txn, row: Held, change: Change) -> Conflict | None:
    """``change.guard`` against the row as stored: ``None`` when it holds."""
    guard = change.guard
    if isinstance(guard, InState):
        if row.state not in guard.states:
            return Conflict(row.state, cancel_requested=row.cancel_requested)
        if change.to.is_live and not row.state.is_live:
            other = key_holder(txn, row.key, row.unique_key)
            if other is not None:
                return Conflict(
                    row.state, cancel_requested=row.cancel_requested, unique_holder=other
                )
        return None
    holds = row.state is JobState.ACTIVE and row.token == guard.token
    unexpired = holds and row.lease_expires_at is not None and row.lease_expires_at > txn.now
    wanted = guard.cancel_requested
    if (
        holds
        and unexpired is not isinstance(guard, Expired)
        and (wanted is None or wanted == row.cancel_requested)
    ):
        return None
    return Conflict(
        row.state,
        held=unexpired,
        ended_by=ended_by(row.ended_lease, guard.token),
        cancel_requested=row.cancel_requested,
    )


def ended_by(ended_lease: str | None, token: str) -> str | None:
    """The call recorded as having ended ``token``'s lease (``"<call> <token>"``), if any."""
    if ended_lease is None:
        return None
    call, _, ended_token = ended_lease.partition(" ")
    return call if ended_token == token else None


# -- reads: never write ---------------------------------------------------------------------------


def scan(db: Reader, selector: Selector, offset: int, limit: int) -> list[Job]:
    rows = db.conn.execute(*scan_query(db.sql, selector, offset, limit)).fetchall()
    return _jobs(db, rows)


def scan_query(
    sql: Statements, selector: Selector, offset: int, limit: int
) -> tuple[str, list[object]]:
    """The statement of a page of ``selector``'s jobs, and its parameters."""
    state = JobState(selector.state)
    params: list[object] = []
    if selector.name is not None:
        params.append(selector.name)
    before = selector.finished_before is not None and state.is_finished
    if before:
        params.append(selector.finished_before)
    params += [max(limit, 0), max(offset, 0)]
    return sql.scan(state, selector.name is not None, before), params


def expired(db: Reader, now: float, limit: int) -> list[Claim]:
    rows = db.conn.execute(db.sql.EXPIRED_LEASES, (now, max(limit, 0))).fetchall()
    jobs = _jobs(db, rows)
    return [
        Claim(job, row[JOB_WIDTH], row[LEASE_EXPIRES_AT])
        for job, row in zip(jobs, rows, strict=True)
    ]


def _jobs(db: Reader, rows: Sequence[Sequence[object]]) -> list[Job]:
    """Rows of ``JOB_COLUMNS`` as jobs with their logs; one that does not decode shows as
    ``unreadable_job`` (as a listing shows it), so a caller still sees and can move it."""
    return jobs_from(rows, reads.job_logs(db, [cast(int, row[0]) for row in rows]), db.log)


def jobs_from(
    rows: Sequence[Sequence[object]],
    logs: dict[int, list[tuple[float, str]]],
    log: logging.Logger,
) -> list[Job]:
    """Rows of ``JOB_COLUMNS`` and their logs (``reads.job_logs``) as jobs, as ``scan``
    lists them."""
    jobs = []
    for row in rows:
        try:
            jobs.append(row_to_job(row, logs.get(cast(int, row[0]), ())))
        except CorruptJobError as exc:
            log.error("reading a corrupt job: %s", exc)
            jobs.append(unreadable_job(row[0], row[1], row[2], str(exc)))
    return jobs
