"""PostgreSQL's side of sharing a transaction (``jobqueue.transactions``).

Joining a transaction (the caller's, or the handler's in ``completing``): one round trip
checks the connection (the queue's database, the queue's schema in it), a second takes the
schema's advisory transaction lock -- the lock every write transaction of the schema takes, so
the job ids and order numbers stay consistent -- sets ``search_path`` to the schema for the
store's statements (``set_config(..., true)``: local to the transaction) and reads the
server's clock. The caller's ``search_path`` is put back after our statements.

The lock is held until the transaction ends: from a transactional submit to its commit, the
schema's other writers (claims, completions, other submits) wait. Submit last, just before
the commit, and keep such transactions short (docs/postgresql.md).

Wake-ups: a transactional submit sends ``pg_notify`` inside the caller's transaction, which
PostgreSQL delivers only if it commits (nothing on a rollback), once per submit call. A
transactional completion commits the transaction itself and then wakes as every write does
(``Signal.notify``: the wake-up sender, outside the transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from jobqueue.backends.postgres.connections import Conn, PgConnection
from jobqueue.backends.postgres.dialect import PostgresDialect, translate
from jobqueue.backends.postgres.url import PostgresURL
from jobqueue.backends.sql import caller, external
from jobqueue.backends.sql.dialect import Connection, Signal
from jobqueue.changes import Change
from jobqueue.errors import InvalidArgumentError
from jobqueue.job import Job
from jobqueue.transactions import Check

AsyncPgConnection = psycopg.AsyncConnection[tuple[Any, ...]]

_IDENTITY = (  # one round trip: the caller's search_path, and which database and queue
    "SELECT current_setting('search_path'), current_database(), to_regclass(%s)::oid::bigint"
)


class Rows:
    """A finished statement's rows, as the store's ``Cursor`` (for the asyncio bridge)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class Bridge:
    """An ``AsyncConnection`` as the store's sync ``Connection``, for the store's steps run in
    a worker thread: each statement runs on the connection's own event loop (which only
    awaits meanwhile), its rows fetched there."""

    def __init__(self, conn: AsyncPgConnection, loop: asyncio.AbstractEventLoop) -> None:
        self._conn = conn
        self._loop = loop

    def execute(self, sql: str, parameters: Sequence[object] | None = None, /) -> Rows:
        return asyncio.run_coroutine_threadsafe(self._run(sql, parameters), self._loop).result()

    def executemany(self, sql: str, parameters: Iterable[Sequence[object]], /) -> Rows:
        params = list(parameters)
        return asyncio.run_coroutine_threadsafe(self._many(sql, params), self._loop).result()

    async def _run(self, sql: str, parameters: Sequence[object] | None) -> Rows:
        cursor = await self._conn.execute(sql, parameters)
        rows = await cursor.fetchall() if cursor.description is not None else []
        return Rows(rows, cursor.rowcount)

    async def _many(self, sql: str, parameters: list[Sequence[object]]) -> Rows:
        cursor = self._conn.cursor()
        await cursor.executemany(sql, parameters)
        return Rows([], cursor.rowcount)


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
        rows = external.encode_jobs(jobs)
        return self._insert(Conn(raw), jobs, rows)

    async def insert_in_async(self, connection: object, jobs: Sequence[Job]) -> list[Job]:
        raw = await caller.driver_connection_async(connection)
        if isinstance(raw, psycopg.Connection):
            return await asyncio.to_thread(self.insert_in, raw, jobs)
        if not isinstance(raw, psycopg.AsyncConnection):
            raise _not_psycopg(connection)
        _check_open(raw.autocommit, raw.info.transaction_status)
        rows = external.encode_jobs(jobs)
        bridge = Bridge(raw, asyncio.get_running_loop())
        return await asyncio.to_thread(self._insert, bridge, jobs, rows)

    def _insert(self, conn: Connection, jobs: Sequence[Job], rows: list[Any]) -> list[Job]:
        try:
            path, now = self._join(conn)
            stored = external.insert(self.steps, conn, now, jobs, rows)
            # Delivered by PostgreSQL if, and when, the caller's transaction commits.
            conn.execute(
                "SELECT set_config('search_path', %s, true), pg_notify(%s, 'w')",
                (path, self.dialect.channel),
            )
        except psycopg.Error as exc:
            raise translate(exc, self.url.where) from exc
        return stored

    def _join(self, conn: Connection) -> tuple[str, float]:
        """Check ``conn`` and take the schema's lock in its transaction; returns the
        caller's ``search_path`` (to put back) and "now"."""
        path, database, table = conn.execute(_IDENTITY, (self._meta,)).fetchone()
        if (database, table) != self.identity():
            schema = self.dialect.schema
            where = "" if table is not None else f" without jobqueue's schema {schema!r}"
            raise InvalidArgumentError(
                f"the connection is to database {database!r}{where}, not the queue's "
                f"({self.url.where}): pass a connection to the queue's database"
            )
        return path, self._lock(conn)

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
