"""SQLite connections: one per thread, WAL, the read-only view on a full disk, opening a file
(refuse what is not ours, create or migrate its schema) and the in-process wake-up signal
shared per database file."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.request import pathname2url

from jobqueue.backends.sql import migrate
from jobqueue.backends.sql.dialect import Connection, Signal
from jobqueue.backends.sqlite.dialect import SQLITE, is_io_error, translate
from jobqueue.errors import BackendError, SchemaVersionError

logger = logging.getLogger("jobqueue.backends.sqlite")

T = TypeVar("T")

_FIRST_READ = "SELECT value FROM jobqueue_meta WHERE key = 'schema_version'"

SQLITE_HEADER = b"SQLite format 3\x00"


def check_header(path: str) -> None:
    """Refuse, before SQLite touches it, a non-empty file that is not an SQLite database:
    nothing is written to a file until it is known to be empty or ours, and foreign databases
    are only read (``PRAGMA``/``sqlite_master``), so a wrong path never damages someone
    else's data."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SchemaVersionError(f"cannot read {path!r}: {exc}") from exc
    if header and header != SQLITE_HEADER:
        raise SchemaVersionError(
            f"{path!r} is not an SQLite database (its first bytes are {header[:16]!r}); "
            "refusing to touch it. Point the sqlite:// URL at a new file or a jobqueue database"
        )


def prepare(
    connect: Callable[[], sqlite3.Connection],
    path: str,
    *,
    in_memory: bool,
    read_only: Callable[[], sqlite3.Connection | None] | None = None,
) -> None:
    """Create the schema in an empty database, migrate an older one of ours, or check that it
    is current (``migrate``), on the connection ``connect`` gives. Raises
    ``SchemaVersionError`` without changing the file for anything else, and when a migration
    fails (it is rolled back). ``read_only`` gives a connection that reads without writing,
    for a file the other cannot even read because its disk is full (``dialect``): a current
    file needs no write."""
    try:
        conn = connect()
        found = migrate.state(SQLITE, conn, path)
    except sqlite3.OperationalError as exc:
        viewer = None if read_only is None or not is_io_error(exc) else read_only()
        if viewer is None:
            raise
        logger.debug("%s: checking the schema through a read-only connection: %s", path, exc)
        try:
            if migrate.state(SQLITE, viewer, path) != "ours":
                raise  # creating or migrating it needs the writes that just failed
        finally:
            viewer.close()
        return
    migrate.apply(SQLITE, conn, path, found, in_memory=in_memory, log=logger)


def resolve_path(url_path: str) -> str:
    """``/rel.db`` → ``rel.db``; ``//abs.db`` → ``/abs.db``; ``/:memory:`` → ``:memory:``."""
    path = url_path[1:] if url_path.startswith("/") else url_path
    return path if path == ":memory:" else os.path.abspath(path)


_signals: dict[str, Signal] = {}
_signals_lock = threading.Lock()


def signal_for(path: str) -> Signal:
    """The one ``Signal`` of ``path`` in this process (a fresh one for ``:memory:``)."""
    if path == ":memory:":
        return Signal(write_lock=threading.RLock())
    key = os.path.realpath(path)
    with _signals_lock:
        signal = _signals.get(key)
        if signal is None:
            signal = _signals[key] = Signal()
        return signal


class ConnectionPool:
    """One connection per thread (``sqlite3`` connections are not for sharing), or a single
    shared connection for ``:memory:``, whose data lives in that one connection."""

    def __init__(self, path: str, *, busy_timeout: float, synchronous: str) -> None:
        self.path = path
        self.shared = path == ":memory:"
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._open: dict[int, tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = {}
        self._single: sqlite3.Connection | None = None
        self.closed = False

    def get(self) -> sqlite3.Connection:
        if self.closed:
            raise sqlite3.ProgrammingError("the SQLite backend was closed")
        if self.shared:
            if self._single is None:
                self._single = self._connect()
            return self._single
        if os.getpid() != self._pid:
            # A forked child must not use its parent's connections (SQLite forbids it);
            # forget them without closing, which would touch the parent's locks.
            self._pid, self._open, self._local = os.getpid(), {}, threading.local()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._close_dead_threads()
                self._open[threading.get_ident()] = (weakref.ref(threading.current_thread()), conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,  # autocommit; transitions use explicit BEGIN IMMEDIATE
            check_same_thread=False,  # only close() crosses threads (or the :memory: lock)
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")  # it reads the schema
        except sqlite3.Error:
            conn.close()  # e.g. a full disk (see ``dialect``): the next call tries afresh
            raise
        return conn

    def begin_read(self) -> tuple[sqlite3.Connection, sqlite3.Connection | None]:
        """A connection in a read transaction whose snapshot is taken (its first read done),
        so that a read that cannot start fails here, where a read-only view can take over: on
        a full disk a process that opens the file cannot make its WAL index (``dialect``).
        The second item is that view, for the caller to close after the read, or ``None``."""
        conn: sqlite3.Connection | None = None
        try:
            conn = self.get()  # a new one reads the schema: it may fail as well
            conn.execute("BEGIN")
            conn.execute(_FIRST_READ).fetchone()
            return conn, None
        except sqlite3.OperationalError as exc:
            if conn is not None and conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            viewer = self.open_read_only() if is_io_error(exc) else None
            if viewer is None:
                raise
            logger.debug("%s: reading without the WAL index: %s", self.path, exc)
        viewer.execute("BEGIN")
        return viewer, viewer

    def open_read_only(self) -> sqlite3.Connection | None:
        """A new connection that reads the file without its WAL index, for when ordinary ones
        cannot make the index (a full disk, see ``dialect``); the caller closes it. It takes
        no lock and writes nothing (``immutable``), which is sound while the WAL is empty: the
        file then holds every commit, and a process able to write to it would have made the
        index. ``None`` when the WAL holds commits, which only the index can read.

        Not ``readonly_shm``: SQLite shares one index per file within a process, and one
        opened read-only would stay read-only for the ordinary connections too."""
        if self.shared:
            return None
        try:
            if os.path.getsize(self.path + "-wal") > 0:
                return None
        except FileNotFoundError:
            pass
        return sqlite3.connect(
            f"file:{pathname2url(self.path)}?mode=ro&immutable=1",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )

    def _close_dead_threads(self) -> None:
        """Dispatcher threads come and go (one set per ``run``); close what the dead left."""
        for ident, (thread_ref, conn) in list(self._open.items()):
            thread = thread_ref()
            gone = thread is None or not thread.is_alive() or ident == threading.get_ident()
            if gone and conn is not getattr(self._local, "conn", None):
                conn.close()
                del self._open[ident]

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self._single is not None:
                self._single.close()
            if os.getpid() == self._pid:
                for _, conn in self._open.values():
                    conn.close()
            self._open.clear()
            self._local = threading.local()


class SQLiteLink:
    """A file's connections as the store uses them (``sql.dialect.Link``): writes are
    ``BEGIN IMMEDIATE`` transactions queued on this process's lock for the file, reads WAL
    snapshots (a read-only view on a full disk), other processes' commits seen in
    ``PRAGMA data_version``."""

    def __init__(self, path: str, *, busy_timeout: float, synchronous: str) -> None:
        self.path = path
        self.pool = ConnectionPool(path, busy_timeout=busy_timeout, synchronous=synchronous)
        self.signal = signal_for(path)
        self.write_lock = self.signal.write_lock
        self.polls = not self.pool.shared  # ``:memory:`` has no other process to poll for

    def begin(self, *, exclusive: bool = True, ids: int = 0) -> sqlite3.Connection:
        """``BEGIN IMMEDIATE``: SQLite's writers always take turns (both hints unused)."""
        try:
            conn = self.pool.get()
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        return conn

    def rollback(self, conn: Connection) -> None:
        with contextlib.suppress(sqlite3.Error):  # a failed statement may have rolled it back
            conn.execute("ROLLBACK")

    def translate(self, exc: Exception) -> BackendError:
        assert isinstance(exc, sqlite3.Error)
        return translate(exc, self.path)

    @contextlib.contextmanager
    def reading(self, wrap: Callable[[sqlite3.Connection], T]) -> Iterator[T]:
        """A read-only snapshot (WAL readers never block writers, nor wait for them), its
        connection given as ``wrap`` makes it."""
        lock = self.write_lock if self.pool.shared else None
        if lock is not None:
            lock.acquire()
        viewer: sqlite3.Connection | None = None
        try:
            conn, viewer = self.pool.begin_read()
            try:
                yield wrap(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        finally:
            if viewer is not None:
                viewer.close()
            if lock is not None:
                lock.release()

    def data_version(self) -> int:
        with self.reading(_same) as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        self.pool.close()


def _same(conn: sqlite3.Connection) -> sqlite3.Connection:
    return conn
