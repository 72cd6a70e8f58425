"""What the shared store asks of a SQL dialect and of its connections.

A dialect (``jobqueue.backends.sqlite.dialect``, later PostgreSQL's) gives its statements
(``Statements`` with its overrides), its schema side for ``migrate``, and the exception its
driver raises for a refused constraint. Its connections (``Link``) open transactions, read in
snapshots, translate driver errors into ``BackendError``s and tell waiters about commits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from jobqueue.backends.sql.statements import Statements
from jobqueue.changes import Change, ClaimAsk, Conflict
from jobqueue.errors import BackendError
from jobqueue.values import Claim

T = TypeVar("T")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A DB-API connection, as far as the store uses one."""

    def execute(self, sql: str, parameters: Sequence[object] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[object]], /) -> Cursor: ...


def pipeline(conn: Connection) -> AbstractContextManager[object]:
    """Statements sent without waiting for each one's answer, where the driver can (psycopg's
    ``pipeline``: a statement whose result is read is flushed then, the rest at the end);
    elsewhere, as they come."""
    start: Callable[[], AbstractContextManager[object]] | None = getattr(conn, "pipeline", None)
    return nullcontext() if start is None else start()


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


@dataclass(eq=False)
class Signal:
    """What every backend instance on one database in this process shares (a link makes one
    per database: SQLite per file).

    ``write_lock`` serializes this process's write transactions so its threads queue on a
    Python lock instead of sleeping in the database's own lock wait (SQLite's busy handler);
    other processes still meet the database's lock. ``changed`` wakes same-process waiters at
    once: ``work`` counts new or requeued work, ``version`` any change a ``wait_for_finish``
    may care about.
    """

    write_lock: threading.Lock | threading.RLock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(default_factory=threading.Condition)
    work: int = 0
    version: int = 0

    def notify(self, *, work: bool) -> None:
        with self.changed:
            if work:
                self.work += 1
            self.version += 1
            self.changed.notify_all()


class Link(Protocol):
    """A dialect's connections, as the store uses them.

    Writes: ``write_lock`` (held around a write transaction; serializes this process's
    writers), then ``begin`` (a connection in a transaction that holds the database's write
    lock up front, unless told it need not), the store's statements, ``COMMIT`` or
    ``rollback``. Reads: ``reading``, a
    snapshot that never writes. Waits: ``signal`` for this process's commits and
    ``data_version`` for anyone's (``polls``: whether other processes' commits must be
    polled for at all)."""

    @property
    def write_lock(self) -> AbstractContextManager[object]: ...

    @property
    def signal(self) -> Signal: ...

    @property
    def polls(self) -> bool: ...

    def begin(self, *, exclusive: bool = True, ids: int = 0) -> Connection:
        """A connection in a write transaction. ``exclusive``: holding the database's write
        lock up front (a dialect whose writers run side by side may leave it out when the
        store says the body needs it not); ``ids``: job ids the body will take (a hint)."""

    def rollback(self, conn: Connection) -> None: ...

    def translate(self, exc: Exception) -> BackendError: ...

    def reading(self, wrap: Callable[[Connection], T]) -> AbstractContextManager[T]:
        """A snapshot, its connection given to the caller as ``wrap`` makes it (one
        context manager per read, not two)."""

    def data_version(self) -> int: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class Stepped:
    """What one ``OneStepWrite`` call did: an answer per change (``None``: written), the jobs
    claimed in run order, the claimed records that do not decode (id, why), how many due
    delayed jobs it promoted, and what its claim tells the claim cursor."""

    conflicts: list[Conflict | None]
    claims: list[Claim] = field(default_factory=list)
    corrupt: list[tuple[int, str]] = field(default_factory=list)
    promoted: int = 0
    claim_seconds: float | None = None
    """How long its claim (a full scan from each name's first waiting job) took, when it
    claimed: what the store's claim cursor judges dead index entries by."""
    positions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """Per name, the ``(priority, seq)`` each job claimed had while it waited."""


class OneStepWrite(Protocol):
    """A dialect's guarded batch write and claim as one call to the server (PostgreSQL:
    ``jobqueue_apply_held``), where it has one: the store's ``apply`` and ``claim_many`` try
    it first."""

    def apply(
        self, changes: Sequence[Change], results: Sequence[str | None], then: ClaimAsk | None
    ) -> Stepped | None:
        """Write ``changes`` (``results``: their results' JSON) and claim for ``then``, or
        ``None``: a call it does not cover, nothing done (the store takes the long way)."""
