"""Turning Job values into table rows and back. Only JSON is ever read back (no pickle)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jobqueue.dependency import Dependency
from jobqueue.errors import CorruptJobError
from jobqueue.job import JSON, Attempt, Job, JobError, JobLog, dumps_json, loads_stored

SQLValue = str | int | float | bytes | None
"""A value stored in a column: what the DB-API drivers take as a parameter."""

FLOW_COLUMNS = "flow_id, depends_on, dependents, dependency_outcomes"
"""The columns a job of a flow has besides (``flows.flow_columns``), NULL for a job of no
flow (schema version 10 on SQLite, 5 on PostgreSQL); its insert leaves them out."""
FLOW_WIDTH = FLOW_COLUMNS.count(",") + 1

# Columns read for a Job, in order; ``row_to_job`` relies on it. The flow columns come last.
JOB_COLUMNS = (
    "id, name, state, priority, attempts, attempts_made, stalls, backoff, timeout, unique_key, "
    "created_at, run_at, started_at, finished_at, progress, progress_message, title, data, "
    f"result, error, cancel_requested, dispatcher, history, lease_expires_at, {FLOW_COLUMNS}"
)
JOB_WIDTH = JOB_COLUMNS.count(",") + 1
"""How many columns ``JOB_COLUMNS`` reads (a statement's own columns follow them)."""
LEASE_EXPIRES_AT = 23
"""The place of ``lease_expires_at`` in ``JOB_COLUMNS``."""

INSERT_JOB = (
    "INSERT INTO jobqueue_jobs (id, name, state, priority, seq, run_at, unique_key, attempts, "
    "attempts_made, stalls, created_at, started_at, finished_at, progress, progress_message, "
    "title, timeout, backoff, data, result, error, cancel_requested, dispatcher, history) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def job_to_row(job: Job, job_id: int, seq: int) -> tuple[SQLValue, ...]:
    """Parameters for ``INSERT_JOB``. Encodes JSON first so bad values store nothing."""
    return (
        job_id,
        job.name,
        job.state.value,
        job.priority,
        seq,
        job.run_at,
        job.unique_key,
        job.attempts,
        job.attempts_made,
        job.stalls,
        job.created_at,
        job.started_at,
        job.finished_at,
        job.progress,
        job.progress_message,
        job.title,
        job.timeout,
        dumps_json(job.backoff.to_dict()),
        dumps_json(job.data),
        None if job.result is None else dumps_json(job.result),
        None if job.error is None else dumps_json(job.error.to_dict()),
        int(job.cancel_requested),
        job.dispatcher,
        history_json(job.history),
    )


def is_flow_job(job: Job) -> bool:
    """Whether ``job`` is part of a flow (it has flow columns to store)."""
    return bool(
        job.flow_id is not None or job.depends_on or job.dependents or job.dependency_outcomes
    )


def edges_json(edges: Sequence[Dependency]) -> str | None:
    """A ``depends_on`` / ``dependents`` column: ``NULL`` for none (a job of no flow)."""
    return dumps_json([edge.to_list() for edge in edges]) if edges else None


def outcomes_json(outcomes: Mapping[str, JSON]) -> str | None:
    """The ``dependency_outcomes`` column: ``NULL`` for none."""
    return dumps_json(dict(outcomes)) if outcomes else None


def batch_position(reference: str) -> int | None:
    """``k`` when ``reference`` is ``"@k"`` (``job.batch_ref``: the k-th job of the same
    ``insert``), else ``None``: a stored job's id."""
    if reference.startswith("@") and reference[1:].isdigit():
        return int(reference[1:])
    return None


def history_json(history: Sequence[Attempt]) -> str | None:
    """The ``history`` column: ``NULL`` for none (as every row from before version 2 has)."""
    return dumps_json([attempt.to_dict() for attempt in history]) if history else None


def history_from_json(text: str | None) -> list[Attempt]:
    """Decode the ``history`` column; raises ``CorruptJobError``."""
    if text is None:
        return []
    raw = _json(text, "history")
    try:
        return [Attempt.from_dict(entry) for entry in raw]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptJobError(f"column 'history' is malformed ({exc!r})") from exc


def error_json(error: JobError) -> str:
    return dumps_json(error.to_dict())


def row_to_job(row: Sequence[Any], logs: Sequence[tuple[float, str]] = ()) -> Job:
    """Rebuild a Job from a row of ``JOB_COLUMNS``; raises ``CorruptJobError``."""
    job_id = row[0]
    try:
        raw: dict[str, JSON] = {
            "id": job_id,
            "name": row[1],
            "state": row[2],
            "priority": row[3],
            "attempts": row[4],
            "attempts_made": row[5],
            "stalls": row[6],
            "backoff": _json(row[7], "backoff"),
            "timeout": row[8],
            "unique_key": row[9],
            "created_at": row[10],
            "run_at": row[11],
            "started_at": row[12],
            "finished_at": row[13],
            "progress": row[14],
            "progress_message": row[15],
            "title": row[16],
            "data": _json(row[17], "data"),
            "result": None if row[18] is None else _json(row[18], "result"),
            "error": None if row[19] is None else _json(row[19], "error"),
            "cancel_requested": bool(row[20]),
            "dispatcher": row[21],
            "history": None if row[22] is None else _json(row[22], "history"),
            # The lease deadline is a read of an active job only: the column is cleared when
            # the lease ends, but a reader must never see a stale one on another state.
            "lease_expires_at": row[23] if row[2] == "active" else None,
        }
        if row[24] is not None or row[25] is not None or row[26] is not None:
            raw["flow_id"] = row[24]
            raw["depends_on"] = None if row[25] is None else _json(row[25], "depends_on")
            raw["dependents"] = None if row[26] is None else _json(row[26], "dependents")
        if row[27] is not None:
            raw["dependency_outcomes"] = _json(row[27], "dependency_outcomes")
        job = Job.from_dict(raw)
    except CorruptJobError as exc:
        raise CorruptJobError(f"job {job_id}: {exc}") from exc
    job.logs = [JobLog(float(at), str(message)) for at, message in logs]
    return job


def loads_column(text: object, column: str) -> JSON:
    """A JSON column's value; raises ``CorruptJobError``."""
    return _json(text, column)


def _json(text: object, column: str) -> JSON:
    if not isinstance(text, (str, bytes)):
        raise CorruptJobError(f"column {column!r} holds {type(text).__name__}, not JSON text")
    return loads_stored(text, f"column {column!r}")
