"""Opening a jobqueue SQLite file: refuse what is not ours, create, migrate or check the schema.

The layout itself, and its history, is in ``migrations``. Nothing is written to a file until it
is known to be empty or ours at a version we can migrate: the 16-byte header is read
before SQLite opens it, and foreign databases are only read (``PRAGMA``/``sqlite_master``), so a
wrong path never damages someone else's data.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable

from jobqueue.backends.sqlite import failures, migrations
from jobqueue.backends.sqlite.migrations import APPLICATION_ID
from jobqueue.errors import SchemaVersionError

SCHEMA_VERSION = 9
"""The version this jobqueue writes: the last of ``migrations.MIGRATIONS``."""

SQLITE_HEADER = b"SQLite format 3\x00"

logger = logging.getLogger("jobqueue.backends.sqlite")


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


def prepare(
    connect: Callable[[], sqlite3.Connection],
    path: str,
    *,
    in_memory: bool,
    read_only: Callable[[], sqlite3.Connection | None] | None = None,
) -> None:
    """Create the schema in an empty database, migrate an older one of ours up to
    ``SCHEMA_VERSION``, or check that it is current, on the connection ``connect`` gives.
    Raises ``SchemaVersionError`` without changing the file for anything else, and when a
    migration fails (it is rolled back). ``read_only`` gives a connection that reads without
    writing, for a file the other cannot even read because its disk is full (``failures``):
    a current file needs no write."""
    try:
        conn = connect()
        state = _inspect(conn, path)
    except sqlite3.OperationalError as exc:
        viewer = None if read_only is None or not failures.is_io_error(exc) else read_only()
        if viewer is None:
            raise
        logger.debug("%s: checking the schema through a read-only connection: %s", path, exc)
        try:
            if _inspect(viewer, path) != "ours":
                raise  # creating or migrating it needs the writes that just failed
        finally:
            viewer.close()
        state = "ours"
    if state == "ours":
        return
    if state == "empty" and not in_memory:
        conn.execute("PRAGMA journal_mode = WAL")  # persistent; must precede the transaction
    # One transaction per step. BEGIN IMMEDIATE serializes processes racing to create or
    # migrate the same file, and the re-check inside the transaction makes the one that
    # waited see the other's work instead of applying it twice.
    applied = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            state = _inspect(conn, path)
            if state == "empty":
                _create(conn)
            elif state == "old":
                _migrate_one(conn, path)
                applied += 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if state != "old":
            if state == "ours" and not applied:
                logger.debug("%s: another process brought the schema up to date first", path)
            return


def _create(conn: sqlite3.Connection) -> None:
    """A new file: the base schema then every migration, in one transaction, so it is built
    exactly as an upgraded file and is never seen at an intermediate version."""
    migrations.run(conn, migrations.BASE_SCHEMA)
    for migration in migrations.MIGRATIONS:
        migrations.run(conn, migration.step)
    _set_version(conn, _latest())


def _migrate_one(conn: sqlite3.Connection, path: str) -> None:
    """Apply the next migration of an older file, with its version bump, in the caller's
    transaction; a failure leaves the file as it was (the caller rolls back)."""
    current = _version(conn)
    assert isinstance(current, int)  # _inspect said "old", so it is a known version
    migration = next(m for m in migrations.MIGRATIONS if m.version > current)
    logger.info(
        "%s: migrating the jobqueue schema from version %d to %d (%s)",
        path,
        current,
        migration.version,
        migration.description,
    )
    try:
        migrations.run(conn, migration.step)
        _set_version(conn, migration.version)
    except Exception as exc:
        raise SchemaVersionError(
            f"{path!r}: migration {migration.version} of the jobqueue schema "
            f"({migration.description}) failed: {exc}. It was rolled back: the file is "
            f"unchanged, still at version {current}"
        ) from exc


def _latest() -> int:
    return migrations.MIGRATIONS[-1].version if migrations.MIGRATIONS else migrations.BASE_VERSION


def _version(conn: sqlite3.Connection) -> object:
    row = conn.execute("SELECT value FROM jobqueue_meta WHERE key = 'schema_version'").fetchone()
    return row[0] if row else None


def _set_version(conn: sqlite3.Connection, version: int) -> None:
    conn.execute("UPDATE jobqueue_meta SET value = ? WHERE key = 'schema_version'", (version,))


def _inspect(conn: sqlite3.Connection, path: str) -> str:
    """``"empty"``, ``"ours"`` (current version), ``"old"`` (a version a migration upgrades),
    or raise for anything else."""
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
    version = _version(conn)
    latest = _latest()
    if isinstance(version, int) and not isinstance(version, bool):
        if version == latest:
            return "ours"
        if migrations.BASE_VERSION <= version < latest:
            return "old"
    newer = isinstance(version, int) and version > latest
    raise SchemaVersionError(
        f"{path!r} has jobqueue schema version {version!r} but this jobqueue "
        f"understands versions up to {latest}; "
        + (
            "upgrade jobqueue to open it (migrations only go forward)"
            if newer
            else "it was not written by a released jobqueue; refusing to change it"
        )
    )


def resolve_path(url_path: str) -> str:
    """``/rel.db`` → ``rel.db``; ``//abs.db`` → ``/abs.db``; ``/:memory:`` → ``:memory:``."""
    path = url_path[1:] if url_path.startswith("/") else url_path
    return path if path == ":memory:" else os.path.abspath(path)
