"""Run by test_sqlite_migrations in real child processes: open an old file once, report.

    python sqlite_migrate_worker.py PATH HOLD_SECONDS

Prints ``ready`` and waits for a line on stdin (the parent releases every child at once: a
barrier, not a sleep), opens the SQLite backend on PATH, and prints one JSON line: the
migrations this process applied and the version and job ids it then sees. A migration that
this process applies keeps its transaction open HOLD_SECONDS longer, so the other process is
certainly queued on the write lock meanwhile rather than arriving after the commit.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import time

from jobqueue.backends.sqlite import SQLiteBackend
from jobqueue.backends.sqlite.dialect import SQLITE


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main() -> None:
    path, hold = sys.argv[1], float(sys.argv[2])
    steps = list(SQLITE.layout.migrations)
    for n, migration in enumerate(steps):

        def held(conn: sqlite3.Connection, sql: object = migration.step) -> None:
            SQLITE.run(conn, sql)  # type: ignore[arg-type]
            time.sleep(hold)

        steps[n] = migration._replace(step=held)
    SQLITE.layout = SQLITE.layout._replace(migrations=steps)
    collect = Collect()
    logger = logging.getLogger("jobqueue.backends.sqlite")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(collect)
    print("ready", flush=True)
    sys.stdin.readline()
    backend = SQLiteBackend(path)
    backend.close()
    conn = sqlite3.connect(path)
    (version,) = conn.execute(
        "SELECT value FROM jobqueue_meta WHERE key = 'schema_version'"
    ).fetchone()
    ids = [row[0] for row in conn.execute("SELECT id FROM jobqueue_jobs ORDER BY id")]
    conn.close()
    report = {
        "migrated": [m for m in collect.messages if "migrating" in m],
        "waited": [m for m in collect.messages if "another process" in m],
        "version": version,
        "ids": ids,
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
