"""The PostgreSQL peers' database: one of the bench's own on the server of ``--postgres-url``.

The harness creates a database with a unique name at start (``jobqueue_bench_<hex>``), gives
its URL to the adapters and worker processes as ``BENCH_POSTGRES_URL``, and drops it at the
end (``WITH (FORCE)``); it never touches another database. Each library keeps its tables in a
schema of its own there (``peers/postgres_base.py``), dropped and re-created before each phase.

Transactions per job: ``pg_stat_database.xact_commit + xact_rollback`` of that database, read
from a connection to the server's maintenance database (so the reads count nowhere in it).
A backend reports its counts to the shared statistics lazily (up to ~10 s after it went idle)
but always when it exits, so :meth:`BenchDatabase.settled` waits until no backend is connected
to the bench database: then every transaction so far is counted, and none is pending.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ENV = "BENCH_POSTGRES_URL"


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to (or replacing those of) its query string."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query_string = urlencode([*query, *params.items()], quote_via=quote)  # libpq: no "+"
    return urlunsplit(parts._replace(query=query_string))


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def unavailable(url: str) -> str | None:
    """Why the PostgreSQL peers cannot run against ``url``, or None if they can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {_shown(url)} does not answer ({' '.join(str(exc).split())})"
    return None


class BenchDatabase:
    """A database of the bench's own, created on enter and dropped (forcibly) on exit."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"jobqueue_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.url = with_database(admin_url, self.name)
        self.admin: Any = None

    def __enter__(self) -> BenchDatabase:
        import psycopg

        self.admin = psycopg.connect(self.admin_url, autocommit=True)
        self.admin.execute(f'CREATE DATABASE "{self.name}"')
        os.environ[ENV] = self.url
        return self

    def __exit__(self, *exc: object) -> None:
        os.environ.pop(ENV, None)
        if self.admin is not None:
            with contextlib.suppress(Exception):
                self.admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.admin.close()

    def version(self) -> str:
        return str(self.admin.execute("SHOW server_version").fetchone()[0])

    def settings(self) -> dict[str, str]:
        """The server settings that matter to a queue's speed, as found."""
        names = ("synchronous_commit", "fsync", "shared_buffers", "autovacuum", "wal_level")
        rows = self.admin.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
            (list(names),),
        ).fetchall()
        return dict(rows)

    def backends(self) -> int:
        """Connections to the bench database now."""
        row = self.admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.name,)
        ).fetchone()
        return int(row[0])

    def settled(self, timeout: float = 20.0) -> bool:
        """Wait until nothing is connected to the bench database (every backend's counts
        reported); False if something still was after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.backends():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def transactions(self) -> int:
        """Transactions committed and rolled back in the bench database so far."""
        row = self.admin.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (self.name,),
        ).fetchone()
        return int(row[0])


def _shown(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(parts.password, "***", 1)))
