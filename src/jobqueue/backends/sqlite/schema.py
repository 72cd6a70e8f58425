"""Opening a jobqueue SQLite file: refuse what is not ours, create or check the schema.

Nothing is written to a file until it is known to be empty or ours: the 16-byte header is read
before SQLite opens it, and foreign databases are only read (``PRAGMA``/``sqlite_master``), so a
wrong path never damages someone else's data.
"""

from __future__ import annotations

import os
import sqlite3

from jobqueue.errors import SchemaVersionError

SCHEMA_VERSION = 1
"""Bump when the layout changes; add a migration from every older version in ``prepare``."""

APPLICATION_ID = 0x4A6F6251  # "JobQ": marks the file as ours in the SQLite header itself
SQLITE_HEADER = b"SQLite format 3\x00"

# Partial indexes keep every hot query an index seek whatever the table size: the claim reads
# the first entry of (name, priority, seq) among waiting jobs only; promotion reads due delayed
# jobs; recovery reads expired leases; retention reads the oldest finished jobs.
SCHEMA = f"""
CREATE TABLE jobqueue_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO jobqueue_meta (key, value) VALUES ('schema_version', {SCHEMA_VERSION}), ('seq', 0),
    ('job_id', 0);
CREATE TABLE jobqueue_jobs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    run_at REAL NOT NULL,
    lease_token TEXT,
    lease_expires_at REAL,
    unique_key TEXT,
    attempts INTEGER NOT NULL,
    attempts_made INTEGER NOT NULL,
    stalls INTEGER NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    progress REAL NOT NULL,
    progress_message TEXT,
    title TEXT,
    timeout REAL,
    backoff TEXT NOT NULL,
    data TEXT NOT NULL,
    result TEXT,
    error TEXT
);
CREATE INDEX jobqueue_waiting ON jobqueue_jobs (name, priority DESC, seq) WHERE state = 'waiting';
CREATE INDEX jobqueue_delayed ON jobqueue_jobs (run_at, seq) WHERE state = 'delayed';
CREATE INDEX jobqueue_active ON jobqueue_jobs (lease_expires_at) WHERE state = 'active';
CREATE INDEX jobqueue_finished_order ON jobqueue_jobs (state, seq) WHERE finished_at IS NOT NULL;
CREATE INDEX jobqueue_finished_at
    ON jobqueue_jobs (state, finished_at DESC, id DESC) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX jobqueue_unique ON jobqueue_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('waiting', 'delayed', 'active');
CREATE TABLE jobqueue_logs (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    at REAL NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX jobqueue_logs_job ON jobqueue_logs (job_id, id);
-- Counts per state, kept by triggers, so counting and retention never scan the table.
CREATE TABLE jobqueue_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO jobqueue_counts (state, n) VALUES
    ('waiting', 0), ('delayed', 0), ('active', 0), ('completed', 0), ('failed', 0);
CREATE TRIGGER jobqueue_count_insert AFTER INSERT ON jobqueue_jobs BEGIN
    UPDATE jobqueue_counts SET n = n + 1 WHERE state = new.state;
END;
CREATE TRIGGER jobqueue_count_delete AFTER DELETE ON jobqueue_jobs BEGIN
    UPDATE jobqueue_counts SET n = n - 1 WHERE state = old.state;
END;
CREATE TRIGGER jobqueue_count_update AFTER UPDATE OF state ON jobqueue_jobs
    WHEN old.state IS NOT new.state BEGIN
    UPDATE jobqueue_counts SET n = n - 1 WHERE state = old.state;
    UPDATE jobqueue_counts SET n = n + 1 WHERE state = new.state;
END;
PRAGMA application_id = {APPLICATION_ID};
"""


def check_header(path: str) -> None:
    """Refuse, before SQLite touches it, a non-empty file that is not an SQLite database."""
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


def prepare(conn: sqlite3.Connection, path: str, *, in_memory: bool) -> None:
    """Create the schema in an empty database, or check that an existing one is ours and of a
    version we know. Raises ``SchemaVersionError`` without writing anything otherwise."""
    state = _inspect(conn, path)
    if state == "ours":
        return
    # Empty: create it. BEGIN IMMEDIATE serializes processes racing to create the same file,
    # and the re-check inside the transaction makes the loser see the winner's schema.
    if not in_memory:
        conn.execute("PRAGMA journal_mode = WAL")  # persistent; must precede the transaction
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _inspect(conn, path) == "empty":
            for statement in _statements(SCHEMA):
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _inspect(conn: sqlite3.Connection, path: str) -> str:
    """``"empty"``, ``"ours"`` (current version), or raise for anything else."""
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
            f"{path!r} is an SQLite database but not a jobqueue one (tables: {shown or 'none'}, "
            f"application_id {application_id:#x}); refusing to touch it. "
            "Use a separate file for the job queue"
        )
    row = conn.execute("SELECT value FROM jobqueue_meta WHERE key = 'schema_version'").fetchone()
    version = row[0] if row else None
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        raise SchemaVersionError(
            f"{path!r} has jobqueue schema version {version!r} but this jobqueue "
            f"understands version {SCHEMA_VERSION}; "
            + (
                "upgrade jobqueue to open it"
                if newer
                else "it was not written by a released jobqueue; refusing to change it"
            )
        )
    return "ours"


def _statements(script: str) -> list[str]:
    """Split the schema into statements (triggers contain ';' so use sqlite3's own parser)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]


def resolve_path(url_path: str) -> str:
    """``/rel.db`` → ``rel.db``; ``//abs.db`` → ``/abs.db``; ``/:memory:`` → ``:memory:``."""
    path = url_path[1:] if url_path.startswith("/") else url_path
    return path if path == ":memory:" else os.path.abspath(path)
