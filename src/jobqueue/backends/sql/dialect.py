"""What the shared store asks of a SQL dialect and of its connections.

A dialect (``jobqueue.backends.sqlite.dialect``, later PostgreSQL's) gives its statements
(``Statements`` with its overrides), its schema side for ``migrate``, and the exception its
driver raises for a refused constraint. Its connections (``Link``) open transactions, read in
snapshots, translate driver errors into ``BackendError``s and tell waiters about commits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

from jobqueue.backends.sql.statements import Statements
from jobqueue.errors import BackendError

T = TypeVar("T")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A DB-API connection, as far as the store uses one."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor: ...


class Reader:
    """A connection inside a transaction, with its dialect's statements and the backend's
    logger: what every step of the store is given (``Txn`` adds the write side)."""

    __slots__ = ("conn", "log", "sql")

    def __init__(self, conn: Connection, sql: Statements, log: logging.Logger) -> None:
        self.conn = conn
        self.sql = sql
        self.log = log


class Dialect(Protocol):
    @property
    def name(self) -> str:
        """The URL scheme; the backend logs as ``jobqueue.backends.<name>``."""

    @property
    def sql(self) -> Statements: ...

    @property
    def integrity_error(self) -> type[Exception]:
        """A refused constraint; the statement alone is undone."""

    @property
    def error(self) -> type[Exception]:
        """Everything the driver raises."""


class Signal(Protocol):
    """The in-process wake-up shared by the backends on one database."""

    changed: threading.Condition
    work: int
    version: int

    def notify(self, *, work: bool) -> None: ...


class Link(Protocol):
    """A dialect's connections, as the store uses them.

    Writes: ``write_lock`` (held around a write transaction; serializes this process's
    writers), then ``begin`` (a connection in a transaction that holds the database's write
    lock up front), the store's statements, ``COMMIT`` or ``rollback``. Reads: ``reading``, a
    snapshot that never writes. Waits: ``signal`` for this process's commits and
    ``data_version`` for anyone's (``polls``: whether other processes' commits must be
    polled for at all)."""

    @property
    def write_lock(self) -> AbstractContextManager[Any]: ...

    @property
    def signal(self) -> Signal: ...

    @property
    def polls(self) -> bool: ...

    def begin(self) -> Connection: ...

    def rollback(self, conn: Connection) -> None: ...

    def translate(self, exc: Exception) -> BackendError: ...

    def reading(self, wrap: Callable[[Connection], T]) -> AbstractContextManager[T]:
        """A snapshot, its connection given to the caller as ``wrap`` makes it (one
        context manager per read, not two)."""

    def data_version(self) -> int: ...

    def close(self) -> None: ...
