"""PostgreSQL backend (``postgresql://user@host/db``, ``pip install 'jobqueue[postgres]'``).

The SQL family's store (``jobqueue.backends.sql``) over PostgreSQL's dialect (``.dialect``),
connections (``.connections``: psycopg 3 and psycopg_pool) and wake-ups (``.wakeups``:
LISTEN/NOTIFY); the schema is ``migrations/NNNN_name.sql``, in a PostgreSQL schema of its
own. URL options: ``.url``. Leases are measured on the server's clock unless a clock is
given (``connections.ServerClock``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import cast

from jobqueue import lifecycle
from jobqueue.backend import BackendOptions
from jobqueue.backends.postgres import submit
from jobqueue.backends.postgres.connections import Conn, PgConnection, PostgresLink, ServerClock
from jobqueue.backends.postgres.dialect import SCHEMA_VERSION, PostgresDialect
from jobqueue.backends.postgres.external import PostgresTransactions
from jobqueue.backends.postgres.one_step import OneStep
from jobqueue.backends.postgres.submit import SubmitCall
from jobqueue.backends.postgres.url import PostgresURL, parse
from jobqueue.backends.sql import flows
from jobqueue.backends.sql.external import Steps
from jobqueue.backends.sql.store import SQLStore
from jobqueue.changes import Change
from jobqueue.job import Job
from jobqueue.transactions import Check

__all__ = ["SCHEMA_VERSION", "PostgresBackend"]


class PostgresBackend(SQLStore):
    """A queue in one schema of a PostgreSQL database.

    ``options.namespace``, when given, names the schema if the URL does not (``?schema=``);
    the default is ``jobqueue``. With the default clock (``time.time``), "now" is the
    server's (``server_clock``)."""

    def __init__(self, url: str | PostgresURL, options: BackendOptions | None = None) -> None:
        options = options or BackendOptions()
        self.url = url if isinstance(url, PostgresURL) else parse(url, schema=options.namespace)
        clock = ServerClock() if options.clock is time.time else None
        if clock is not None:
            options = replace(options, clock=clock)
        self.server_clock = clock is not None
        """Whether "now" is the PostgreSQL server's clock."""
        self.schema = self.url.schema
        dialect = PostgresDialect(self.schema)
        link = PostgresLink(self.url, dialect, clock)
        super().__init__(options, dialect, link)
        self._one_step = OneStep(link, dialect, self.options.clock, clock, self.claim_cursor)
        self.dialect = dialect
        self._pg = link
        self._clock_of_server = clock
        self.submit_call = SubmitCall(self.schema, dialect.quoted)
        """``jobqueue_submit`` of this schema (shared with the asyncio twin, ``.aio``, and
        the transactional submit, ``.external``)."""
        self._transactions = PostgresTransactions(
            self.url,
            dialect,
            link.pool,
            Steps(self._sql, self._log, self._integrity_error),
            link.signal,
            self.options.clock,
            self.server_clock,
            self.submit_call,
        )

    def insert(self, jobs: Sequence[Job]) -> list[Job]:
        """One statement in autocommit (``.submit``): no transaction of the store's, no
        round trip but the call's own. A large batch without unique keys: ``COPY``. A flow's
        jobs: the store's own transaction (``flows.store_flow``: "@k" references translated)."""
        if flows.has_flow(jobs):
            return super().insert(jobs)
        if submit.copies(jobs):
            return self._copy(jobs)
        call = self.submit_call
        prepared = call.prepare(jobs, self._clock(), server_clock=self.server_clock)
        answer = self._pg.run_alone(call.sql, prepared.params, repeatable=False)
        stored, server_now = call.stored(jobs, prepared, answer)
        self.after_submit(server_now)
        return stored

    def _copy(self, jobs: Sequence[Job]) -> list[Job]:
        """``jobs`` streamed by ``COPY`` in a transaction of the store's, which reserved
        their ids and took a block of the order counter as it began (one round trip)."""
        rows = submit.copy_rows(jobs)  # encoded first: a bad value stores nothing
        with self._transaction(exclusive=False, ids=len(jobs)) as txn:
            states = [lifecycle.due_state(job.run_at, txn.now) for job in jobs]
            first_id = txn.next_job_id()
            for _ in range(len(jobs) - 1):
                txn.next_job_id()
            first_seq = txn.next_seq(len(jobs))
            conn = cast(Conn, txn.conn)
            conn.copy_in(
                submit.COPY_JOBS,
                submit.COPY_TYPES,
                submit.numbered(rows, first_id, first_seq, states),
            )
            logs = submit.log_rows(jobs, first_id)
            if logs:
                conn.executemany(txn.sql.INSERT_LOG, logs)
            txn.work_added = True
        return submit.copied(jobs, first_id, states)

    def after_submit(self, server_now: float) -> None:
        """What follows a committed submit (here or in the asyncio twin): the server's clock
        noted, waiters woken (other processes through the debounced NOTIFY sender)."""
        if self._clock_of_server is not None:
            self._clock_of_server.follow(server_now)
        self._signal.notify(work=True)

    def after_change(self) -> None:
        """What follows a committed change that adds no work (a removal): waiters woken."""
        self._signal.notify(work=False)

    # -- jobqueue.transactions.TransactionalStore ---------------------------------------------

    def insert_in(self, connection: object, jobs: Sequence[Job]) -> list[Job]:
        """Store ``jobs`` in the caller's open transaction (``connection``: psycopg 3, or a
        SQLAlchemy Connection/Session on it); see ``.external``."""
        return self._transactions.insert_in(connection, jobs)

    async def insert_in_async(self, connection: object, jobs: Sequence[Job]) -> list[Job]:
        return await self._transactions.insert_in_async(connection, jobs)

    def completing(
        self, changes: Sequence[Change], check: Check
    ) -> AbstractContextManager[PgConnection]:
        return self._transactions.completing(changes, check)

    @classmethod
    def from_url(cls, url: str, options: BackendOptions) -> PostgresBackend:
        return cls(url, options)
