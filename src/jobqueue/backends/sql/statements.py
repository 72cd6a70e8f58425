"""Every statement of the SQL family's store, by name, in one place.

The texts are the family's SQL, written with ``?`` placeholders; a dialect makes its own set
with ``Statements(overrides, placeholder)``: an override replaces a statement whose SQL differs
in that dialect (the SQLite ones are in ``jobqueue.backends.sqlite.dialect``), and another
placeholder (``%s``) is put in for ``?`` once, here, not per call. Statements whose text
depends on an argument (a state's listing order, an ``IN`` list of n ids) are methods.

Every hot query is a seek in a partial index of the schema: the claim reads the first entries
of (priority, seq) among waiting jobs (for one or two names, of (name, priority, seq); see
``claims``); promotion due delayed jobs; ``expired`` expired leases; retention the oldest
finished jobs.
"""

from __future__ import annotations

from collections.abc import Mapping

from jobqueue.backends.sql.rows import FLOW_COLUMNS, JOB_COLUMNS
from jobqueue.job import LIVE_STATES, JobState

LIVE_SQL = ", ".join(sorted(f"'{state.value}'" for state in LIVE_STATES))
"""The live states (``JobState.is_live``: those holding a unique key) as an SQL list."""

HELD_COLUMNS = "id, attempts_made, dispatcher, started_at, history, cancel_requested"
SCHEDULE_COLUMNS = "name, definition, last_tick, last_job_id, paused, missed, skipped, updated_at"

_INSERT_JOB_COLUMNS = (
    "id, name, state, priority, seq, run_at, unique_key, attempts, attempts_made, stalls, "
    "created_at, started_at, finished_at, progress, progress_message, title, timeout, "
    "backoff, data, result, error, cancel_requested, dispatcher, history"
)

SEQ_BLOCK_SIZE = 1 << 20
"""Order numbers in one ``SEQ_BLOCK`` (PostgreSQL's sequence increments by it: migration 2)."""

INSERT_JOB_WIDTH = _INSERT_JOB_COLUMNS.count(",") + 1
INSERT_COLUMNS = _INSERT_JOB_COLUMNS
"""The columns a new job's row is written with (``rows.job_to_row``'s order)."""

# The listing order of each state, as its partial index keeps it (finished: by finish time).
_LIST_ORDER = {
    JobState.WAITING: "priority DESC, seq",
    JobState.DELAYED: "run_at, seq",
    JobState.ACTIVE: "lease_expires_at, id",
    JobState.BLOCKED: "seq",
}


class Statements:
    """One dialect's statements (attributes named as below, read per call)."""

    # -- counters (jobqueue_meta) and outcome counts --------------------------------------------
    READ_COUNTER = "SELECT value FROM jobqueue_meta WHERE key = ?"
    # A dialect whose writers run side by side sets these two (``transitions.Txn``): a block
    # of ``SEQ_BLOCK_SIZE`` order numbers, its first returned; job ids reserved (parameters:
    # how many, the clock floor of the last; returns the last). Empty: the counters above.
    SEQ_BLOCK = ""
    RESERVE_IDS = ""
    WRITE_SEQ = "UPDATE jobqueue_meta SET value = ? WHERE key = 'seq'"
    WRITE_JOB_ID = "UPDATE jobqueue_meta SET value = ? WHERE key = 'job_id'"
    COUNT_OUTCOMES = (  # qualified: PostgreSQL finds a bare ``count`` ambiguous
        "INSERT INTO jobqueue_outcomes (minute, outcome, count) VALUES (?, ?, ?) "
        "ON CONFLICT (minute, outcome) DO UPDATE "
        "SET count = jobqueue_outcomes.count + excluded.count"
    )
    FORGET_OUTCOMES = "DELETE FROM jobqueue_outcomes WHERE minute < ?"

    # -- jobs: storing, reading ---------------------------------------------------------------
    INSERT_JOB = (
        f"INSERT INTO jobqueue_jobs ({_INSERT_JOB_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    INSERT_FLOW_JOB = (  # a job of a flow: its flow columns too (``flows.store_flow``)
        f"INSERT INTO jobqueue_jobs ({_INSERT_JOB_COLUMNS}, {FLOW_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?, ?, ?)"
    )
    INSERT_JOBS_COLUMNAR = ""  # a dialect's insert of many rows given as one array per column
    INSERT_LOG = "INSERT INTO jobqueue_logs (job_id, at, message) VALUES (?, ?, ?)"
    TRIM_LOGS = (
        "DELETE FROM jobqueue_logs WHERE job_id = ? AND id <= (SELECT id FROM "
        "jobqueue_logs WHERE job_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"
    )
    JOB = f"SELECT {JOB_COLUMNS} FROM jobqueue_jobs WHERE id = ?"
    LIVE_WITH_KEY = (
        f"SELECT {JOB_COLUMNS} FROM jobqueue_jobs WHERE unique_key = ? AND state IN ({LIVE_SQL})"
    )
    JOB_STATE = "SELECT state FROM jobqueue_jobs WHERE id = ?"

    # -- claiming -----------------------------------------------------------------------------
    WAITING_HEAD = (
        "SELECT priority, seq, id FROM jobqueue_jobs WHERE state = 'waiting' "
        "AND name = ? ORDER BY priority DESC, seq LIMIT 1"
    )
    WAITING_HEADS = (  # the first ``count`` of one name: a batch claim's heads in one read
        "SELECT priority, seq, id FROM jobqueue_jobs WHERE state = 'waiting' "
        "AND name = ? ORDER BY priority DESC, seq LIMIT ?"
    )
    WAITING_ORDER = (  # a page of jobqueue_waiting_order: every name's waiting jobs in run order
        "SELECT name, priority, seq, id FROM jobqueue_jobs WHERE state = 'waiting' "
        "ORDER BY priority DESC, seq LIMIT ? OFFSET ?"
    )
    ACTIVE_COUNT = "SELECT count(*) FROM jobqueue_jobs WHERE state = 'active' AND name = ?"
    ACTIVE_COUNTS = "SELECT name, count(*) FROM jobqueue_jobs WHERE state = 'active' GROUP BY name"
    CLAIM = (  # the claim takes a fresh seq too
        "UPDATE jobqueue_jobs SET state = 'active', attempts_made = attempts_made + 1, "
        "started_at = ?, lease_token = ?, lease_expires_at = ?, seq = ?, dispatcher = ?, "
        "ended_lease = NULL WHERE id = ? AND state = 'waiting'"  # the last token is fenced
    )
    CLAIM_HEADS = ""  # a dialect's claim of one name's first jobs in one statement
    CLAIM_SEEK = ""  # the same seeking past the claim cursor (``claim_cursor``), where needed
    WAITING_HEAD_SEEK = ""  # ``WAITING_HEAD`` seeking past the claim cursor, with CLAIM_SEEK
    # The claim and the claimed job's read in one statement. ``state = 'waiting'`` again:
    # a candidate read without a lock (a scan across many names) may have been claimed by
    # another writer since; PostgreSQL re-checks the condition on the row it waited for.
    CLAIM_RETURNING = (
        "UPDATE jobqueue_jobs SET state = 'active', attempts_made = attempts_made + 1, "
        "started_at = ?, lease_token = ?, lease_expires_at = ?, seq = ?, dispatcher = ?, "
        f"ended_lease = NULL WHERE id = ? AND state = 'waiting' RETURNING {JOB_COLUMNS}"
    )
    PAUSED_NAMES = "SELECT name FROM jobqueue_paused"

    # -- lease holders ------------------------------------------------------------------------
    HOLDER = (
        f"SELECT {HELD_COLUMNS} FROM jobqueue_jobs "
        "WHERE id = ? AND lease_token = ? AND lease_expires_at > ?"
    )
    EXTEND = "UPDATE jobqueue_jobs SET lease_expires_at = ? WHERE id = ?"
    SET_PROGRESS_OF = "UPDATE jobqueue_jobs SET progress = ?, progress_message = ? WHERE id = ?"
    # The guarded write (``transitions.write``): one statement for every decided move. Each
    # column keeps its value unless told: COALESCE for a value given or NULL, a flag for a
    # column that may be set to NULL (so the row's large columns are never read back).
    GUARD_ROW = (
        f"SELECT {HELD_COLUMNS}, stalls, state, lease_token, lease_expires_at, ended_lease, "
        "unique_key FROM jobqueue_jobs WHERE id = ?"
    )
    MOVE = (
        "UPDATE jobqueue_jobs SET state = ?, run_at = COALESCE(?, run_at), "
        "seq = COALESCE(?, seq), "
        "lease_token = CASE WHEN ? THEN NULL ELSE lease_token END, "
        "lease_expires_at = CASE WHEN ? THEN NULL ELSE lease_expires_at END, "
        "dispatcher = CASE WHEN ? THEN NULL ELSE dispatcher END, "
        "attempts_made = COALESCE(?, attempts_made), stalls = COALESCE(?, stalls), "
        "cancel_requested = COALESCE(?, cancel_requested), "
        "finished_at = CASE WHEN ? THEN ? ELSE finished_at END, "
        "result = CASE WHEN ? THEN ? ELSE result END, "
        "error = CASE WHEN ? THEN ? ELSE error END, history = COALESCE(?, history), "
        "ended_lease = CASE WHEN ? THEN ? ELSE ended_lease END WHERE id = ?"
    )

    # A delivery (``Change.deliver``): what the receiving job's move depends on (the giving
    # job's state is ``JOB_STATE``); then its outcomes written.
    DELIVERY_ROW = "SELECT run_at, depends_on, dependency_outcomes FROM jobqueue_jobs WHERE id = ?"
    SET_OUTCOMES = "UPDATE jobqueue_jobs SET dependency_outcomes = ? WHERE id = ?"

    # -- maintenance --------------------------------------------------------------------------
    DUE_DELAYED = (
        "SELECT id FROM jobqueue_jobs WHERE state = 'delayed' AND run_at <= ? "
        "ORDER BY run_at, seq LIMIT ?"
    )
    PROMOTE_DUE = "UPDATE jobqueue_jobs SET state = 'waiting', seq = ? WHERE id = ?"
    STATE_COUNT = "SELECT n FROM jobqueue_counts WHERE state = ?"
    FOLD_COUNTS = ""  # where counts are deltas (PostgreSQL): fold them, in maintenance
    FIRST_FINISHED = (
        "SELECT id, finished_at FROM jobqueue_jobs WHERE state = ? "
        "AND finished_at IS NOT NULL ORDER BY seq LIMIT ?"
    )

    # -- the control plane --------------------------------------------------------------------
    KEY_HOLDER = (
        f"SELECT id FROM jobqueue_jobs WHERE unique_key = ? AND id != ? AND state IN ({LIVE_SQL})"
    )
    PAUSE = "INSERT INTO jobqueue_paused (name) VALUES (?) ON CONFLICT (name) DO NOTHING"
    RESUME = "DELETE FROM jobqueue_paused WHERE name = ?"
    UPSERT_DISPATCHER = (  # the record is replaced whole: the latest heartbeat is the truth
        "INSERT INTO jobqueue_dispatchers (id, host, pid, names, concurrency, started_at, "
        "last_seen, expires_at, jobs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO "
        "UPDATE SET host = excluded.host, pid = excluded.pid, names = excluded.names, "
        "concurrency = excluded.concurrency, started_at = excluded.started_at, "
        "last_seen = excluded.last_seen, expires_at = excluded.expires_at, jobs = excluded.jobs"
    )
    REMOVE_DISPATCHER = "DELETE FROM jobqueue_dispatchers WHERE id = ?"
    FORGET_DISPATCHERS = "DELETE FROM jobqueue_dispatchers WHERE expires_at <= ?"

    # -- reads --------------------------------------------------------------------------------
    NAME_COUNTS = "SELECT name, state, n FROM jobqueue_name_counts WHERE n > 0"
    OUTCOMES = (
        "SELECT minute, outcome, count FROM jobqueue_outcomes WHERE minute BETWEEN ? AND ? "
        "ORDER BY minute"
    )
    ANY_WAITING = "SELECT 1 FROM jobqueue_jobs WHERE state = 'waiting' AND name = ? LIMIT 1"
    NEXT_DELAYED = (
        "SELECT run_at FROM jobqueue_jobs WHERE state = 'delayed' ORDER BY run_at LIMIT 1"
    )
    EXPIRED_LEASES = (  # the seam's ``expired``: soonest expired first, with the token
        f"SELECT {JOB_COLUMNS}, lease_token FROM jobqueue_jobs WHERE state = 'active' "
        "AND lease_expires_at <= ? ORDER BY lease_expires_at, id LIMIT ?"
    )
    LIVE_DISPATCHERS = (
        "SELECT id, host, pid, names, concurrency, started_at, last_seen, jobs "
        "FROM jobqueue_dispatchers WHERE expires_at > ? ORDER BY started_at, id"
    )

    # -- schedules ----------------------------------------------------------------------------
    SCHEDULE_MARK = "SELECT last_tick, last_job_id, paused FROM jobqueue_schedules WHERE name = ?"
    INSERT_SCHEDULE = (
        "INSERT INTO jobqueue_schedules (definition, last_tick, last_job_id, missed, "
        "skipped, updated_at, name, paused) VALUES (?, ?, ?, ?, ?, ?, ?, 0)"
    )
    UPDATE_SCHEDULE = (
        "UPDATE jobqueue_schedules SET definition = ?, last_tick = ?, last_job_id = ?, "
        "missed = missed + ?, skipped = skipped + ?, updated_at = ? WHERE name = ?"
    )
    INSERT_TICK = (
        "INSERT INTO jobqueue_schedule_ticks (schedule, tick, outcome, job_id) VALUES (?, ?, ?, ?)"
    )
    TRIM_TICKS = (  # ticks only grow, so the newest are the highest
        "DELETE FROM jobqueue_schedule_ticks WHERE schedule = ? AND tick <= ("
        "SELECT tick FROM jobqueue_schedule_ticks WHERE schedule = ? "
        "ORDER BY tick DESC LIMIT 1 OFFSET ?)"
    )
    SET_SCHEDULE_PAUSED = (
        "INSERT INTO jobqueue_schedules (name, definition, paused, updated_at) "
        "VALUES (?, '', ?, ?) ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, "
        "updated_at = excluded.updated_at WHERE jobqueue_schedules.paused != excluded.paused"
    )
    REMOVE_TICKS = "DELETE FROM jobqueue_schedule_ticks WHERE schedule = ?"
    REMOVE_SCHEDULE = "DELETE FROM jobqueue_schedules WHERE name = ?"
    SCHEDULES = f"SELECT {SCHEDULE_COLUMNS} FROM jobqueue_schedules ORDER BY name"
    SCHEDULE = f"SELECT {SCHEDULE_COLUMNS} FROM jobqueue_schedules WHERE name = ? ORDER BY name"
    TICKS = (
        "SELECT schedule, tick, outcome, job_id FROM jobqueue_schedule_ticks "
        "ORDER BY schedule, tick DESC"
    )
    TICKS_OF = (
        "SELECT schedule, tick, outcome, job_id FROM jobqueue_schedule_ticks "
        "WHERE schedule = ? ORDER BY schedule, tick DESC"
    )

    def __init__(self, overrides: Mapping[str, str] | None = None, placeholder: str = "?") -> None:
        texts = {name: text for name, text in vars(Statements).items() if name.isupper()}
        unknown = set(overrides or {}) - set(texts)
        if unknown:
            raise ValueError(f"overrides of no statement: {sorted(unknown)}")
        texts.update(overrides or {})
        self.mark = placeholder
        for name, text in texts.items():  # instance attributes: one lookup per use
            setattr(self, name, text if placeholder == "?" else text.replace("?", placeholder))
        self._scans: dict[tuple[JobState, bool, bool], str] = {}
        self._inserts: dict[int, str] = {}

    def _marks(self, text: str) -> str:
        return text if self.mark == "?" else text.replace("?", self.mark)

    def _in(self, count: int) -> str:
        return ",".join([self.mark] * count)

    def scan(self, state: JobState, named: bool, before: bool) -> str:
        """A page of ``state``'s jobs (of one name; finished before a time) in its listing
        order (``Selector``; parameters: [name], [finished_before], limit, offset). The state
        is spelled out (an enum value, never user text) so that the planner uses the partial
        index of that state instead of scanning the table."""
        key = (state, named, before and state.is_finished)
        text = self._scans.get(key)
        if text is None:
            text = self._scans[key] = self._marks(
                f"SELECT {JOB_COLUMNS} FROM jobqueue_jobs WHERE state = '{state.value}'"
                + (" AND finished_at IS NOT NULL" if state.is_finished else "")
                + (" AND name = ?" if named else "")
                + (" AND finished_at < ?" if key[2] else "")
                + f" ORDER BY {_LIST_ORDER.get(state, 'finished_at DESC, id DESC')}"
                + " LIMIT ? OFFSET ?"
            )
        return text

    def logs_in(self, count: int) -> str:
        return (
            f"SELECT job_id, at, message FROM jobqueue_logs WHERE job_id IN ({self._in(count)}) "
            "ORDER BY job_id, id"
        )

    def insert_jobs(self, count: int) -> str:
        """``INSERT_JOB`` of ``count`` rows in one statement (parameters: the rows' in turn)."""
        text = self._inserts.get(count)
        if text is None:
            row = f"({self._in(INSERT_JOB_WIDTH)})"
            text = f"INSERT INTO jobqueue_jobs ({_INSERT_JOB_COLUMNS}) VALUES " + ", ".join(
                [row] * count
            )
            if count <= 16 or count % 100 == 0:  # the common sizes only: the cache stays small
                self._inserts[count] = text
        return text

    def guard_rows(self, count: int) -> str:
        """``GUARD_ROW`` of ``count`` jobs at once (a batch of changes)."""
        head, _, tail = self.GUARD_ROW.partition(f"id = {self.mark}")
        return f"{head}id IN ({self._in(count)}){tail}"

    def delete_jobs(self, count: int) -> str:
        return f"DELETE FROM jobqueue_jobs WHERE id IN ({self._in(count)})"

    def delete_logs(self, count: int) -> str:
        return f"DELETE FROM jobqueue_logs WHERE job_id IN ({self._in(count)})"
