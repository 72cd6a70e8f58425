"""PostgreSQL's side of sharing a transaction (``jobqueue.transactions``).

A transactional submit: one round trip checks the connection (the queue's database, the
queue's schema in it), a second calls ``jobqueue_submit`` (``.submit``, the store's own
submit, schema-qualified and bound to the queue's schema: the caller's ``search_path`` is
never touched) inside the caller's transaction, a third adds the ``pg_notify``. The function
holds the job-id row (and, with a unique key, the schema's advisory lock) until the caller's
transaction ends: other submits wait for its commit, and with a unique key every writer that
takes the schema's lock. Submit last, just before the commit, and keep such transactions
short (docs/postgresql.md). The asyncio form sends the same statements on the caller's
``AsyncConnection``: no thread. A flow's jobs (sync connections only) are stored by the
store's own steps instead (``flows.store_flow``), under the schema's lock, with
``search_path`` set to the queue's schema for them and then set back as it was.

A transactional completion (``completing``) joins the handler's transaction: it takes the
schema's advisory transaction lock, sets ``search_path`` (``set_config(..., true)``: local to
the transaction) and reads the server's clock in one round trip, then runs the store's steps.

Wake-ups: a transactional submit sends ``pg_notify`` inside the caller's transaction, which
PostgreSQL delivers only if it commits (nothing on a rollback), once per submit call. A
transactional completion commits the transaction itself and then wakes as every write does
(``Signal.notify``: the wake-up sender, outside the transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from jobqueue.backends.postgres.connections import Conn, PgConnection
from jobqueue.backends.postgres.dialect import PostgresDialect, translate
from jobqueue.backends.postgres.submit import SubmitCall
from jobqueue.backends.postgres.url import PostgresURL
from jobqueue.backends.sql import caller, external, flows
from jobqueue.backends.sql.dialect import Connection, Signal
from jobqueue.changes import Change
from jobqueue.errors import InvalidArgumentError
from jobqueue.job import Job
from jobqueue.transactions import Check

AsyncPgConnection = psycopg.AsyncConnection[tuple[Any, ...]]

_NOTIFY = "SELECT pg_notify(%s, 'w')"
_IDENTITY = (  # one round trip: the caller's search_path, and which database and queue
    "SELECT current_setting('search_path'), current_database(), to_regclass(%s)::oid::bigint"
)


@dataclass
class PostgresTransactions:
    """A PostgreSQL backend's transactional submit and completion."""

    url: PostgresURL
    dialect: PostgresDialect
    pool: ConnectionPool[PgConnection]
    steps: external.Steps
    signal: Signal
    clock: Callable[[], float]
    server_clock: bool
    submit: SubmitCall
    _identity: tuple[str, int] | None = None

    # -- submit ----------------------------------------------------------------------------

    def insert_in(self, connection: object, jobs: Sequence[Job]) -> list[Job]:
        raw = caller.driver_connection(connection)
        if isinstance(raw, psycopg.AsyncConnection):
            raise InvalidArgumentError(
                "an asyncio connection: submit through AsyncJobQueue "
                "(await queue.submit_job(..., connection=conn))"
            )
        if not isinstance(raw, psycopg.Connection):
            raise _not_psycopg(connection)
        _check_open(raw.autocommit, raw.info.transaction_status)
        if flows.has_flow(jobs):
            return self._insert_flow(raw, jobs)
        call = self.submit
        prepared = call.prepare(jobs, self.clock(), server_clock=self.server_clock)
        try:
            self._check_identity(raw.execute(_IDENTITY, (self._meta,)).fetchone())
            answer = raw.execute(call.sql, prepared.params).fetchall()
            # Delivered by PostgreSQL if, and when, the caller's transaction commits.
            raw.execute(_NOTIFY, (self.dialect.channel,))
        except psycopg.Error as exc:
            raise translate(exc, self.url.where) from exc
        return call.stored(jobs, prepared, answer)[0]

    async def insert_in_async(self, connection: object, jobs: Sequence[Job]) -> list[Job]:
        raw = await caller.driver_connection_async(connection)
        if isinstance(raw, psycopg.Connection):  # a sync connection: its calls would block
            return await asyncio.to_thread(self.insert_in, raw, jobs)
        if not isinstance(raw, psycopg.AsyncConnection):
            raise _not_psycopg(connection)
        _check_open(raw.autocommit, raw.info.transaction_status)
        if flows.has_flow(jobs):
            raise InvalidArgumentError(
                "a flow is submitted in a transaction of yours on a sync psycopg connection "
                "(or a SQLAlchemy Connection/Session on one), not an asyncio one"
            )
        call = self.submit
        prepared = call.prepare(jobs, self.clock(), server_clock=self.server_clock)
        try:
            found = await raw.execute(_IDENTITY, (self._meta,))
            self._check_identity(await found.fetchone())
            answer = await (await raw.execute(call.sql, prepared.params)).fetchall()
            await raw.execute(_NOTIFY, (self.dialect.channel,))
        except psycopg.Error as exc:
            raise translate(exc, self.url.where) from exc
        return call.stored(jobs, prepared, answer)[0]

    def _insert_flow(self, raw: PgConnection, jobs: Sequence[Job]) -> list[Job]:
        """A flow's jobs in the caller's transaction: the store's own steps
        (``flows.store_flow``: its "@k" references translated), under the schema's lock and
        with ``search_path`` set to the queue's schema for them, then set back as it was
        (both local to the transaction), with the ``pg_notify``."""
        rows = external.encode_jobs(jobs)  # encoded first: a bad value sends nothing
        try:
            found = raw.execute(_IDENTITY, (self._meta,)).fetchone()
            assert found is not None  # one row, always
            self._check_identity(found)
            conn = Conn(raw)
            stored = external.insert(self.steps, conn, self._lock(conn), jobs, rows)
            raw.execute(
                "SELECT set_config('search_path', %s, true), pg_notify(%s, 'w')",
                (found[0], self.dialect.channel),
            )
        except psycopg.Error as exc:
            raise translate(exc, self.url.where) from exc
        return stored

    def _check_identity(self, row: Any) -> None:
        """Refuses a connection (``_IDENTITY``'s row) to another database than the queue's,
        or one without the queue's schema."""
        _, database, table = row
        if (database, table) != self.identity():
            schema = self.dialect.schema
            where = "" if table is not None else f" without jobqueue's schema {schema!r}"
            raise InvalidArgumentError(
                f"the connection is to database {database!r}{where}, not the queue's "
                f"({self.url.where}): pass a connection to the queue's database"
            )

    def _lock(self, conn: Connection) -> float:
        (_, server_now) = conn.execute(
            "SELECT set_config('search_path', %s, true), "
            f"extract(epoch FROM clock_timestamp())::float8 FROM {self.dialect.lock}",
            (self.dialect.quoted,),
        ).fetchone()
        return float(server_now) if self.server_clock else self.clock()

    @property
    def _meta(self) -> str:
        return f"{self.dialect.quoted}.jobqueue_meta"

    def identity(self) -> tuple[str, int]:
        """The queue's database name and its meta table's oid, as its server says (asked
        once): a connection to a same-named database on another server, even one holding a
        queue in a same-named schema, shows another oid."""
        if self._identity is None:
            try:
                with self.pool.connection() as conn:
                    row = conn.execute(_IDENTITY, (self._meta,)).fetchone()
            except psycopg.Error as exc:
                raise translate(exc, self.url.where) from exc
            assert row is not None
            self._identity = (str(row[1]), int(row[2]))
        return self._identity

    # -- completion ------------------------------------------------------------------------

    @contextlib.contextmanager
    def completing(self, changes: Sequence[Change], check: Check) -> Iterator[PgConnection]:
        results = external.encode_results(changes)
        try:
            raw = self.pool.getconn()
        except psycopg.Error as exc:
            raise translate(exc, self.url.where) from exc
        try:
            # The handler's statements raise their own errors; a failed COMMIT raises
            # psycopg's, as the handler's own commit would.
            with raw.transaction():
                yield raw
                conn = Conn(raw)
                try:
                    now = self._lock(conn)
                    answers, txn = external.apply(self.steps, conn, now, changes, results)
                except psycopg.Error as exc:
                    raise translate(exc, self.url.where) from exc
                check(answers)  # raises (a lost lease): the transaction rolls back
        finally:
            self.pool.putconn(raw)
        if txn.work_added or txn.changed:
            self.signal.notify(work=txn.work_added)


def _check_open(autocommit: bool, status: TransactionStatus) -> None:
    if status == TransactionStatus.INERROR:
        raise InvalidArgumentError(
            "the connection's transaction has failed already: roll it back; nothing was stored"
        )
    if autocommit and status == TransactionStatus.IDLE:
        raise InvalidArgumentError(
            "the connection is in autocommit mode and not in a transaction: the job would "
            "commit on its own. Submit inside `with conn.transaction():`"
        )


def _not_psycopg(connection: object) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"the PostgreSQL backend submits with a psycopg 3 connection or a SQLAlchemy "
        f"Connection/Session on psycopg, not a {type(connection).__name__}"
    )
