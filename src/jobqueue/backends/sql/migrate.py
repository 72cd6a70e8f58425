"""Versioned migrations from files, applied the same way by every SQL dialect.

A dialect ships its layout as numbered files in a package folder (``migrations/0001_base.sql``,
``0002_control_plane.sql``...): ``0001`` is the base layout, every later file one step, whose
first line (``-- description``) names it. Every database, new or old, is built by the same
steps: a new one gets the base and then every step in one transaction, an old one only the
steps it lacks, one transaction each. New and upgraded databases are therefore the same by
construction. Migrations are forward-only: there is no down step, and a database written by a
newer jobqueue is refused rather than guessed at. To change the layout, add the next file;
never edit a released one, since databases already carry its effect.

A step SQL cannot express (SQLite rebuilding a table to add a CHECK) is a *hook*: a Python
function the dialect names for that version, given the connection and the file's SQL, which it
runs at the point it needs. Hooks live in the dialect, in one place.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import NamedTuple, Protocol

from jobqueue.backends.sql.dialect import Connection
from jobqueue.errors import SchemaVersionError

BASE_VERSION = 1

logger = logging.getLogger("jobqueue.backends.sql")

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

Step = str | Callable[[Connection], None]
"""SQL (one or more statements) or a callable given the connection, inside the step's
transaction."""

Hook = Callable[[Connection, str], None]
"""A Python-driven step: given the connection and its file's SQL, inside the transaction."""


class Migration(NamedTuple):
    """One step: after it the database is at ``version``."""

    version: int
    description: str
    step: Step


class Layout(NamedTuple):
    """A dialect's schema history: the base (version 1) and the steps after it, in order."""

    base: str
    migrations: list[Migration]


def load(package: str, folder: str, hooks: Mapping[int, Hook] | None = None) -> Layout:
    """Read the ``NNNN_name.sql`` files in ``folder`` of ``package`` (package data, not a
    package itself); ``hooks`` turns a version's file into a Python-driven step. Refuses gaps
    and misnamed files, which would otherwise be skipped."""
    hooks = hooks or {}
    found: dict[int, tuple[str, str]] = {}
    for entry in resources.files(package).joinpath(folder).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE.match(entry.name)
        if match is None:
            raise ValueError(f"{package}: {entry.name!r} is not named NNNN_name.sql")
        text = entry.read_text(encoding="utf-8")
        first = text.split("\n", 1)[0]
        description = first.removeprefix("--").strip() if first.startswith("--") else match[2]
        found[int(match[1])] = (description, text)
    versions = sorted(found)
    if versions != list(range(BASE_VERSION, BASE_VERSION + len(versions))):
        raise ValueError(f"{package}: migration versions {versions} are not 1, 2, 3...")
    unknown = set(hooks) - set(versions[1:])
    if unknown:
        raise ValueError(f"{package}: hooks for versions without a file: {sorted(unknown)}")
    steps: list[Migration] = []
    for version in versions[1:]:
        description, text = found[version]
        hook = hooks.get(version)
        step: Step = text if hook is None else _bind(hook, text)
        steps.append(Migration(version, description, step))
    return Layout(found[BASE_VERSION][1], steps)


def _bind(hook: Hook, text: str) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        hook(conn, text)

    step.__name__ = getattr(hook, "__name__", "hook")
    return step


class Schema(Protocol):
    """What ``prepare`` needs from a dialect: its layout and how to read and change a
    database's state. ``inspect`` says ``"empty"``, ``"ours"`` (any version of ours, read from
    the meta table by ``version``) or raises for a database that is not ours."""

    layout: Layout
    begin_exclusive: str  # a transaction that serializes processes migrating one database

    def run(self, conn: Connection, step: Step) -> None: ...

    def inspect(self, conn: Connection, path: str) -> str: ...

    def version(self, conn: Connection) -> object: ...

    def set_version(self, conn: Connection, version: int) -> None: ...

    def before_create(self, conn: Connection, in_memory: bool) -> None: ...


def latest(schema: Schema) -> int:
    steps = schema.layout.migrations
    return steps[-1].version if steps else BASE_VERSION


def state(schema: Schema, conn: Connection, path: str) -> str:
    """``"empty"``, ``"ours"`` (current version), ``"old"`` (a version a migration
    upgrades), or raise ``SchemaVersionError`` for anything else."""
    found = schema.inspect(conn, path)
    if found == "empty":
        return found
    version = schema.version(conn)
    newest = latest(schema)
    if isinstance(version, int) and not isinstance(version, bool):
        if version == newest:
            return "ours"
        if BASE_VERSION <= version < newest:
            return "old"
    newer = isinstance(version, int) and version > newest
    raise SchemaVersionError(
        f"{path!r} has jobqueue schema version {version!r} but this jobqueue "
        f"understands versions up to {newest}; "
        + (
            "upgrade jobqueue to open it (migrations only go forward)"
            if newer
            else "it was not written by a released jobqueue; refusing to change it"
        )
    )


def apply(
    schema: Schema, conn: Connection, path: str, found: str, *, in_memory: bool, log: logging.Logger
) -> None:
    """Create the schema in an empty database or migrate an older one up to the latest
    version, ``found`` being its ``state`` (a current one is left alone). One transaction per
    step: ``begin_exclusive`` serializes processes racing to create or migrate the same
    database, and the re-check inside the transaction makes the one that waited see the
    other's work instead of applying it twice. A failed step raises ``SchemaVersionError``
    and is rolled back."""
    if found == "ours":
        return
    if found == "empty":
        schema.before_create(conn, in_memory)  # e.g. SQLite's WAL: before the transaction
    applied = 0
    while True:
        conn.execute(schema.begin_exclusive)
        try:
            found = state(schema, conn, path)
            if found == "empty":
                _create(schema, conn)
            elif found == "old":
                _migrate_one(schema, conn, path, log)
                applied += 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if found == "empty":
            log.info("%s: created the jobqueue schema at version %d", path, latest(schema))
        if found != "old":
            if found == "ours" and not applied:
                log.debug("%s: another process brought the schema up to date first", path)
            return


def _create(schema: Schema, conn: Connection) -> None:
    """A new database: the base then every step, in one transaction, so it is built exactly
    as an upgraded one and is never seen at an intermediate version."""
    schema.run(conn, schema.layout.base)
    for migration in schema.layout.migrations:
        schema.run(conn, migration.step)
    schema.set_version(conn, latest(schema))


def _migrate_one(schema: Schema, conn: Connection, path: str, log: logging.Logger) -> None:
    """Apply the next step of an older database, with its version bump, in the caller's
    transaction; a failure leaves the database as it was (the caller rolls back)."""
    current = schema.version(conn)
    assert isinstance(current, int)  # state() said "old", so it is a known version
    migration = next(m for m in schema.layout.migrations if m.version > current)
    log.info(
        "%s: migrating the jobqueue schema from version %d to %d (%s)",
        path,
        current,
        migration.version,
        migration.description,
    )
    try:
        schema.run(conn, migration.step)
        schema.set_version(conn, migration.version)
    except Exception as exc:
        raise SchemaVersionError(
            f"{path!r}: migration {migration.version} of the jobqueue schema "
            f"({migration.description}) failed: {exc}. It was rolled back: the file is "
            f"unchanged, still at version {current}"
        ) from exc
