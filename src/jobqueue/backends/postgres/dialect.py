"""What PostgreSQL does differently from the SQL family's shared store (``jobqueue.backends.sql``).

- Statements: the family's texts with ``%s`` placeholders; the claim's head is read
  ``FOR UPDATE SKIP LOCKED`` (a seek in the partial index ``jobqueue_waiting``, in run order).
  Upserts, ``RETURNING``-free writes and everything else are the family's own SQL, which
  PostgreSQL runs as written.
- The schema: ``migrations/NNNN_name.sql`` in a PostgreSQL schema of the queue's own
  (``jobqueue`` by default, ``?schema=`` to choose); ``sql.migrate`` applies them, each step in
  one transaction under ``pg_advisory_xact_lock`` (the same lock every write transaction of
  the schema takes), so many processes starting at once migrate it once.
- Errors: what a psycopg error means for the caller (``translate``).

Concurrency (schema version 2): the hot paths -- a submit without a unique key, a claim, a
lease holder's outcomes -- run side by side, locking only the rows they decide on (claims
``FOR UPDATE SKIP LOCKED``, guards and holders ``FOR UPDATE``) and writing no row every writer
updates (``SEQ_BLOCK``: the order counter in blocks from a sequence; ``RESERVE_IDS``: job ids
reserved by submitters alone; counts appended per statement). The rest takes the schema's
transaction-level advisory lock first (``begin_write(exclusive=True)``), as SQLite's
``BEGIN IMMEDIATE`` takes its file's write lock: what it reads cannot change before it writes.
Reads never lock (``REPEATABLE READ`` snapshots).

Submits (schema version 3): one call of the server-side function ``jobqueue_submit`` in
autocommit (``.submit``), which reserves the ids, takes a seq block and inserts; a large
batch without unique keys is a transaction of the store's whose ``BEGIN`` reserves them
(``begin_write``), then ``COPY``.
"""

from __future__ import annotations

import zlib

import psycopg

from jobqueue.backends.sql import migrate
from jobqueue.backends.sql.dialect import Connection
from jobqueue.backends.sql.migrate import Layout, Step
from jobqueue.backends.sql.rows import JOB_COLUMNS
from jobqueue.backends.sql.statements import HELD_COLUMNS, Statements
from jobqueue.errors import (
    BackendError,
    BackendFullError,
    BackendUnavailableError,
    SchemaVersionError,
)
from jobqueue.ids import clock_floor

LOCK_CLASS = 0x4A6F6251  # "JobQ": the first key of every advisory lock jobqueue takes
LOCK_WAIT = 30

_CLAIMED = ", ".join(f"j.{column}" for column in JOB_COLUMNS.split(", "))

# A claim's tail (``CLAIM_HEADS``, ``CLAIM_SEEK``): the rows ``picked`` claimed and returned
# in run order (``n``), each with the priority and seq it had while waiting (the claim cursor's
# position, ``sql.claim_cursor``) and its logs. Parameters: started_at, the tokens (an array,
# the n-th for the n-th job), lease deadline, the first seq, dispatcher.
_CLAIM_PICKED = (
    "head AS (SELECT id, priority, seq, row_number() OVER (ORDER BY priority DESC, seq) AS n "
    "FROM picked) "
    "UPDATE jobqueue_jobs AS j SET state = 'active', attempts_made = j.attempts_made + 1, "
    "started_at = ?, lease_token = (?::text[])[head.n], lease_expires_at = ?, "
    "seq = ? + head.n - 1, dispatcher = ?, ended_lease = NULL FROM head "
    f"WHERE j.id = head.id RETURNING head.n, head.priority, head.seq, {_CLAIMED}, "
    "(SELECT array_agg(l.at ORDER BY l.id) FROM jobqueue_logs l WHERE l.job_id = j.id), "
    "(SELECT array_agg(l.message ORDER BY l.id) FROM jobqueue_logs l WHERE l.job_id = j.id)"
)

OVERRIDES = {
    # A claim of one name's first ``count`` waiting jobs in one statement (``store._claim``):
    # the heads locked as they are read (skipping other transactions' locked rows), then
    # ``_CLAIM_PICKED``. Parameters: name, count, then the tail's.
    "CLAIM_HEADS": (
        "WITH picked AS (SELECT id, priority, seq FROM jobqueue_jobs WHERE state = 'waiting' "
        "AND name = ? ORDER BY priority DESC, seq LIMIT ? FOR UPDATE SKIP LOCKED), " + _CLAIM_PICKED
    ),
    # The same claim seeking past the claim cursor (``sql.claim_cursor``: claims that stay
    # fast while a long transaction keeps dead entries at the index's head): up to ``count``
    # jobs from each range (tops, bottoms, afters: three arrays), each range a seek in
    # ``jobqueue_waiting`` locked as it is read, the first ``count`` of them all in run order
    # claimed (the rest unlocked at commit). Parameters: the three arrays, name, count, count,
    # then the tail's.
    "CLAIM_SEEK": (
        "WITH picked AS (SELECT c.id, c.priority, c.seq FROM unnest(?::bigint[], ?::bigint[], "
        "?::bigint[]) AS r(top, bottom, after) CROSS JOIN LATERAL (SELECT id, priority, seq "
        "FROM jobqueue_jobs WHERE state = 'waiting' AND name = ? AND priority <= r.top "
        "AND priority >= r.bottom AND seq > r.after ORDER BY priority DESC, seq LIMIT ? "
        "FOR UPDATE SKIP LOCKED) AS c ORDER BY c.priority DESC, c.seq LIMIT ?), " + _CLAIM_PICKED
    ),
    # The claim's head, locked as it is read: a claim in another transaction skips it
    # instead of queueing behind it.
    "WAITING_HEAD": (
        "SELECT priority, seq, id FROM jobqueue_jobs WHERE state = 'waiting' "
        "AND name = ? ORDER BY priority DESC, seq LIMIT 1 FOR UPDATE SKIP LOCKED"
    ),
    "WAITING_HEADS": (
        "SELECT priority, seq, id FROM jobqueue_jobs WHERE state = 'waiting' "
        "AND name = ? ORDER BY priority DESC, seq LIMIT ? FOR UPDATE SKIP LOCKED"
    ),
    # ... and seeking past the claim cursor, as ``CLAIM_SEEK`` (two names served: a head each).
    # Parameters: the three arrays, name.
    "WAITING_HEAD_SEEK": (
        "SELECT c.priority, c.seq, c.id FROM unnest(?::bigint[], ?::bigint[], ?::bigint[]) "
        "AS r(top, bottom, after) CROSS JOIN LATERAL (SELECT priority, seq, id "
        "FROM jobqueue_jobs WHERE state = 'waiting' AND name = ? AND priority <= r.top "
        "AND priority >= r.bottom AND seq > r.after ORDER BY priority DESC, seq LIMIT 1 "
        "FOR UPDATE SKIP LOCKED) AS c ORDER BY c.priority DESC, c.seq LIMIT 1"
    ),
    # A bulk submit's rows as one array per column: one statement, parsed once (a VALUES list
    # of 500 rows is 12,000 placeholders for the driver to parse on every call), sent in
    # binary (``%b``: no quoting of every text in the arrays).
    # Writers side by side (migration 2): the order counter in blocks from a sequence, job ids
    # reserved by one UPDATE (parameters: how many, the clock floor of the last), rows read
    # for a guard locked as they are read.
    "SEQ_BLOCK": "SELECT nextval('jobqueue_seq_blocks')",
    "RESERVE_IDS": (
        "UPDATE jobqueue_meta SET value = greatest(value + ?, ?) WHERE key = 'job_id' "
        "RETURNING value"
    ),
    "GUARD_ROW": (
        f"SELECT {HELD_COLUMNS}, stalls, state, lease_token, lease_expires_at, ended_lease, "
        "unique_key FROM jobqueue_jobs WHERE id = ? FOR UPDATE"
    ),
    "HOLDER": (
        f"SELECT {HELD_COLUMNS} FROM jobqueue_jobs "
        "WHERE id = ? AND lease_token = ? AND lease_expires_at > ? FOR UPDATE"
    ),
    "DUE_DELAYED": (
        "SELECT id FROM jobqueue_jobs WHERE state = 'delayed' AND run_at <= ? "
        "ORDER BY run_at, seq LIMIT ? FOR UPDATE SKIP LOCKED"
    ),
    "INSERT_JOBS_COLUMNAR": (
        "INSERT INTO jobqueue_jobs (id, name, state, priority, seq, run_at, unique_key, "
        "attempts, attempts_made, stalls, created_at, started_at, finished_at, progress, "
        "progress_message, title, timeout, backoff, data, result, error, cancel_requested, "
        "dispatcher, history) SELECT * FROM unnest(%b::bigint[], %b::text[], %b::text[], "
        "%b::bigint[], %b::bigint[], %b::float8[], %b::text[], %b::bigint[], %b::bigint[], "
        "%b::bigint[], %b::float8[], %b::float8[], %b::float8[], %b::float8[], %b::text[], "
        "%b::text[], %b::float8[], %b::text[], %b::text[], %b::text[], %b::text[], %b::smallint[], "
        "%b::text[], %b::text[])"
    ),
    # Counts are sums of per-statement deltas (migration 2), folded by maintenance.
    "NAME_COUNTS": (
        "SELECT name, state, sum(n) FROM jobqueue_count_deltas GROUP BY name, state "
        "HAVING sum(n) > 0"
    ),
    "STATE_COUNT": "SELECT coalesce(sum(n), 0) FROM jobqueue_count_deltas WHERE state = ?",
    "FOLD_COUNTS": (
        "WITH folded AS (DELETE FROM jobqueue_count_deltas RETURNING name, state, n) "
        "INSERT INTO jobqueue_count_deltas (name, state, n) SELECT name, state, sum(n) "
        "FROM folded GROUP BY name, state HAVING sum(n) <> 0"
    ),
}

STATEMENTS = Statements(OVERRIDES, placeholder="%s")
LAYOUT = migrate.load("jobqueue.backends.postgres", "migrations")
SCHEMA_VERSION = LAYOUT.migrations[-1].version if LAYOUT.migrations else migrate.BASE_VERSION
"""The version this jobqueue writes: the last of ``migrations/``."""


WRITE_LIMITS = (
    f"SET LOCAL lock_timeout = '{LOCK_WAIT}s'; "
    f"SET LOCAL idle_in_transaction_session_timeout = '{LOCK_WAIT}s'"
)
"""A writer waits at most ``LOCK_WAIT`` for the schema's lock (then the call fails as
unavailable, to be retried), and a writer that stalls inside its transaction (a stopped
process) loses its connection, and the lock, after as long: no stuck client holds every
other writer up for good."""


def lock_key(schema: str) -> tuple[int, int]:
    """The advisory lock of ``schema``'s writers: (``LOCK_CLASS``, a hash of the name)."""
    crc = zlib.crc32(schema.encode())
    return LOCK_CLASS, crc - (1 << 32) if crc >= 1 << 31 else crc


class PostgresDialect:
    """PostgreSQL as the store sees it (``sql.dialect.Dialect``) and as ``migrate`` does
    (``migrate.Schema``), for one schema."""

    name = "postgres"
    integrity_error = psycopg.IntegrityError
    error = psycopg.Error
    sql = STATEMENTS
    layout: Layout = LAYOUT

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.quoted = f'"{schema}"'  # checked: [a-z0-9_] only (``url.check_schema``)
        self.channel = f"jobqueue.{schema}"
        classid, objid = lock_key(schema)
        self.lock = f"pg_advisory_xact_lock({classid}, {objid})"
        self.use_schema = f"SET LOCAL search_path TO {self.quoted}"
        # One round trip each: a simple query of several statements.
        self.begin_exclusive = f"BEGIN; SELECT {self.lock}; {self.use_schema}"
        self._begin = f"BEGIN; {self.use_schema}; {WRITE_LIMITS}; "
        self._take_lock = f"SELECT {self.lock}; "
        self.begin_read = f"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {self.use_schema}"

    def begin_write(self, *, exclusive: bool, ids: int) -> str:
        """One simple query: a write transaction in the schema, holding the schema's lock
        when ``exclusive``; its last result is the server's clock, this transaction's block
        of the order counter (``SEQ_BLOCK``), and the last of ``ids`` job ids reserved for it
        (``RESERVE_IDS``; ``NULL`` when none). The lock is taken first, in a statement of its
        own: whoever holds it never waits for a submitter that waits for it."""
        reserve = "NULL::bigint"
        cte = ""
        if ids > 0:
            floor = clock_floor() + ids - 1
            cte = (
                f"WITH ids AS (UPDATE jobqueue_meta SET value = greatest(value + {int(ids)}, "
                f"{int(floor)}) WHERE key = 'job_id' RETURNING value) "
            )
            reserve = "(SELECT value FROM ids)"
        return (
            self._begin
            + (self._take_lock if exclusive else "")
            + f"{cte}SELECT extract(epoch FROM clock_timestamp())::float8, "
            + f"nextval('jobqueue_seq_blocks'), {reserve}"
        )

    # -- migrate.Schema ------------------------------------------------------------------------

    def run(self, conn: Connection, step: Step) -> None:
        """Apply ``step`` inside the caller's transaction (``search_path`` is the schema)."""
        if callable(step):
            step(conn)
        else:
            conn.execute(step)  # no parameters: one simple query, however many statements

    def inspect(self, conn: Connection, path: str) -> str:
        """``"empty"`` (no ``jobqueue_*`` table in the schema: other tables may live beside
        ours) or ``"ours"``; raises for ``jobqueue_*`` tables without our meta table."""
        tables = sorted(
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') "
                "AND left(c.relname, 9) = 'jobqueue_'",
                (self.schema,),
            )
        )
        if not tables:
            return "empty"
        if "jobqueue_meta" not in tables:
            raise SchemaVersionError(
                f"{path}: holds tables named like jobqueue's ({', '.join(tables[:8])}) but no "
                "jobqueue_meta; refusing to touch them. Choose another ?schema="
            )
        return "ours"

    def version(self, conn: Connection) -> object:
        row = conn.execute(
            f"SELECT value FROM {self.quoted}.jobqueue_meta WHERE key = 'schema_version'"
        ).fetchone()
        return None if row is None else int(row[0])

    def set_version(self, conn: Connection, version: int) -> None:
        conn.execute(
            f"UPDATE {self.quoted}.jobqueue_meta SET value = %s WHERE key = 'schema_version'",
            (version,),
        )

    def before_create(self, conn: Connection, in_memory: bool) -> None:
        """The schema itself, under the lock in a transaction of its own (``CREATE SCHEMA``
        only when missing: a user without the right to create one may be handed one)."""
        conn.execute(
            f"BEGIN; SELECT {self.lock}; DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_namespace "
            f"WHERE nspname = '{self.schema}') THEN CREATE SCHEMA {self.quoted}; END IF; END $$; "
            "COMMIT"
        )


# -- errors ------------------------------------------------------------------------------------

_FULL = ("53100", "53200")  # disk_full, out_of_memory
_RETRY_CLASSES = ("08", "53", "57", "40", "55")  # connection, resources, shutdown, serialization
_RETRY_STATES = ("25006",)  # read_only_sql_transaction: a standby (a failover under way)


def translate(exc: Exception, where: str) -> BackendError:
    """A psycopg error as the project's ``BackendError`` family: full, unavailable (retry),
    or a failure of the operation itself."""
    state = getattr(exc, "sqlstate", None) or ""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if state in _FULL:
        return BackendFullError(
            f"PostgreSQL {where} is out of room ({text}); nothing of this call was stored. "
            "Jobs already stored can still be read"
        )
    if "NUL (0x00)" in text or state == "22P05":  # 22P05: a \u0000 in JSON text sent
        return BackendError(
            f"PostgreSQL text cannot hold NUL characters (\\x00): nothing was stored in "
            f"{where}; remove them from the names, titles, unique keys or log messages"
        )
    retry = state[:2] in _RETRY_CLASSES or state in _RETRY_STATES
    if retry or isinstance(exc, psycopg.OperationalError):
        return BackendUnavailableError(f"PostgreSQL {where} is unavailable ({text}); retry")
    return BackendError(f"PostgreSQL operation on {where} failed: {text}")
