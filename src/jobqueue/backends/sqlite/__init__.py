"""Embedded SQLite backend: durable jobs in one file, no server (``sqlite:///jobs.db``).

The SQL family's store (``jobqueue.backends.sql``) over SQLite's dialect (``.dialect``) and
connections (``.connections``); the schema is ``migrations/NNNN_name.sql``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from urllib.parse import parse_qs, urlsplit

from jobqueue.backend import BackendOptions
from jobqueue.backends.sql.external import Steps
from jobqueue.backends.sql.store import SQLStore
from jobqueue.backends.sqlite.connections import SQLiteLink, check_header, prepare, resolve_path
from jobqueue.backends.sqlite.dialect import SCHEMA_VERSION, SQLITE, means_full_disk
from jobqueue.backends.sqlite.external import SQLiteTransactions
from jobqueue.changes import Change
from jobqueue.errors import BackendError, BackendFullError, ConfigurationError, InvalidURLError
from jobqueue.job import Job
from jobqueue.transactions import Check

__all__ = ["SCHEMA_VERSION", "SQLiteBackend"]

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


class SQLiteBackend(SQLStore):
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite:///:memory:``.

    Query options: ``busy_timeout`` (seconds a writer waits for another process's lock,
    default 10) and ``synchronous`` (``normal`` by default: a commit survives a crash of the
    process, ``full`` also a power loss, at some cost per job).
    """

    def __init__(
        self,
        path: str,
        options: BackendOptions | None = None,
        *,
        busy_timeout: float = 10.0,
        synchronous: str = "NORMAL",
    ) -> None:
        options = options or BackendOptions()
        if options.namespace is not None:
            raise ConfigurationError(
                "the sqlite backend keeps one queue per file and has no namespaces; "
                f"use a separate file instead of namespace={options.namespace!r}"
            )
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ConfigurationError(f"synchronous must be one of {_SYNCHRONOUS}")
        self.path = path
        link = SQLiteLink(path, busy_timeout=busy_timeout, synchronous=synchronous.upper())
        self._pool = link.pool
        super().__init__(options, SQLITE, link)
        self._transactions = SQLiteTransactions(
            path,
            Steps(self._sql, self._log, self._integrity_error),
            link.signal,
            options.clock,
            busy_timeout,
            synchronous.upper(),
        )
        if not self._pool.shared:
            check_header(path)  # before SQLite opens (and could change) the file
        try:
            with link.write_lock:
                prepare(
                    self._pool.get,
                    path,
                    in_memory=self._pool.shared,
                    read_only=self._pool.open_read_only,
                )
        except sqlite3.Error as exc:
            self._pool.close()
            if means_full_disk(exc, path):
                raise BackendFullError(
                    f"cannot open SQLite database {path!r}: its disk is full ({exc})"
                ) from exc
            raise BackendError(f"cannot open SQLite database {path!r}: {exc}") from exc
        except BaseException:
            self._pool.close()
            raise

    # -- jobqueue.transactions.TransactionalStore ---------------------------------------------

    def insert_in(self, connection: object, jobs: Sequence[Job]) -> list[Job]:
        """Store ``jobs`` in the caller's open transaction (``connection``: an
        ``sqlite3.Connection`` on this file, or SQLAlchemy's); see ``.external``."""
        return self._transactions.insert_in(connection, jobs)

    async def insert_in_async(self, connection: object, jobs: Sequence[Job]) -> list[Job]:
        return await self._transactions.insert_in_async(connection, jobs)

    def completing(
        self, changes: Sequence[Change], check: Check
    ) -> AbstractContextManager[sqlite3.Connection]:
        return self._transactions.completing(changes, check)

    @classmethod
    def from_url(cls, url: str, options: BackendOptions) -> SQLiteBackend:
        parts = urlsplit(url)
        if parts.scheme != "sqlite" or parts.netloc or not parts.path.strip("/"):
            raise InvalidURLError(
                f"bad sqlite URL {url!r}: use sqlite:///relative/path.db, "
                "sqlite:////absolute/path.db or sqlite:///:memory:"
            )
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"busy_timeout", "synchronous"}
        if unknown:
            raise InvalidURLError(
                f"unknown sqlite URL parameter(s) {', '.join(sorted(unknown))} in {url!r}; "
                "known: busy_timeout, synchronous"
            )
        try:
            busy_timeout = float(query.get("busy_timeout", 10.0))
        except ValueError:
            raise InvalidURLError("busy_timeout must be a number of seconds") from None
        path = resolve_path(parts.path)
        if path != ":memory:":
            parent = os.path.dirname(path)
            if not os.path.isdir(parent):
                raise InvalidURLError(
                    f"the directory {parent!r} of the SQLite file does not exist; create it first"
                )
        return cls(
            path,
            options,
            busy_timeout=busy_timeout,
            synchronous=query.get("synchronous", "NORMAL"),
        )
