"""A submit in one statement: ``jobqueue_submit`` (migration 3), called in autocommit.

The sync store (``PostgresBackend.insert``) and the asyncio twin (``.aio``) both build the call
here and read its answer here, so they store jobs in exactly the same way; only how the
statement is sent differs.

What stays in Python: encoding (as ``rows.job_to_row``: bad JSON stores nothing), the state of
each job (``lifecycle.due_state`` against "now": the backend's clock, on the server's time
when the clock is the server's -- see ``connections.ServerClock``), the clock floor of the
ids (``jobqueue.ids``) and building the returned jobs. The batch goes as one JSON text
(encoded by Python's C encoder, read by PostgreSQL's ``json_to_recordset``): no per-value
work in the driver, whatever the batch's size. What the function does: the id
reservation, a block of the order counter, the insert (one statement for the batch; one per
job when a unique key is in it, after taking the writers' lock) and a live key holder's row
instead of a duplicate. Its one statement is its own transaction: the rows and their count
deltas (the table's statement trigger) commit together, and nothing is notified inside it
(the store asks the wake-up sender afterwards, debounced: ``wakeups``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from jobqueue import ids, lifecycle
from jobqueue.backends.postgres.dialect import lock_key
from jobqueue.backends.sql.rows import JOB_COLUMNS, history_json, is_flow_job, row_to_job
from jobqueue.backends.sql.statements import INSERT_COLUMNS
from jobqueue.errors import InvalidArgumentError, InvalidJobError
from jobqueue.job import Backoff, Job, JobState, dumps_json

_HOLDER = ", ".join(f"(r.holder).{column}" for column in JOB_COLUMNS.split(", "))

# The batch as one JSON text (``json_to_recordset`` on the server): strict, compact, and
# Unicode as it is (PostgreSQL's text is UTF-8).
_encode = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":")
).encode


@functools.lru_cache(maxsize=64)
def _backoff_json(backoff: Backoff) -> str:
    """A backoff's JSON text (a frozen value: most jobs share their worker's one)."""
    return dumps_json(backoff.to_dict())


_OPTIONAL = ("started_at", "finished_at", "progress_message", "title", "timeout", "dispatcher")
"""Columns a new job rarely has (a job given whole, not built by ``build_job``, may)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """One call's parameters, and what the caller needs to read its answer."""

    params: tuple[object, ...]
    states: list[JobState]


class SubmitCall:
    """``jobqueue_submit`` of one schema: its statement, parameters and answer."""

    def __init__(self, schema: str, quoted: str) -> None:
        self.lock = lock_key(schema)
        self.sql = (
            f"SELECT r.n, r.last_id, r.first_seq, r.server_now, {_HOLDER}, r.log_at, "
            f"r.log_message FROM {quoted}.jobqueue_submit(%s, %s, %s, %s, %s::json, %s::json) "
            "AS r"
        )

    def prepare(self, jobs: Sequence[Job], now: float, *, server_clock: bool) -> Prepared:
        """Encode ``jobs`` (raises before anything is sent: bad values store nothing) and
        decide each one's state at ``now``. On the server's clock (``server_clock``), "now"
        is never before a job was made: the clock's offset may have moved back a little since
        (``ServerClock``), which must not delay a job due at once."""
        states: list[JobState] = []
        rows: list[dict[str, object]] = []
        logs: list[dict[str, object]] = []
        keyed = False
        for n, job in enumerate(jobs, 1):
            if is_flow_job(job):  # the function stores no flow columns, translates no "@k"
                raise InvalidArgumentError(
                    "a flow's jobs are stored by the store's own transaction "
                    "(PostgresBackend.insert), not in a transaction of the caller's"
                )
            state = lifecycle.due_state(
                job.run_at, max(now, job.created_at) if server_clock else now
            )
            states.append(state)
            row: dict[str, object] = {
                "name": job.name,
                "state": state.value,
                "priority": job.priority,
                "run_at": job.run_at,
                "attempts": job.attempts,
                "attempts_made": job.attempts_made,
                "stalls": job.stalls,
                "created_at": job.created_at,
                "progress": job.progress,
                "backoff": _backoff_json(job.backoff),
                "data": _data_json(job),
                "cancel_requested": int(job.cancel_requested),
            }
            # Left out when None: json_to_recordset reads a missing key as NULL.
            if job.unique_key is not None:
                row["unique_key"] = job.unique_key
                keyed = True
            for column in _OPTIONAL:
                value = getattr(job, column)
                if value is not None:
                    row[column] = value
            if job.result is not None:
                row["result"] = dumps_json(job.result)
            if job.error is not None:
                row["error"] = dumps_json(job.error.to_dict())
            if job.history:
                row["history"] = history_json(job.history)
            rows.append(row)
            logs.extend({"j": n, "at": log.at, "message": log.message} for log in job.logs)
        floor = ids.clock_floor() + len(jobs) - 1
        try:
            encoded = _encode(rows), _encode(logs) if logs else None
        except ValueError as exc:  # a NaN or an infinity in a time: nothing is sent
            raise InvalidJobError(f"a job's times must be finite numbers ({exc})") from exc
        return Prepared((*self.lock, floor, keyed, *encoded), states)

    def stored(
        self, jobs: Sequence[Job], prepared: Prepared, answer: Sequence[Sequence[Any]]
    ) -> tuple[list[Job], float]:
        """The jobs as stored (a deduplicated one: its key's live holder) and the server's
        clock, from the function's rows."""
        held: dict[int, Job] = {}
        last_id, server_now = 0, 0.0
        for row in answer:
            if row[0] == 0:
                last_id, server_now = int(row[1]), float(row[3])
            else:
                logs = list(zip(row[-2] or (), row[-1] or (), strict=True))
                held[int(row[0])] = replace(row_to_job(row[4:-2], logs), deduplicated=True)
        first = last_id - len(jobs) + 1
        stored: list[Job] = []
        for n, (job, state) in enumerate(zip(jobs, prepared.states, strict=True)):
            holder = held.get(n + 1)
            stored.append(holder if holder is not None else _filled(job, first + n, state))
        return stored, server_now


def _filled(job: Job, key: int, state: JobState) -> Job:
    """``job`` as stored with id ``key``. One ``build_job`` made for this submit (it carries
    ``_submit_json``) is nobody else's: it is filled in and returned itself; any other is
    copied, the caller's left as it was."""
    if getattr(job, "_submit_json", None) is None:
        return replace(job, id=str(key), state=state, logs=list(job.logs))
    del job._submit_json  # stored: the job returned carries no submit state
    job.id, job.state = str(key), state
    return job


def _data_json(job: Job) -> str:
    """The text build_job checked, while the data is still the object it checked."""
    built = getattr(job, "_submit_json", None)
    data = job.data
    return built[1] if built is not None and built[0] is data else dumps_json(data)


# -- a large batch: COPY -----------------------------------------------------------------------

COPY_ROWS = 64
"""From this many jobs without a unique key, a submit streams its rows with ``COPY`` (binary:
each value encoded by the driver's C code) inside a transaction of the store's (``copy``),
instead of one JSON text parsed by the function: fewer bytes, and no JSON work either side."""

COPY_JOBS = f"COPY jobqueue_jobs ({INSERT_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_INT, _TEXT, _FLOAT = "int8", "text", "float8"
COPY_TYPES = [
    *(_INT, _TEXT, _TEXT, _INT, _INT, _FLOAT, _TEXT, _INT, _INT, _INT),
    *(_FLOAT, _FLOAT, _FLOAT, _FLOAT, _TEXT, _TEXT, _FLOAT, _TEXT, _TEXT, _TEXT, _TEXT),
    *("int2", _TEXT, _TEXT),
]


def copies(jobs: Sequence[Job]) -> bool:
    """Whether ``jobs`` go by ``COPY``: many, none with a unique key (whose holder is looked
    up, one job at a time, by the function), none of a flow (``flows.store_flow``)."""
    return len(jobs) >= COPY_ROWS and all(
        job.unique_key is None and not is_flow_job(job) for job in jobs
    )


def copy_rows(jobs: Sequence[Job]) -> list[tuple[object, ...]]:
    """The rows of ``COPY_JOBS`` (``rows.job_to_row``'s, with the cached encodings), made
    before the transaction: a value that does not encode raises with nothing sent. The id,
    state and order number are placeholders (``numbered``)."""
    return [
        (
            0,
            job.name,
            "",
            job.priority,
            0,
            float(job.run_at),
            None,  # unique_key: batches with one go through the function
            job.attempts,
            job.attempts_made,
            job.stalls,
            float(job.created_at),
            None if job.started_at is None else float(job.started_at),
            None if job.finished_at is None else float(job.finished_at),
            float(job.progress),
            job.progress_message,
            job.title,
            None if job.timeout is None else float(job.timeout),
            _backoff_json(job.backoff),
            _data_json(job),
            None if job.result is None else dumps_json(job.result),
            None if job.error is None else dumps_json(job.error.to_dict()),
            int(job.cancel_requested),
            job.dispatcher,
            history_json(job.history),
        )
        for job in jobs
    ]


def numbered(
    rows: Sequence[tuple[object, ...]], first_id: int, first_seq: int, states: Sequence[JobState]
) -> Iterator[tuple[object, ...]]:
    """``copy_rows``' rows with their ids, states and order numbers: the n-th row's are
    ``first_id + n`` and ``first_seq + n``."""
    for n, (row, state) in enumerate(zip(rows, states, strict=True)):
        yield (first_id + n, row[1], state.value, row[3], first_seq + n, *row[5:])


def copied(jobs: Sequence[Job], first_id: int, states: Sequence[JobState]) -> list[Job]:
    """The jobs ``copy_rows`` stored, as returned."""
    return [
        _filled(job, first_id + n, state)
        for n, (job, state) in enumerate(zip(jobs, states, strict=True))
    ]


def log_rows(jobs: Sequence[Job], first_id: int) -> list[tuple[int, float, str]]:
    """``INSERT_LOG``'s parameters for the logs of jobs stored from ``first_id`` on."""
    return [(first_id + n, log.at, log.message) for n, job in enumerate(jobs) for log in job.logs]
