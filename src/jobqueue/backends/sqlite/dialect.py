"""What SQLite does differently from the SQL family's shared store (``jobqueue.backends.sql``).

- Statements: the overrides of the family's texts (``OVERRIDES``); placeholders are ``?``.
- The schema: its history in ``migrations/NNNN_name.sql``; how SQLite reads and changes it
  (``sqlite_master``, ``PRAGMA application_id``, ``BEGIN IMMEDIATE``, splitting a script with
  SQLite's own parser) and its one Python-driven step, migration 9's table rebuild.
- ``typeof`` checks: rows written by something other than jobqueue with values of the wrong
  SQLite type. Since schema version 9 the jobs table refuses them (a ``CHECK (typeof(...))``
  per column); before it, any process holding the file could store, say, a text
  ``priority``. The claim sorts on ``priority`` and ``seq`` before it decodes anything, so
  such a value would crash every claim instead of failing one job. Migration 9 fails the live
  jobs that carry one (``fail_foreign_typed_rows``), and the claim still checks its sort keys
  (``corrupt.sort_key_problem``) for a file written with ``PRAGMA ignore_check_constraints``.
- Errors: what an ``sqlite3`` error means for the caller: a full disk, a busy or unreachable
  file, or a failure of the operation itself. A full disk shows up two ways. A write that
  needs room fails with ``SQLITE_FULL`` ("database or disk is full"). But a WAL file is read
  through its ``-shm`` index, which SQLite creates and sizes (32 KiB) when the first
  connection opens the file; on a full disk that fails with ``SQLITE_IOERR_SHMSIZE``, a plain
  "disk I/O error" -- for reads as well as writes, so a process started on a full disk could
  not even look at its jobs. The error does not carry the ``errno``; the free space of the
  file's directory tells the two apart (``disk_is_full``), and reads then go through a
  read-only view of the index (``connections.ConnectionPool``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time

from jobqueue.backends.sql import migrate
from jobqueue.backends.sql.corrupt import corrupt_error, describe, sql_type
from jobqueue.backends.sql.dialect import Connection
from jobqueue.backends.sql.migrate import Layout, Step
from jobqueue.backends.sql.rows import error_json
from jobqueue.backends.sql.statements import Statements
from jobqueue.errors import (
    BackendError,
    BackendFullError,
    BackendUnavailableError,
    SchemaVersionError,
)
from jobqueue.job import JobState

LOGGER = logging.getLogger("jobqueue.backends.sqlite")

APPLICATION_ID = 0x4A6F6251  # "JobQ": marks the file as ours in the SQLite header itself

SCHEMA_VERSION = 10
"""The version this jobqueue writes: the last of ``migrations/``."""

# The family's statements SQLite runs in its own words (the same effect): kept as the files
# in the field have always been written.
OVERRIDES = {
    "PAUSE": "INSERT OR IGNORE INTO jobqueue_paused (name) VALUES (?)",
    "UPSERT_DISPATCHER": (
        "INSERT OR REPLACE INTO jobqueue_dispatchers (id, host, pid, names, concurrency, "
        "started_at, last_seen, expires_at, jobs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "COUNT_OUTCOMES": (
        "INSERT INTO jobqueue_outcomes (minute, outcome, count) VALUES (?, ?, ?) "
        "ON CONFLICT (minute, outcome) DO UPDATE SET count = count + excluded.count"
    ),
    "SET_SCHEDULE_PAUSED": (
        "INSERT INTO jobqueue_schedules (name, definition, paused, updated_at) "
        "VALUES (?, '', ?, ?) ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, "
        "updated_at = excluded.updated_at WHERE paused != excluded.paused"
    ),
}


def rebuild_jobs_table(conn: Connection, script: str) -> None:
    """Migration 9: SQLite cannot add a CHECK to a table, so ``script`` makes the checked
    table (``jobqueue_jobs_v9``) and this copies every row into it, drops the old one and
    renames the new, then recreates the indexes and triggers, whatever earlier steps made,
    from their own SQL. Rows that would not fit are made to fit first."""
    _rebuild(conn, script, "jobqueue_jobs_v9")


AFTER_COPY = "-- after the copy:"
"""The line of migration 10's file after which its statements run on the rebuilt table."""


def rebuild_for_flows(conn: Connection, script: str) -> None:
    """Migration 10: the table rebuilt as migration 9 does (``jobqueue_jobs_v10``: the
    ``blocked`` state allowed, the flow columns added, NULL on every row copied), then the
    statements after ``AFTER_COPY`` (the indexes and triggers that list the states)."""
    table, marker, after = script.partition(AFTER_COPY)
    if not marker:
        raise ValueError(f"migration 10 has no {AFTER_COPY!r} line")
    _rebuild(conn, table, "jobqueue_jobs_v10")
    SQLITE.run(conn, after)


def _rebuild(conn: Connection, script: str, new_table: str) -> None:
    """``script`` makes ``new_table``; every row of ``jobqueue_jobs`` is copied into it (the
    columns the old table has: a new one takes its default), the old table dropped and the
    new renamed, its indexes and triggers recreated from their own SQL."""
    fail_foreign_typed_rows(conn, time.time())  # the host's clock: no backend here
    kept = [
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'jobqueue_jobs' "
            "AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY rowid"
        )
    ]
    SQLITE.run(conn, script)
    columns = ", ".join(
        row[1] for row in conn.execute("PRAGMA table_info(jobqueue_jobs)").fetchall()
    )
    conn.execute(f"INSERT INTO {new_table} ({columns}) SELECT {columns} FROM jobqueue_jobs")
    conn.execute("DROP TABLE jobqueue_jobs")  # its indexes and triggers go with it
    conn.execute(f"ALTER TABLE {new_table} RENAME TO jobqueue_jobs")
    for sql in kept:
        conn.execute(sql)


HOOKS = {9: rebuild_jobs_table, 10: rebuild_for_flows}
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
    """SQLite as the store sees it (``sql.dialect.Dialect``) and as ``migrate`` does
    (``migrate.Schema``)."""

    name = "sqlite"
    begin_exclusive = "BEGIN IMMEDIATE"
    integrity_error = sqlite3.IntegrityError
    error = sqlite3.Error

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.sql = Statements(OVERRIDES)

    def run(self, conn: Connection, step: Step) -> None:
        """Apply ``step`` inside the caller's transaction (never ``executescript``, which
        would commit first)."""
        if callable(step):
            step(conn)
            return
        for statement in split(step):
            conn.execute(statement)

    def version(self, conn: Connection) -> object:
        row = conn.execute(
            "SELECT value FROM jobqueue_meta WHERE key = 'schema_version'"
        ).fetchone()
        return row[0] if row else None

    def set_version(self, conn: Connection, version: int) -> None:
        conn.execute("UPDATE jobqueue_meta SET value = ? WHERE key = 'schema_version'", (version,))

    def before_create(self, conn: Connection, in_memory: bool) -> None:
        if not in_memory:
            conn.execute("PRAGMA journal_mode = WAL")  # persistent; must precede the transaction

    def inspect(self, conn: Connection, path: str) -> str:
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


# -- rows of the wrong type ---------------------------------------------------------------------

# The SQLite type each plain column of the jobs table must hold (``typeof``) and whether it
# may be NULL, as migration 9 checks them: part of a released step, so never edited (a later
# change of the checks is a new migration with its own table). The JSON columns (backoff,
# data, result, error, history) are not here: decoding them turns anything foreign into
# ``CorruptJobError`` already, and a blob of valid UTF-8 JSON decodes fine.
V9_TYPES: dict[str, tuple[str, bool]] = {
    "name": ("text", False),
    "priority": ("integer", False),
    "seq": ("integer", False),
    "run_at": ("real", False),
    "lease_token": ("text", True),
    "lease_expires_at": ("real", True),
    "unique_key": ("text", True),
    "attempts": ("integer", False),
    "attempts_made": ("integer", False),
    "stalls": ("integer", False),
    "created_at": ("real", False),
    "started_at": ("real", True),
    "finished_at": ("real", True),
    "progress": ("real", False),
    "progress_message": ("text", True),
    "title": ("text", True),
    "timeout": ("real", True),
    "dispatcher": ("text", True),
    "ended_lease": ("text", True),
}

V9_STATES = ("waiting", "delayed", "active", "completed", "failed", "cancelled")
LIVE_STATES = frozenset(state.value for state in JobState if state.is_live)

# What a bad value is replaced with so that the row fits the checked table. The row itself is
# failed when it was live (its reason names the original values), so these only need to be
# valid; ``seq`` and ``finished_at`` are set by the failing itself.
_PLACEHOLDERS: dict[str, object] = {
    "priority": 0,
    "attempts": 1,
    "attempts_made": 0,
    "stalls": 0,
    "progress": 0.0,
}


def fail_foreign_typed_rows(conn: Connection, now: float) -> int:
    """Make every row fit migration 9's checks, inside the caller's transaction: a live job
    with a wrong-typed value, and a row whose state is no job state, is failed as corrupt
    with the reason; a finished one keeps its state (nothing runs it again). Bad values are
    replaced either way. Returns how many rows were changed: one read of the table, and
    nothing written when every row is fine."""
    checks = []
    for column, (kind, nullable) in V9_TYPES.items():
        allowed = f"'{kind}', 'null'" if nullable else f"'{kind}'"
        checks.append(f"typeof({column}) NOT IN ({allowed})")
    states = ", ".join(f"'{state}'" for state in V9_STATES)
    columns = list(V9_TYPES)
    rows = conn.execute(
        f"SELECT id, state, {', '.join(columns)} FROM jobqueue_jobs "
        f"WHERE typeof(state) != 'text' OR state NOT IN ({states}) OR {' OR '.join(checks)}"
    ).fetchall()
    if not rows:
        return 0
    (seq,) = conn.execute("SELECT value FROM jobqueue_meta WHERE key = 'seq'").fetchone()
    for row in rows:
        key, state, values = row[0], row[1], dict(zip(columns, row[2:], strict=True))
        reasons = [] if state in V9_STATES else [describe("state", state, "a job state")]
        fixed: dict[str, object] = {}
        for column, (kind, nullable) in V9_TYPES.items():
            value = values[column]
            if sql_type(value) == kind or (nullable and value is None):
                continue
            reasons.append(describe(column, value, kind))
            if column == "name":  # TEXT affinity turns numbers into text: a blob gets here
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else None
                fixed[column] = str(value) if text is None else text
            elif column in ("run_at", "created_at", "finished_at"):
                fixed[column] = now
            else:
                fixed[column] = _PLACEHOLDERS.get(column)  # None for the nullable ones
        reason = "; ".join(reasons)
        if state in LIVE_STATES or state not in V9_STATES:
            LOGGER.error("job %s: failing it, its stored record is unreadable: %s", key, reason)
            seq += 1
            fixed.update(
                state="failed",
                finished_at=now,
                seq=seq,  # as a finish takes one: retention removes the first finished first
                lease_token=None,
                lease_expires_at=None,
                dispatcher=None,
                error=error_json(corrupt_error(key, reason)),
            )
        else:
            LOGGER.warning("job %s: replacing foreign-typed values: %s", key, reason)
            if "seq" in fixed:
                seq += 1
                fixed["seq"] = seq
        assignments = ", ".join(f"{column} = ?" for column in fixed)
        conn.execute(f"UPDATE jobqueue_jobs SET {assignments} WHERE id = ?", (*fixed.values(), key))
    conn.execute("UPDATE jobqueue_meta SET value = ? WHERE key = 'seq'", (seq,))
    # The triggers follow state changes only; a replaced name moved no count: count afresh.
    conn.execute("DELETE FROM jobqueue_name_counts")
    conn.execute(
        "INSERT INTO jobqueue_name_counts (name, state, n) "
        "SELECT name, state, COUNT(*) FROM jobqueue_jobs GROUP BY name, state"
    )
    return len(rows)


# -- errors ------------------------------------------------------------------------------------


def is_busy(exc: sqlite3.Error) -> bool:
    """A lock or I/O hiccup another attempt may get past (as opposed to a bug in our SQL)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and any(
        word in text for word in ("locked", "busy", "disk i/o", "unable to open")
    )


FULL_BELOW = 1 << 20
"""Free bytes under which an I/O error is taken for a full disk: SQLite needs at most tens of
KiB to open a file (its index) or write a transaction of ordinary jobs, so with a MiB free an
I/O error is something else."""

SQLITE_FULL = 13


def is_io_error(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if isinstance(name, str):
        return name.startswith("SQLITE_IOERR")
    return "disk i/o error" in str(exc).lower()


def is_full(exc: sqlite3.Error) -> bool:
    """``SQLITE_FULL`` itself."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int):
        return code & 0xFF == SQLITE_FULL
    return "database or disk is full" in str(exc).lower()


def disk_is_full(path: str) -> bool:
    """Whether the disk holding ``path`` has (almost) no room left."""
    try:
        stats = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except (OSError, AttributeError):  # no statvfs (Windows) or the directory is gone
        return False
    return stats.f_bavail * stats.f_frsize < FULL_BELOW


def means_full_disk(exc: sqlite3.Error, path: str) -> bool:
    return is_full(exc) or (path != ":memory:" and is_io_error(exc) and disk_is_full(path))


def translate(exc: sqlite3.Error, path: str) -> BackendError:
    if means_full_disk(exc, path):
        return BackendFullError(
            f"SQLite database {path!r} is full ({exc}); nothing of this call was stored. "
            "Jobs already stored can still be read; free space on its disk to go on"
        )
    if is_busy(exc):
        return BackendUnavailableError(
            f"SQLite database {path!r} is busy or unreachable ({exc}); nothing was changed, "
            "retry (or raise busy_timeout in the URL if many processes share the file)"
        )
    return BackendError(f"SQLite operation on {path!r} failed: {exc}")
