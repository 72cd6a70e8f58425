"""A submit in one statement: ``jobqueue_submit`` (migration 3), called in autocommit.

The sync store (``PostgresBackend.insert``) and the asyncio twin (``.aio``) both build the call
here and read its answer here, so they store jobs in exactly the same way; only how the
statement is sent differs.

What stays in Python: encoding (as ``rows.job_to_row``: bad JSON stores nothing), the state of
each job (``lifecycle.due_state`` against "now": the backend's clock, on the server's time
when the clock is the server's -- see ``connections.ServerClock``), the clock floor of the
ids (``jobqueue.ids``) and building the returned jobs. What the function does: the id
reservation, a block of the order counter, the insert (one statement for the batch; one per
job when a unique key is in it, after taking the writers' lock) and a live key holder's row
instead of a duplicate. Its one statement is its own transaction: the rows and their count
deltas (the table's statement trigger) commit together, and nothing is notified inside it
(the store asks the wake-up sender afterwards, debounced: ``wakeups``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from jobqueue import ids, lifecycle
from jobqueue.backends.postgres.dialect import lock_key
from jobqueue.backends.sql.rows import JOB_COLUMNS, SQLValue, history_json, row_to_job
from jobqueue.job import Backoff, Job, JobState, dumps_json

# The function's array parameters, in its order (a job's columns but the id and seq, then
# the logs'): cast, so the function resolves whatever element types psycopg picked (an array
# of NULLs included).
_TYPES = [
    "text[]",
    "text[]",
    "bigint[]",
    "float8[]",
    "text[]",
    "bigint[]",
    "bigint[]",
    "bigint[]",
    "float8[]",
    "float8[]",
    "float8[]",
    "float8[]",
    "text[]",
    "text[]",
    "float8[]",
    "text[]",
    "text[]",
    "text[]",
    "text[]",
    "smallint[]",
    "text[]",
    "text[]",
    "integer[]",
    "float8[]",
    "text[]",
]
_HOLDER = ", ".join(f"(r.holder).{column}" for column in JOB_COLUMNS.split(", "))


@functools.lru_cache(maxsize=64)
def _backoff_json(backoff: Backoff) -> str:
    """A backoff's JSON text (a frozen value: most jobs share their worker's one)."""
    return dumps_json(backoff.to_dict())


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class Prepared:
    """One call's parameters, and what the caller needs to read its answer."""

    params: list[object]
    states: list[JobState]


class SubmitCall:
    """``jobqueue_submit`` of one schema: its statement, parameters and answer."""

    def __init__(self, schema: str, quoted: str) -> None:
        self.lock = lock_key(schema)
        # Arrays sent in binary (``%b``): no quoting of every text; cast, so the function
        # resolves whatever element types psycopg picked (an array of NULLs included).
        arrays = ", ".join(f"%b::{kind}" for kind in _TYPES)
        self.sql = (
            f"SELECT r.n, r.last_id, r.first_seq, r.server_now, {_HOLDER}, r.log_at, "
            f"r.log_message FROM {quoted}.jobqueue_submit(%s, %s, %s, {arrays}) AS r"
        )

    def prepare(self, jobs: Sequence[Job], now: float, *, server_clock: bool) -> Prepared:
        """Encode ``jobs`` (raises before anything is sent: bad values store nothing) and
        decide each one's state at ``now``. On the server's clock (``server_clock``), "now"
        is never before a job was made: the clock's offset may have moved back a little since
        (``ServerClock``), which must not delay a job due at once."""
        states = [
            lifecycle.due_state(job.run_at, max(now, job.created_at) if server_clock else now)
            for job in jobs
        ]
        columns: list[list[SQLValue]] = [[] for _ in range(22)]
        (names, state_values, priorities, run_ats, keys, attempts, made, stalls, created, started,
         finished, progress, messages, titles, timeouts, backoffs, datas, results, errors,
         cancels, dispatchers, histories) = columns  # fmt: skip
        for job, state in zip(jobs, states, strict=True):
            # Encoded first (bad values raise before anything is sent); the text build_job
            # checked, while the data is still the object it checked.
            built = getattr(job, "_submit_json", None)
            data = job.data
            datas.append(built[1] if built is not None and built[0] is data else dumps_json(data))
            names.append(job.name)
            state_values.append(state.value)
            priorities.append(job.priority)
            run_ats.append(float(job.run_at))
            keys.append(job.unique_key)
            attempts.append(job.attempts)
            made.append(job.attempts_made)
            stalls.append(job.stalls)
            created.append(float(job.created_at))
            started.append(_float(job.started_at))
            finished.append(_float(job.finished_at))
            progress.append(float(job.progress))
            messages.append(job.progress_message)
            titles.append(job.title)
            timeouts.append(_float(job.timeout))
            backoffs.append(_backoff_json(job.backoff))
            results.append(None if job.result is None else dumps_json(job.result))
            errors.append(None if job.error is None else dumps_json(job.error.to_dict()))
            cancels.append(int(job.cancel_requested))
            dispatchers.append(job.dispatcher)
            histories.append(history_json(job.history))
        logs: list[list[SQLValue]] = [[], [], []]
        for n, job in enumerate(jobs, 1):
            for log in job.logs:
                logs[0].append(n)
                logs[1].append(float(log.at))
                logs[2].append(log.message)
        floor = ids.clock_floor() + len(jobs) - 1
        return Prepared([*self.lock, floor, *columns, *logs], states)

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
            if holder is not None:
                stored.append(holder)
            elif getattr(job, "_submit_json", None) is None:  # the caller's: left as it was
                stored.append(replace(job, id=str(first + n), state=state, logs=list(job.logs)))
            else:  # made by build_job for this submit, nobody else's: filled in itself
                del job._submit_json  # stored: the job returned carries no submit state
                job.id, job.state = str(first + n), state
                stored.append(job)
        return stored, server_now
