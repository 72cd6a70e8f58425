"""The store's steps inside a transaction someone else owns: the caller's (a transactional
submit) or one a handler writes its own rows in (a transactional completion).

The dialect joins the transaction first (``PostgresBackend``/``SQLiteBackend``): it checks
the connection is on the queue's database, takes the database's write lock inside that
transaction (held until it ends, as every write transaction of the store holds it) and says
what "now" is. Then these steps run exactly the store's own: ``transitions.store_jobs`` for
a submit, ``guarded.apply_one`` for a completion, and the counters written once
(``Txn.flush``). Nothing here commits or rolls back: the transaction's owner does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from jobqueue.backends.sql import flows, guarded
from jobqueue.backends.sql.dialect import Connection
from jobqueue.backends.sql.rows import SQLValue, job_to_row
from jobqueue.backends.sql.statements import Statements
from jobqueue.backends.sql.transitions import Txn, store_jobs
from jobqueue.changes import Change, Conflict
from jobqueue.job import Job, dumps_json


@dataclass(frozen=True)
class Steps:
    """What the steps need of the store: its statements, its logger and the dialect's
    refused-constraint error."""

    sql: Statements
    log: logging.Logger
    integrity_error: type[Exception]

    def txn(self, conn: Connection, now: float) -> Txn:
        return Txn(conn, self.sql, self.log, now, self.integrity_error)


def encode_jobs(jobs: Sequence[Job]) -> list[tuple[SQLValue, ...]]:
    """The jobs' rows, encoded before anything is written: a refused job stores nothing."""
    return [job_to_row(job, 0, 0) for job in jobs]


def encode_results(changes: Sequence[Change]) -> list[str | None]:
    """The changes' results as JSON text, encoded before anything is written."""
    return [
        dumps_json(change.set["result"]) if change.set.get("result") is not None else None
        for change in changes
    ]


def insert(
    steps: Steps,
    conn: Connection,
    now: float,
    jobs: Sequence[Job],
    rows: Sequence[tuple[SQLValue, ...]],
) -> list[Job]:
    """Store ``jobs`` (``rows``: ``encode_jobs``) in the joined transaction."""
    txn = steps.txn(conn, now)
    stored = (
        flows.store_flow(txn, jobs, rows) if flows.has_flow(jobs) else store_jobs(txn, jobs, rows)
    )
    txn.flush()
    return stored


def apply(
    steps: Steps,
    conn: Connection,
    now: float,
    changes: Sequence[Change],
    results: Sequence[str | None],
) -> tuple[list[Conflict | None], Txn]:
    """Apply ``changes`` guarded (``results``: ``encode_results``) in the joined transaction;
    the answers, and the ``Txn`` (what to tell waiters once it commits)."""
    txn = steps.txn(conn, now)
    answers = [
        guarded.apply_one(txn, change, result)
        for change, result in zip(changes, results, strict=True)
    ]
    txn.flush()
    return answers, txn
