"""The SQLite schema as history: the base layout (version 1) and the ordered steps after it.

Every file, new or old, is built by the same steps: a new database gets ``BASE_SCHEMA`` and then
every migration, an old one only the migrations it lacks. New and upgraded files are therefore
the same by construction (``test_sqlite_migrations`` also checks it against a real version-1
file). Migrations are forward-only: there is no down step, and a file written by a newer
jobqueue is refused rather than guessed at.

To change the layout, append a ``Migration`` whose ``version`` is one more than the last and
bump ``schema.SCHEMA_VERSION``; never edit a released step, since files already carry its
effect.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import NamedTuple

from jobqueue.backends.sqlite import foreign

BASE_VERSION = 1

APPLICATION_ID = 0x4A6F6251  # "JobQ": marks the file as ours in the SQLite header itself

# Exactly what version 1 created; files in the field carry it, so it never changes.
# Partial indexes keep every hot query an index seek whatever the table size: the claim reads
# the first entry of (name, priority, seq) among waiting jobs only; promotion reads due delayed
# jobs; recovery reads expired leases; retention reads the oldest finished jobs.
BASE_SCHEMA = f"""
CREATE TABLE jobqueue_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO jobqueue_meta (key, value) VALUES ('schema_version', {BASE_VERSION}), ('seq', 0),
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

# Version 2: what the control plane (pause, live dispatchers, cancel, attempt history) stores.
#
# Every step here is O(1) in the number of jobs except the CHECK of the new column, which
# SQLite verifies against existing rows in one read-only pass. The states are guarded by
# triggers rather than a CHECK on ``state``: SQLite cannot add a constraint to an existing
# table, and rebuilding ``jobqueue_jobs`` (copy every row, recreate its indexes and triggers)
# would hold the write lock for minutes on a file with millions of jobs, stopping every
# dispatcher. The guard matters because the count triggers silently skip a state they do not
# know, so a stray value would make the counts drift instead of failing.
#
# ``cancelled`` is a finished state: a cancelled job gets ``finished_at`` like completed and
# failed ones, which is what the ``jobqueue_finished_*`` partial indexes and retention select
# on, and it frees its ``unique_key`` (``jobqueue_unique`` lists only live states). The job-id
# counter is seeded from ``seq``, which was above every id handed out before ids had their own
# counter (files from before that have no ``job_id`` row); ``MAX`` with the highest id keeps
# it above the ids present even if ``seq`` were ever behind.
MIGRATION_2 = """
CREATE TABLE jobqueue_paused (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE jobqueue_dispatchers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    names TEXT NOT NULL, -- JSON list of worker names
    concurrency INTEGER NOT NULL,
    started_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX jobqueue_dispatchers_expiry ON jobqueue_dispatchers (expires_at);
ALTER TABLE jobqueue_jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0
    CHECK (cancel_requested IN (0, 1));
ALTER TABLE jobqueue_jobs ADD COLUMN dispatcher TEXT;
ALTER TABLE jobqueue_jobs ADD COLUMN history TEXT;
INSERT OR IGNORE INTO jobqueue_counts (state, n) VALUES ('cancelled', 0);
CREATE TRIGGER jobqueue_state_insert BEFORE INSERT ON jobqueue_jobs
    WHEN new.state NOT IN ('waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled')
    BEGIN SELECT RAISE(ABORT, 'jobqueue_jobs.state is not a job state'); END;
CREATE TRIGGER jobqueue_state_update BEFORE UPDATE OF state ON jobqueue_jobs
    WHEN new.state NOT IN ('waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled')
    BEGIN SELECT RAISE(ABORT, 'jobqueue_jobs.state is not a job state'); END;
INSERT OR IGNORE INTO jobqueue_meta (key, value)
    SELECT 'job_id', MAX(value, (SELECT COALESCE(MAX(id), 0) FROM jobqueue_jobs))
    FROM jobqueue_meta WHERE key = 'seq';
"""

# Version 3: the job ids a dispatcher reported in its last heartbeat (``DispatcherInfo.jobs``).
#
# They cannot be derived from ``jobqueue_jobs.dispatcher``: that column names the dispatcher
# that *claimed* a job, while a heartbeat reports the leases its sender holds now (claimed
# ahead, running, or finished and not yet recorded), which the contract keeps apart. Adding a
# column with a constant default is O(1) in SQLite: existing rows are not rewritten.
MIGRATION_3 = """
-- A JSON list of job ids, like ``names`` a JSON list of worker names.
ALTER TABLE jobqueue_dispatchers ADD COLUMN jobs TEXT NOT NULL DEFAULT '[]';
"""

# Version 4: which call ended a job's last lease, and with which token (``"<call> <token>"``,
# the call one of complete, fail, release, finish_cancelled), so that repeating that call with
# that token reports its outcome instead of failing (outcomes are idempotent per lease token).
# ``lease_token`` cannot keep it: it is cleared as the lease ends, and a kept token would not
# say which call ended the lease. A claim or a retry clears it; NULL on existing rows is
# right (their repeats were refused before, and stay refused).
MIGRATION_4 = """
ALTER TABLE jobqueue_jobs ADD COLUMN ended_lease TEXT;
"""

# Version 5: finished attempts per minute by outcome (``Reads.outcome_counts``, for throughput
# charts). The transition that finishes an attempt counts it in its own transaction (one
# upsert per outcome kind); ``maintain`` deletes the minutes older than the policy keeps, so
# the table holds at most a day and an hour of minutes, four rows each. The primary key leads
# with the minute, so both the upsert and the trimming are seeks; WITHOUT ROWID keeps each row
# in the key itself. A new table with its constraints is O(1) in the number of jobs.
MIGRATION_5 = """
CREATE TABLE jobqueue_outcomes (
    minute INTEGER NOT NULL, -- floor(unix seconds / 60) on the backend's clock
    outcome TEXT NOT NULL CHECK (outcome IN ('completed', 'failed', 'retried', 'cancelled')),
    count INTEGER NOT NULL CHECK (count > 0),
    PRIMARY KEY (minute, outcome)
) WITHOUT ROWID;
"""


# Version 6: periodic schedules (``Transitions.claim_tick``): one row per schedule with its
# high-water mark (``last_tick``: a claim of a tick at or before it changes nothing, which is
# what lets any number of schedulers run), and its recent ticks, trimmed to the newest
# ``policy.SCHEDULE_TICKS_KEPT`` by the claim that adds one, in its own transaction. Job ids
# are kept as the jobs table's integers, without a foreign key: a job removed by retention or
# a purge leaves its id behind, which simply names no live job. The tick table's key leads
# with the schedule, so the trim and a record's read are seeks. New tables with their
# constraints are O(1) in the number of jobs.
MIGRATION_6 = """
CREATE TABLE jobqueue_schedules (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL, -- canonical JSON ('' until the first claim)
    last_tick REAL, -- the high-water mark; NULL before the first tick
    last_job_id INTEGER, -- the job of the last SUBMITTED tick (it may be gone since)
    paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    missed INTEGER NOT NULL DEFAULT 0 CHECK (missed >= 0),
    skipped INTEGER NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE jobqueue_schedule_ticks (
    schedule TEXT NOT NULL,
    tick REAL NOT NULL,
    outcome TEXT NOT NULL
        CHECK (outcome IN ('submitted', 'recorded', 'overlap_skipped', 'paused')),
    job_id INTEGER,
    PRIMARY KEY (schedule, tick)
) WITHOUT ROWID;
"""

# Version 7: counts per worker name and state, kept by triggers like ``jobqueue_counts``, so
# ``count_by_name`` (the dashboard's overview, the metrics' gauges) reads a few rows instead
# of grouping the whole table (0.55 s with a million jobs). A job's name never changes, so
# only inserts, deletes and state changes move them. Seeding them is one read of the table,
# once, inside the migration's transaction.
MIGRATION_7 = """
CREATE TABLE jobqueue_name_counts (
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (name, state)
) WITHOUT ROWID;
INSERT INTO jobqueue_name_counts (name, state, n)
    SELECT name, state, COUNT(*) FROM jobqueue_jobs GROUP BY name, state;
CREATE TRIGGER jobqueue_name_count_insert AFTER INSERT ON jobqueue_jobs BEGIN
    INSERT INTO jobqueue_name_counts (name, state, n) VALUES (new.name, new.state, 1)
        ON CONFLICT (name, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobqueue_name_count_delete AFTER DELETE ON jobqueue_jobs BEGIN
    UPDATE jobqueue_name_counts SET n = n - 1 WHERE name = old.name AND state = old.state;
END;
CREATE TRIGGER jobqueue_name_count_update AFTER UPDATE OF state ON jobqueue_jobs
    WHEN old.state IS NOT new.state BEGIN
    UPDATE jobqueue_name_counts SET n = n - 1 WHERE name = old.name AND state = old.state;
    INSERT INTO jobqueue_name_counts (name, state, n) VALUES (new.name, new.state, 1)
        ON CONFLICT (name, state) DO UPDATE SET n = n + 1;
END;
"""

# Version 8: the waiting jobs of every name in run order (priority, then age), as
# ``list_jobs(WAITING)`` and queue latency read them. ``jobqueue_waiting`` leads with the name
# (claims are per name), so a listing across names sorted the whole waiting set: 60 ms for a
# page with a million jobs waiting. Building the index is one pass over the waiting rows.
MIGRATION_8 = """
CREATE INDEX jobqueue_waiting_order ON jobqueue_jobs (priority DESC, seq)
    WHERE state = 'waiting';
"""

# Version 9: every plain column of the jobs table checked for its SQLite type, so a value
# written by anything but jobqueue (a text ``priority`` sorts before every number and crashed
# each claim) is refused by the write itself with an IntegrityError. SQLite cannot add a
# CHECK to a table, so the table is rebuilt the way its documentation prescribes (a new table,
# every row copied, the old one dropped, the new one renamed) and its indexes and triggers,
# whatever earlier steps made, are recreated from their own SQL. Rows that would not fit are
# made to fit first (``foreign.fail_foreign_typed_rows``: a live job among them fails as
# corrupt with its reason). The rebuild holds the write lock for one pass over the table and
# its indexes, once (7 s for a million jobs on a busy 2-core machine, 0.6 s for 100,000);
# ``typeof`` rather than STRICT keeps the file readable by SQLite older than 3.37. The JSON
# columns stay unchecked: decoding them is their check.
MIGRATION_9_TABLE = """
CREATE TABLE jobqueue_jobs_v9 (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL CHECK (typeof(name) = 'text'),
    state TEXT NOT NULL
        CHECK (state IN ('waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled')),
    priority INTEGER NOT NULL CHECK (typeof(priority) = 'integer'),
    seq INTEGER NOT NULL CHECK (typeof(seq) = 'integer'),
    run_at REAL NOT NULL CHECK (typeof(run_at) = 'real'),
    lease_token TEXT CHECK (typeof(lease_token) IN ('text', 'null')),
    lease_expires_at REAL CHECK (typeof(lease_expires_at) IN ('real', 'null')),
    unique_key TEXT CHECK (typeof(unique_key) IN ('text', 'null')),
    attempts INTEGER NOT NULL CHECK (typeof(attempts) = 'integer'),
    attempts_made INTEGER NOT NULL CHECK (typeof(attempts_made) = 'integer'),
    stalls INTEGER NOT NULL CHECK (typeof(stalls) = 'integer'),
    created_at REAL NOT NULL CHECK (typeof(created_at) = 'real'),
    started_at REAL CHECK (typeof(started_at) IN ('real', 'null')),
    finished_at REAL CHECK (typeof(finished_at) IN ('real', 'null')),
    progress REAL NOT NULL CHECK (typeof(progress) = 'real'),
    progress_message TEXT CHECK (typeof(progress_message) IN ('text', 'null')),
    title TEXT CHECK (typeof(title) IN ('text', 'null')),
    timeout REAL CHECK (typeof(timeout) IN ('real', 'null')),
    backoff TEXT NOT NULL,
    data TEXT NOT NULL,
    result TEXT,
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    dispatcher TEXT CHECK (typeof(dispatcher) IN ('text', 'null')),
    history TEXT,
    ended_lease TEXT CHECK (typeof(ended_lease) IN ('text', 'null'))
)
"""

MIGRATION_9_COLUMNS = (
    "id, name, state, priority, seq, run_at, lease_token, lease_expires_at, unique_key, "
    "attempts, attempts_made, stalls, created_at, started_at, finished_at, progress, "
    "progress_message, title, timeout, backoff, data, result, error, cancel_requested, "
    "dispatcher, history, ended_lease"
)


def migration_9(conn: sqlite3.Connection) -> None:
    foreign.fail_foreign_typed_rows(conn, time.time())  # the host's clock: no backend here
    kept = [
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'jobqueue_jobs' "
            "AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY rowid"
        )
    ]
    conn.execute(MIGRATION_9_TABLE)
    conn.execute(
        f"INSERT INTO jobqueue_jobs_v9 ({MIGRATION_9_COLUMNS}) "
        f"SELECT {MIGRATION_9_COLUMNS} FROM jobqueue_jobs"
    )
    conn.execute("DROP TABLE jobqueue_jobs")  # its indexes and triggers go with it
    conn.execute("ALTER TABLE jobqueue_jobs_v9 RENAME TO jobqueue_jobs")
    for sql in kept:
        conn.execute(sql)


class Migration(NamedTuple):
    """One step: after it the file is at ``version``. ``step`` is SQL (one or more
    statements) or a callable given the connection, inside the step's transaction."""

    version: int
    description: str
    step: str | Callable[[sqlite3.Connection], None]


MIGRATIONS: list[Migration] = [
    Migration(
        2,
        "control plane: paused names, dispatchers, cancel requests, attempt history, "
        "the cancelled state, the job-id counter",
        MIGRATION_2,
    ),
    Migration(3, "the jobs each dispatcher holds, as its last heartbeat said", MIGRATION_3),
    Migration(4, "the call and token that ended each job's last lease", MIGRATION_4),
    Migration(5, "finished attempts per minute by outcome (throughput)", MIGRATION_5),
    Migration(6, "periodic schedules: their high-water marks and recent ticks", MIGRATION_6),
    Migration(7, "job counts per worker name and state, kept by triggers", MIGRATION_7),
    Migration(8, "the waiting jobs of every name in run order (listings)", MIGRATION_8),
    Migration(9, "the jobs table checks the type of every plain column", migration_9),
]


def run(conn: sqlite3.Connection, step: str | Callable[[sqlite3.Connection], None]) -> None:
    """Apply ``step`` on ``conn`` inside the caller's transaction (never ``executescript``,
    which would commit first)."""
    if callable(step):
        step(conn)
        return
    for statement in statements(step):
        conn.execute(statement)


def statements(script: str) -> list[str]:
    """Split a script into statements (triggers contain ';' so use sqlite3's own parser)."""
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
