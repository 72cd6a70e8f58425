"""What SQLite does differently from the SQL family's shared store (``jobqueue.backends.sql``).

The schema's history is in ``migrations/NNNN_name.sql``; here are the ways SQLite reads and
changes it (``sqlite_master``, ``PRAGMA application_id``, ``BEGIN IMMEDIATE``, splitting a
script with SQLite's own parser) and its one Python-driven step, migration 9's table rebuild.
Statements whose SQLite text differs from the family's are the overrides in ``statements``.
"""

from __future__ import annotations

import sqlite3
import time

from jobqueue.backends.sql import migrate
from jobqueue.backends.sql.migrate import Layout, Step
from jobqueue.backends.sqlite import foreign
from jobqueue.errors import SchemaVersionError

APPLICATION_ID = 0x4A6F6251  # "JobQ": marks the file as ours in the SQLite header itself


def rebuild_jobs_table(conn: sqlite3.Connection, script: str) -> None:
    """Migration 9: SQLite cannot add a CHECK to a table, so ``script`` makes the checked
    table (``jobqueue_jobs_v9``) and this copies every row into it, drops the old one and
    renames the new, then recreates the indexes and triggers, whatever earlier steps made,
    from their own SQL. Rows that would not fit are made to fit first."""
    foreign.fail_foreign_typed_rows(conn, time.time())  # the host's clock: no backend here
    kept = [
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'jobqueue_jobs' "
            "AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY rowid"
        )
    ]
    SQLITE.run(conn, script)
    columns = ", ".join(
        row[1] for row in conn.execute("PRAGMA table_info(jobqueue_jobs_v9)").fetchall()
    )
    conn.execute(f"INSERT INTO jobqueue_jobs_v9 ({columns}) SELECT {columns} FROM jobqueue_jobs")
    conn.execute("DROP TABLE jobqueue_jobs")  # its indexes and triggers go with it
    conn.execute("ALTER TABLE jobqueue_jobs_v9 RENAME TO jobqueue_jobs")
    for sql in kept:
        conn.execute(sql)


HOOKS = {9: rebuild_jobs_table}
"""The Python-driven migration steps, by version: all of them, here."""


def split(script: str) -> list[str]:
    """A script's statements (triggers contain ';' so SQLite's own parser decides); lines
    that are only a comment are left out."""
    found: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            found.append(current.strip())
            current = ""
    return [s for s in found if s]


class SQLiteDialect:
    """SQLite's side of ``migrate.Schema``."""

    begin_exclusive = "BEGIN IMMEDIATE"

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def run(self, conn: sqlite3.Connection, step: Step) -> None:
        """Apply ``step`` inside the caller's transaction (never ``executescript``, which
        would commit first)."""
        if callable(step):
            step(conn)
            return
        for statement in split(step):
            conn.execute(statement)

    def version(self, conn: sqlite3.Connection) -> object:
        row = conn.execute(
            "SELECT value FROM jobqueue_meta WHERE key = 'schema_version'"
        ).fetchone()
        return row[0] if row else None

    def set_version(self, conn: sqlite3.Connection, version: int) -> None:
        conn.execute("UPDATE jobqueue_meta SET value = ? WHERE key = 'schema_version'", (version,))

    def before_create(self, conn: sqlite3.Connection, in_memory: bool) -> None:
        if not in_memory:
            conn.execute("PRAGMA journal_mode = WAL")  # persistent; must precede the transaction

    def inspect(self, conn: sqlite3.Connection, path: str) -> str:
        """``"empty"`` or ``"ours"`` (at some version); raises for a foreign database."""
        tables = sorted(
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        )
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if not tables and application_id in (0, APPLICATION_ID):
            return "empty"
        if application_id != APPLICATION_ID or "jobqueue_meta" not in tables:
            shown = ", ".join(tables[:8]) + (", ..." if len(tables) > 8 else "")
            raise SchemaVersionError(
                f"{path!r} is an SQLite database but not a jobqueue one (tables: "
                f"{shown or 'none'}, application_id {application_id:#x}); refusing to touch "
                "it. Use a separate file for the job queue"
            )
        return "ours"


SQLITE = SQLiteDialect(migrate.load("jobqueue.backends.sqlite", "migrations", HOOKS))

SCHEMA_VERSION = 9
"""The version this jobqueue writes: the last of ``migrations/``."""
