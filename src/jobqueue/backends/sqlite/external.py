"""SQLite's side of sharing a transaction (``jobqueue.transactions``).

Transactional submit: the application's own ``sqlite3.Connection`` on the queue's file (or
SQLAlchemy's on it). Joining its transaction takes the file's write lock at once (a no-op
write), so the job ids and order numbers read next cannot change before the commit: the lock
is held until the caller commits or rolls back, as SQLite holds it for any writer, and the
queue's other writers wait for it (``busy_timeout``). Keep such transactions short. A
transaction whose snapshot is older than the last commit cannot take the lock (SQLite says
"busy"): nothing was written, roll back and retry. Other processes (and this one's waiting
dispatchers) see the jobs once committed, through ``PRAGMA data_version``; a rollback
changes nothing they look at.

Transactional completion: a new connection to the file in a ``BEGIN IMMEDIATE`` transaction
for the handler's block (the write lock is taken at the start, so the completion at the end
can never fail for a newer snapshot), closed after.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from jobqueue.backends.sql import caller, external
from jobqueue.backends.sql.dialect import Signal
from jobqueue.backends.sqlite.dialect import translate
from jobqueue.changes import Change
from jobqueue.errors import InvalidArgumentError
from jobqueue.job import Job
from jobqueue.transactions import Check

TAKE_WRITE_LOCK = "UPDATE jobqueue_meta SET value = value WHERE key = 'seq'"
"""A write that changes nothing: SQLite's write lock, taken before anything is read."""

_LEGACY = -1  # sqlite3.LEGACY_TRANSACTION_CONTROL (Python 3.12+): isolation_level decides


@dataclass
class SQLiteTransactions:
    """A SQLite backend's transactional submit and completion."""

    path: str
    steps: external.Steps
    signal: Signal
    clock: Callable[[], float]
    busy_timeout: float
    synchronous: str

    # -- submit ----------------------------------------------------------------------------

    def insert_in(self, connection: object, jobs: Sequence[Job]) -> list[Job]:
        raw = caller.driver_connection(connection)
        return self._insert(raw, connection, jobs)

    async def insert_in_async(self, connection: object, jobs: Sequence[Job]) -> list[Job]:
        raw = await caller.driver_connection_async(connection)
        return self._insert(raw, connection, jobs)  # sqlite3 is synchronous: a short write

    def _insert(self, raw: object, connection: object, jobs: Sequence[Job]) -> list[Job]:
        if not isinstance(raw, sqlite3.Connection):
            raise InvalidArgumentError(
                "the SQLite backend submits with an sqlite3.Connection on the queue's file "
                f"(or a SQLAlchemy Connection/Session on one), not a {type(connection).__name__}"
            )
        self._check_file(raw)
        rows = external.encode_jobs(jobs)
        try:
            self._begin(raw)
            raw.execute(TAKE_WRITE_LOCK)
            return external.insert(self.steps, raw, self.clock(), jobs, rows)
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc

    def _check_file(self, raw: sqlite3.Connection) -> None:
        if self.path == ":memory:":
            raise InvalidArgumentError(
                "a :memory: queue lives in its own connection: no other connection can share "
                "its transactions; use a file (sqlite:///jobs.db)"
            )
        try:
            files = {name: file for _, name, file in raw.execute("PRAGMA database_list")}
        except sqlite3.Error as exc:
            raise InvalidArgumentError(f"cannot use that sqlite3 connection: {exc}") from exc
        main = files.get("main") or ""
        if not main or not os.path.exists(main) or not os.path.samefile(main, self.path):
            raise InvalidArgumentError(
                f"the connection is to {main or 'an in-memory database'!r}, the queue's file "
                f"is {self.path!r}: pass a connection to the queue's file"
            )

    @staticmethod
    def _begin(raw: sqlite3.Connection) -> None:
        """Make sure the caller's connection is in a transaction: one the sqlite3 module
        would begin by itself before the caller's next write is begun now."""
        if raw.in_transaction:
            return
        autocommit = getattr(raw, "autocommit", _LEGACY)
        if autocommit is True or (autocommit == _LEGACY and raw.isolation_level is None):
            raise InvalidArgumentError(
                "the sqlite3 connection is in autocommit mode and not in a transaction: the "
                "job would commit on its own. Run conn.execute('BEGIN') first"
            )
        # The BEGIN the module would issue before the caller's next write; commit() ends it.
        raw.execute(f"BEGIN {raw.isolation_level or ''}".strip())

    # -- completion ------------------------------------------------------------------------

    @contextlib.contextmanager
    def completing(self, changes: Sequence[Change], check: Check) -> Iterator[sqlite3.Connection]:
        if self.path == ":memory:":
            raise InvalidArgumentError(
                "job.transaction() needs a queue in a file: a :memory: queue lives in one "
                "connection"
            )
        results = external.encode_results(changes)
        conn = self._connect()
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc
            try:
                yield conn
                if not conn.in_transaction:
                    raise InvalidArgumentError(
                        "the handler committed or rolled back job.transaction()'s transaction "
                        "itself; the block's end commits it (raise to roll it back)"
                    )
                try:
                    answers, txn = external.apply(self.steps, conn, self.clock(), changes, results)
                except sqlite3.Error as exc:
                    raise translate(exc, self.path) from exc
                check(answers)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()
        if txn.work_added or txn.changed:
            self.signal.notify(work=txn.work_added)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error as exc:
            conn.close()
            raise translate(exc, self.path) from exc
        return conn
