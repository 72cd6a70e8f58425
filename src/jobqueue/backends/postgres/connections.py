"""PostgreSQL connections as the SQL family's store uses them (``sql.dialect.Link``), on a
``psycopg_pool`` pool; the database's clock; opening a schema (create or migrate it).

Writes: this process's writers of one schema queue on the schema's ``Signal.write_lock``, so
one pooled connection, held, is all they need. ``begin`` opens its transaction, sets the
schema, takes the schema's advisory lock when the store asks for it, reads the server's clock,
takes a block of the order counter and reserves job ids, in one round trip.
Reads: a pooled connection in a ``REPEATABLE READ READ ONLY`` snapshot, never the lock.
Every connection is in autocommit mode, so a transaction is exactly what the store opens and
commits; ``SET LOCAL`` keeps the schema choice inside it, which PgBouncer's transaction mode
keeps too.

Time (``ServerClock``): the store reads "now" from ``options.clock``. When the user gave no
clock (``time.time``), this backend's is the server's: every write transaction's "now" is
``clock_timestamp()`` read at its start, so every lease is set and
checked against one clock, PostgreSQL's, whichever host holds it -- hosts with skewed clocks
still fence each other. Reads outside a transaction (``expired``, live dispatchers) use the
host's clock corrected by the offset measured at the last transaction: they only select
candidates, which the guarded write then checks against the server's own clock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from jobqueue.backends.postgres import wakeups
from jobqueue.backends.postgres.dialect import PostgresDialect, translate
from jobqueue.backends.postgres.url import PostgresURL
from jobqueue.backends.sql import migrate
from jobqueue.backends.sql.dialect import Connection
from jobqueue.errors import BackendError

logger = logging.getLogger("jobqueue.backends.postgres")

T = TypeVar("T")
PgConnection = psycopg.Connection[tuple[Any, ...]]

POOL_TIMEOUT = 10.0
"""Seconds a call waits for a pooled connection before ``BackendUnavailableError``."""


class ServerClock:
    """The time "now" on the PostgreSQL server's clock (see the module's docstring)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._local = threading.local()

    def observe(self, server_now: float) -> None:
        """The server's time read at the start of this thread's transaction: the next call
        in this thread returns it exactly."""
        self._offset = server_now - time.time()
        self._local.fresh = server_now

    def follow(self, server_now: float) -> None:
        """The server's time read by a call that is its own transaction (a one-step write, a
        submit): the offset only (the next call here is not that transaction's)."""
        self._offset = server_now - time.time()

    def __call__(self) -> float:
        fresh: float | None = getattr(self._local, "fresh", None)
        if fresh is not None:
            self._local.fresh = None
            return fresh
        return time.time() + self._offset


class Conn:
    """A psycopg connection as the store's ``Connection``: ``execute`` as psycopg's (a new
    cursor each time), and ``executemany`` (psycopg has it on cursors: pipelined)."""

    __slots__ = ("raw", "reserved_ids", "seq_block")

    def __init__(self, raw: PgConnection) -> None:
        self.raw = raw
        self.seq_block: int | None = None
        """The first of this transaction's block of the order counter, taken at ``begin``."""
        self.reserved_ids: tuple[int, int] | None = None
        """``(last, count)``: the job ids ``begin`` reserved for this transaction."""

    def execute(
        self, sql: str, parameters: Sequence[object] | None = None, /
    ) -> psycopg.Cursor[tuple[Any, ...]]:
        return self.raw.execute(sql, parameters)

    def executemany(
        self, sql: str, parameters: Iterable[Sequence[object]], /
    ) -> psycopg.Cursor[tuple[Any, ...]]:
        cursor = self.raw.cursor()
        cursor.executemany(sql, parameters)
        return cursor

    def copy_in(
        self, statement: str, types: Sequence[str], rows: Iterable[Sequence[object]]
    ) -> None:
        """``COPY ... FROM STDIN (FORMAT BINARY)`` of ``rows`` (values of ``types``)."""
        with self.raw.cursor().copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)

    def pipeline(self) -> contextlib.AbstractContextManager[object]:
        """psycopg's pipeline mode (``sql.dialect.pipeline``)."""
        return self.raw.pipeline()

    def fetch_each(self, sql: str, parameters: Sequence[Sequence[object]]) -> list[Any]:
        """The first row of ``sql`` for each of ``parameters``, in order: one pipelined
        ``executemany`` (``Txn.fetch_each``)."""
        cursor = self.raw.cursor()
        cursor.executemany(sql, parameters, returning=True)
        rows = []
        while True:
            rows.append(cursor.fetchone())
            if not cursor.nextset():
                return rows


class PostgresLink:
    """One backend instance's connections (``sql.dialect.Link``)."""

    def __init__(
        self, url: PostgresURL, dialect: PostgresDialect, clock: ServerClock | None
    ) -> None:
        self.url = url
        self.where = url.where
        self._dialect = dialect
        self._clock = clock
        self._writer: Conn | None = None
        open_schema(url, dialect, clock)  # fails fast, with libpq's own words
        self.pool = ConnectionPool(
            url.conninfo,
            min_size=1,
            max_size=url.pool_size,
            kwargs={"autocommit": True},
            timeout=POOL_TIMEOUT,
            num_workers=1,  # opens connections in the background: one thread is plenty
            name=f"jobqueue-{url.schema}",
            open=False,
        )
        self.pool.open()
        self._listen = url.listen
        self.signal = wakeups.attach(url.conninfo, url.database, dialect.channel, listen=url.listen)
        self.write_lock = self.signal.write_lock
        self._closed = False
        self._pid = os.getpid()

    @property
    def polls(self) -> bool:
        """Whether other processes' commits must be polled for: without LISTEN, or while
        the LISTEN connection is away."""
        hub = self.signal.wakeups
        return not (self._listen and hub is not None and hub.listening(self._dialect.channel))

    def begin(self, *, exclusive: bool = True, ids: int = 0) -> Conn:
        """The write connection in a transaction (the caller holds ``write_lock``), holding
        the schema's lock when ``exclusive``, its block of the order counter taken and
        ``ids`` job ids reserved (``PostgresDialect.begin_write``). Connections found dead
        (a restarted server) are replaced: nothing was done on them yet."""
        self._same_process()
        for attempt in range(self.url.pool_size + 1):
            conn = self._writer
            try:
                if conn is None or conn.raw.closed or conn.raw.broken:
                    self._drop_writer()
                    conn = self._writer = Conn(self.pool.getconn())
                cursor = conn.execute(self._dialect.begin_write(exclusive=exclusive, ids=ids))
                while cursor.nextset():  # the last result: the begin's own
                    pass
                server_now, block, last_id = cursor.fetchone() or (time.time(), None, None)
                conn.seq_block = block
                conn.reserved_ids = None if last_id is None else (int(last_id), ids)
            except psycopg.Error as exc:
                self._drop_writer()
                if self._dead(exc, attempt):
                    continue
                raise translate(exc, self.where) from exc
            if self._clock is not None:
                self._clock.observe(float(server_now))
            return conn
        raise AssertionError("unreachable: the last attempt raises")

    def run_alone(
        self, sql: str, parameters: Sequence[object], *, repeatable: bool
    ) -> list[tuple[Any, ...]]:
        """``sql`` as a transaction of its own (the connection is in autocommit: one round
        trip) on the write connection, under ``write_lock``; its rows. A connection the server
        had ended (an error of class 57: shut down, terminated; its transaction, if it had
        begun, rolled back) is replaced and the call sent again. Any other lost connection may
        have committed: a ``repeatable`` call is sent again anyway (a one-step write: what it
        wrote was fenced by lease tokens, so its repeat is answered as a repeat), another (a
        submit) raises, saying so."""
        with self.write_lock:
            self._same_process()
            for attempt in range(self.url.pool_size + 1):
                try:
                    conn = self._writer
                    if conn is None or conn.raw.closed or conn.raw.broken:
                        self._drop_writer()
                        conn = self._writer = Conn(self.pool.getconn())
                    return conn.execute(sql, parameters).fetchall()
                except psycopg.Error as exc:
                    broken = self._writer is None or self._writer.raw.broken
                    if broken or repeatable:
                        self._drop_writer()
                    ended = (getattr(exc, "sqlstate", None) or "").startswith("57")
                    resend = repeatable or (broken and ended)
                    if resend and self._dead(exc, attempt):
                        continue
                    raise translate(exc, self.where) from exc
        raise AssertionError("unreachable: the last attempt raises")

    def _same_process(self) -> None:
        if os.getpid() != self._pid:
            raise BackendError(
                f"this PostgreSQL backend ({self.where}) was opened in process {self._pid}, "
                "before a fork: open the JobQueue in each process (a connection cannot be "
                "shared across a fork)"
            )

    def _dead(self, exc: psycopg.Error, attempt: int) -> bool:
        """Whether ``exc``, raised by a transaction's first statement, says its pooled
        connection had died, and another one may be tried."""
        if attempt >= self.url.pool_size or not isinstance(exc, psycopg.OperationalError):
            return False
        if isinstance(exc, PoolTimeout):
            return False
        logger.debug("%s: replacing a dead connection: %s", self.where, exc)
        return True

    def rollback(self, conn: Connection) -> None:
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")
        writer = self._writer
        if writer is not None and (writer.raw.closed or writer.raw.broken):
            self._drop_writer()

    def translate(self, exc: Exception) -> BackendError:
        return translate(exc, self.where)

    @contextlib.contextmanager
    def reading(self, wrap: Callable[[Conn], T]) -> Iterator[T]:
        """A read-only snapshot on a pooled connection, given as ``wrap`` makes it."""
        conn = self._snapshot()
        try:
            yield wrap(Conn(conn))
        except psycopg.Error as exc:
            raise translate(exc, self.where) from exc
        finally:
            if not conn.closed and not conn.broken:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")  # read only: nothing to commit
            self.pool.putconn(conn)

    def _snapshot(self) -> PgConnection:
        """A pooled connection in a read-only snapshot; dead ones are replaced."""
        self._same_process()
        for attempt in range(self.url.pool_size + 1):
            try:
                conn = self.pool.getconn()
            except psycopg.Error as exc:
                raise translate(exc, self.where) from exc
            try:
                conn.execute(self._dialect.begin_read)
                return conn
            except psycopg.Error as exc:
                self.pool.putconn(conn)  # a broken one is discarded by the pool
                if self._dead(exc, attempt):
                    continue
                raise translate(exc, self.where) from exc
        raise AssertionError("unreachable: the last attempt raises")

    def data_version(self) -> int:
        """Changes whenever any transaction of the server starts writing or ends (its
        snapshot's bounds and in-progress list): what polling waiters compare."""
        try:
            with self.pool.connection() as conn:
                row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        except psycopg.Error as exc:
            raise translate(exc, self.where) from exc
        return zlib.crc32(str(row[0] if row else "").encode())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._pid:
            return  # the parent's: closing them here would end the parent's sessions
        wakeups.detach(self.url.conninfo, self._dialect.channel, listen=self._listen)
        self._drop_writer()
        self.pool.close()

    def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(psycopg.Error):
                self.pool.putconn(writer.raw)  # a broken one is discarded by the pool


def open_schema(url: PostgresURL, dialect: PostgresDialect, clock: ServerClock | None) -> None:
    """Create the schema's tables on first use, migrate an older one, or check that it is
    current (``sql.migrate``); a newer one is refused untouched (``SchemaVersionError``).
    On a connection of its own, closed after."""
    try:
        conn: PgConnection = psycopg.Connection.connect(url.conninfo, autocommit=True)
    except psycopg.Error as exc:
        raise translate(exc, url.where) from exc
    try:
        with conn:
            if clock is not None:
                row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
                clock.observe(float((row.fetchone() or (time.time(),))[0]))
                clock()  # not a transaction's: forget the exact value, keep the offset
            wrapped = Conn(conn)
            found = migrate.state(dialect, wrapped, url.where)
            migrate.apply(dialect, wrapped, url.where, found, in_memory=False, log=logger)
    except psycopg.Error as exc:
        raise translate(exc, url.where) from exc
