"""The SQLite backend: durable jobs in one file, shared by the processes of one machine.

Every transition is one ``BEGIN IMMEDIATE`` transaction, so it is atomic across threads and
processes; claim cost stays flat as the table grows because each hot query is a seek in a
partial index (see ``.migrations``). Time always comes from ``options.clock``, never from SQL,
so the contract suite's fake clock drives leases, delays and retention.

The semantics follow ``jobqueue.backends.memory`` (the reference) exactly, including the
order in which jobs run (see ``.transitions``; the control plane is in ``.control``). Reads
(``.reads``) never write: they run in a deferred snapshot, so they neither take the write lock
nor promote, recover or expire anything. Waiting never sleeps blindly: same-process submits,
retries and resumes wake waiters through a condition; other processes' commits are noticed
through ``PRAGMA data_version``, checked with a short back-off (5 ms doubling to 50 ms).
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from urllib.parse import parse_qs, urlsplit

from jobqueue import lifecycle
from jobqueue.backend import (
    BackendOptions,
    Claim,
    DispatcherInfo,
    LeaseStatus,
    Outcome,
    ScheduleRecord,
    TickClaim,
    TickResult,
    WorkSpec,
    check_schedule_name,
)
from jobqueue.backends.recovered import RecoveredLeases
from jobqueue.backends.sqlite import control, reads, schedules, schema
from jobqueue.backends.sqlite.connections import ConnectionPool, signal_for
from jobqueue.backends.sqlite.failures import means_full_disk, translate
from jobqueue.backends.sqlite.foreign import fail_corrupt, waiting_head
from jobqueue.backends.sqlite.rows import JOB_COLUMNS, job_to_row
from jobqueue.backends.sqlite.transitions import (
    Txn,
    delete,
    forget_old_outcomes,
    holder,
    job_key,
    maintain,
    record,
    recover,
    repeated,
    store_jobs,
    take,
    write,
)
from jobqueue.errors import (
    BackendError,
    BackendFullError,
    ConfigurationError,
    CorruptJobError,
    InvalidURLError,
)
from jobqueue.job import (
    JSON,
    MAX_LOG_MESSAGE,
    MAX_LOGS,
    Job,
    JobError,
    JobState,
    dumps_json,
)

logger = logging.getLogger("jobqueue.backends.sqlite")

POLL_START, POLL_MAX = 0.005, 0.05
"""Back-off between checks for other processes' commits while waiting (seconds)."""

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


class SQLiteBackend:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite:///:memory:``.

    Query options: ``busy_timeout`` (seconds a writer waits for another process's lock,
    default 10) and ``synchronous`` (``normal`` by default: a commit survives a crash of the
    process, ``full`` also a power loss, at some cost per job).
    """

    def __init__(
        self,
        path: str,
        options: BackendOptions | None = None,
        *,
        busy_timeout: float = 10.0,
        synchronous: str = "NORMAL",
    ) -> None:
        self.options = options or BackendOptions()
        if self.options.namespace is not None:
            raise ConfigurationError(
                "the sqlite backend keeps one queue per file and has no namespaces; "
                f"use a separate file instead of namespace={self.options.namespace!r}"
            )
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ConfigurationError(f"synchronous must be one of {_SYNCHRONOUS}")
        self.path = path
        self._clock = self.options.clock
        self._signal = signal_for(path)
        self._recovered = RecoveredLeases()  # until maintain/recover_expired report them
        self._pool = ConnectionPool(
            path, busy_timeout=busy_timeout, synchronous=synchronous.upper()
        )
        if not self._pool.shared:
            schema.check_header(path)  # before SQLite opens (and could change) the file
        try:
            with self._signal.write_lock:
                schema.prepare(
                    self._pool.get,
                    path,
                    in_memory=self._pool.shared,
                    read_only=self._pool.open_read_only,
                )
        except sqlite3.Error as exc:
            self._pool.close()
            if means_full_disk(exc, path):
                raise BackendFullError(
                    f"cannot open SQLite database {path!r}: its disk is full ({exc})"
                ) from exc
            raise BackendError(f"cannot open SQLite database {path!r}: {exc}") from exc
        except BaseException:
            self._pool.close()
            raise

    @classmethod
    def from_url(cls, url: str, options: BackendOptions) -> SQLiteBackend:
        parts = urlsplit(url)
        if parts.scheme != "sqlite" or parts.netloc or not parts.path.strip("/"):
            raise InvalidURLError(
                f"bad sqlite URL {url!r}: use sqlite:///relative/path.db, "
                "sqlite:////absolute/path.db or sqlite:///:memory:"
            )
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"busy_timeout", "synchronous"}
        if unknown:
            raise InvalidURLError(
                f"unknown sqlite URL parameter(s) {', '.join(sorted(unknown))} in {url!r}; "
                "known: busy_timeout, synchronous"
            )
        try:
            busy_timeout = float(query.get("busy_timeout", 10.0))
        except ValueError:
            raise InvalidURLError("busy_timeout must be a number of seconds") from None
        path = schema.resolve_path(parts.path)
        if path != ":memory:":
            parent = os.path.dirname(path)
            if not os.path.isdir(parent):
                raise InvalidURLError(
                    f"the directory {parent!r} of the SQLite file does not exist; create it first"
                )
        return cls(
            path,
            options,
            busy_timeout=busy_timeout,
            synchronous=query.get("synchronous", "NORMAL"),
        )

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, job: Job) -> Job:
        return self.submit_many([job])[0]

    def submit_many(self, jobs: Sequence[Job]) -> list[Job]:
        rows = [job_to_row(job, 0, 0) for job in jobs]  # encode first: bad JSON stores nothing
        with self._transaction() as txn:
            return store_jobs(txn, jobs, rows)

    # -- periodic schedules -------------------------------------------------------------------

    def claim_tick(self, claim: TickClaim) -> TickResult:
        # Encoded first, as submit does: a refused job changes nothing, the record included.
        row = None if claim.job is None else job_to_row(claim.job, 0, 0)
        with self._transaction() as txn:
            return schedules.claim_tick(txn, claim, row)

    def pause_schedule(self, name: str) -> None:
        check_schedule_name(name)
        with self._transaction() as txn:
            schedules.set_paused(txn, name, True)

    def resume_schedule(self, name: str) -> None:
        check_schedule_name(name)
        with self._transaction() as txn:
            schedules.set_paused(txn, name, False)

    def remove_schedule(self, name: str) -> bool:
        check_schedule_name(name)
        with self._transaction() as txn:
            return schedules.remove(txn, name)

    def schedule_records(self) -> list[ScheduleRecord]:
        with self._reading() as conn:
            return schedules.records(conn)

    def schedule_record(self, name: str) -> ScheduleRecord | None:
        check_schedule_name(name)
        with self._reading() as conn:
            found = schedules.records(conn, name)
            return found[0] if found else None

    # -- reading ------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        key = job_key(job_id)
        if key is None:
            return None
        with self._reading() as conn:
            row = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobqueue_jobs WHERE id = ?", (key,)
            ).fetchone()
            return None if row is None else reads.load_job(conn, row)

    def list_jobs(self, state: JobState, offset: int = 0, limit: int = 100) -> list[Job]:
        with self._reading() as conn:  # a snapshot: listing never promotes or recovers
            return reads.list_jobs(conn, JobState(state), offset, limit)

    def count_by_state(self) -> dict[JobState, int]:
        with self._reading() as conn:  # the trigger-kept counts: one read, no maintenance
            return reads.count_by_state(conn)

    def count_by_name(self) -> dict[str, dict[JobState, int]]:
        with self._reading() as conn:  # one snapshot: the names' counts agree with each other
            return reads.count_by_name(conn)

    def outcome_counts(self, since_minute: int) -> dict[int, dict[str, int]]:
        with self._reading() as conn:
            return reads.outcome_counts(conn, since_minute, self._clock())

    # -- claiming -----------------------------------------------------------------------------

    def claim(self, spec: WorkSpec) -> Claim | None:
        with self._transaction() as txn:
            claims = self._claim(txn, spec, 1)
            return claims[0] if claims else None

    def claim_many(self, spec: WorkSpec, limit: int) -> list[Claim]:
        with self._transaction() as txn:
            return self._claim(txn, spec, limit)

    def _claim(self, txn: Txn, spec: WorkSpec, limit: int) -> list[Claim]:
        if limit <= 0:
            return []  # as the reference: no claim, so no maintenance either
        self._maintain(txn)
        # Paused names are read inside the claim's own transaction: a pause committed by any
        # process stops every claim that starts after it.
        paused = reads.paused_names(txn.conn)
        names = [name for name in dict.fromkeys(spec.names) if name not in paused]
        claims: list[Claim] = []
        while len(claims) < limit:  # also steps past corrupt jobs, each failed on the way
            best: tuple[int, int, int] | None = None
            for name in names:
                cap = spec.max_active.get(name)
                if cap is not None and self._active_count(txn.conn, name) >= cap:
                    continue
                row = waiting_head(txn, name)
                if row is not None:
                    entry = (-row[0], row[1], row[2])
                    best = entry if best is None or entry < best else best
            if best is None:
                break
            key = best[2]
            token = secrets.token_hex(8)
            deadline = txn.now + spec.lease_seconds
            # The claim takes a fresh seq too: expired leases are recovered in claim order.
            txn.conn.execute(
                "UPDATE jobqueue_jobs SET state = 'active', attempts_made = attempts_made + 1, "
                "started_at = ?, lease_token = ?, lease_expires_at = ?, seq = ?, dispatcher = ?, "
                "ended_lease = NULL WHERE id = ?",  # the last lease's token is fenced now
                (txn.now, token, deadline, txn.next_seq(), spec.dispatcher, key),
            )
            row = txn.conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobqueue_jobs WHERE id = ?", (key,)
            ).fetchone()
            try:
                claims.append(Claim(reads.load_job(txn.conn, row), token, deadline))
            except CorruptJobError as exc:
                fail_corrupt(txn, key, str(exc).removeprefix(f"job {key}: "))
        return claims

    @staticmethod
    def _active_count(conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute(
            "SELECT count(*) FROM jobqueue_jobs WHERE state = 'active' AND name = ?", (name,)
        ).fetchone()
        return int(row[0])

    # -- lease holders ------------------------------------------------------------------------

    def renew(self, job_id: str, token: str, lease_seconds: float) -> bool:
        with self._transaction() as txn:
            cursor = txn.conn.execute(
                "UPDATE jobqueue_jobs SET lease_expires_at = ? "
                "WHERE id = ? AND lease_token = ? AND lease_expires_at > ?",
                (txn.now + lease_seconds, job_key(job_id), token, txn.now),
            )
            return cursor.rowcount == 1

    def complete(
        self, job_id: str, token: str, result: JSON, next_spec: WorkSpec | None
    ) -> Claim | None:
        result_text = None if result is None else dumps_json(result)
        with self._transaction() as txn:
            held = holder(txn, job_id, token)
            if held is None and repeated(txn, job_id, token, "complete") is not None:
                return None  # the first call's claim went to its caller; claim nothing more
            record(txn, held or take(txn, job_id, token), result_text, None, None)
            claims = self._claim(txn, next_spec, 1) if next_spec is not None else []
            return claims[0] if claims else None

    def fail(self, job_id: str, token: str, error: JobError, retry_at: float | None) -> JobState:
        with self._transaction() as txn:
            held = holder(txn, job_id, token)
            if held is None:
                state = repeated(txn, job_id, token, "fail")
                if state is not None:
                    return state
            return record(txn, held or take(txn, job_id, token), None, error, retry_at)

    def finish_many(
        self, outcomes: Sequence[Outcome], next_spec: WorkSpec | None, limit: int
    ) -> tuple[list[JobState | None], list[Claim]]:
        encoded = [  # encode first: a bad value stores nothing
            (outcome, None if outcome.result is None else dumps_json(outcome.result))
            for outcome in outcomes
        ]
        with self._transaction() as txn:
            states: list[JobState | None] = []
            for outcome, result in encoded:
                held = holder(txn, outcome.job_id, outcome.token)
                if held is None:
                    call = "complete" if outcome.error is None else "fail"
                    states.append(repeated(txn, outcome.job_id, outcome.token, call))
                else:
                    states.append(record(txn, held, result, outcome.error, outcome.retry_at))
            claims = self._claim(txn, next_spec, limit) if next_spec is not None else []
            return states, claims

    def release(self, job_id: str, token: str) -> bool:
        with self._transaction() as txn:
            held = holder(txn, job_id, token)
            if held is None:
                return repeated(txn, job_id, token, "release") is not None
            write(txn, held, lifecycle.on_release(held, token, txn.now))
            return True

    def set_progress(self, job_id: str, token: str, progress: float, message: str | None) -> bool:
        message = None if message is None else message[:MAX_LOG_MESSAGE]
        with self._transaction() as txn:
            cursor = txn.conn.execute(
                "UPDATE jobqueue_jobs SET progress = ?, progress_message = ? "
                "WHERE id = ? AND lease_token = ? AND lease_expires_at > ?",
                (progress, message, job_key(job_id), token, txn.now),
            )
            return cursor.rowcount == 1

    def add_log(self, job_id: str, token: str, message: str) -> bool:
        with self._transaction() as txn:
            held = holder(txn, job_id, token)
            if held is None:
                return False
            key = held.key
            txn.conn.execute(
                "INSERT INTO jobqueue_logs (job_id, at, message) VALUES (?, ?, ?)",
                (key, txn.now, message[:MAX_LOG_MESSAGE]),
            )
            txn.conn.execute(
                "DELETE FROM jobqueue_logs WHERE job_id = ? AND id <= (SELECT id FROM "
                "jobqueue_logs WHERE job_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (key, key, MAX_LOGS),
            )
            return True

    def heartbeat(
        self,
        dispatcher: DispatcherInfo,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
    ) -> list[LeaseStatus]:
        with self._transaction() as txn:
            return control.heartbeat(txn, dispatcher, leases, lease_seconds)

    def finish_cancelled(self, job_id: str, token: str, error: JobError | None) -> bool:
        with self._transaction() as txn:
            return control.finish_cancelled(txn, job_id, token, error)

    # -- the control plane --------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobState | None:
        with self._transaction() as txn:
            return control.cancel(txn, job_id)

    def retry(self, job_id: str) -> Job | None:
        with self._transaction() as txn:
            if not control.retry(txn, job_id):
                return None
            row = txn.conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobqueue_jobs WHERE id = ?", (job_key(job_id),)
            ).fetchone()
            return reads.load_job(txn.conn, row)

    def promote(self, job_id: str) -> Job | None:
        with self._transaction() as txn:
            if not control.promote(txn, job_id):
                return None
            row = txn.conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobqueue_jobs WHERE id = ?", (job_key(job_id),)
            ).fetchone()
            return reads.load_job(txn.conn, row)

    def cancel_many(self, state: JobState, name: str | None = None) -> int:
        with self._transaction() as txn:
            return control.cancel_many(txn, JobState(state), name)

    def retry_many(self, state: JobState, name: str | None = None) -> int:
        with self._transaction() as txn:
            return control.retry_many(txn, JobState(state), name)

    def purge(
        self, state: JobState, name: str | None = None, finished_before: float | None = None
    ) -> int:
        with self._transaction() as txn:
            return control.purge(txn, JobState(state), name, finished_before)

    def pause(self, name: str) -> None:
        with self._transaction() as txn:
            control.pause(txn, name)

    def resume(self, name: str) -> None:
        with self._transaction() as txn:
            control.resume(txn, name)

    def paused(self) -> frozenset[str]:
        with self._reading() as conn:
            return reads.paused_names(conn)

    def dispatchers(self) -> list[DispatcherInfo]:
        with self._reading() as conn:
            return reads.live_dispatchers(conn, self._clock())

    def remove_dispatcher(self, dispatcher_id: str) -> None:
        with self._transaction() as txn:
            control.remove_dispatcher(txn, dispatcher_id)

    # -- maintenance --------------------------------------------------------------------------

    def maintain(self) -> list[Job]:
        with self._transaction() as txn:
            self._maintain(txn)
            control.forget_dead_dispatchers(txn)
            forget_old_outcomes(txn)
        return self._take_recovered()

    def recover_expired(self) -> list[Job]:
        with self._transaction() as txn:
            recover(txn, self.options.max_stalls)
        return self._take_recovered()

    def _take_recovered(self) -> list[Job]:
        """The jobs this process recovered since the last report, read now."""
        taken = self._recovered.take()
        if not taken:
            return []
        with self._reading() as conn:
            return reads.jobs_by_key(conn, [int(job_id) for job_id in taken])

    def _maintain(self, txn: Txn) -> int:
        return maintain(txn, self.options.max_stalls, self.options.retention)

    def remove(self, job_id: str) -> bool:
        key = job_key(job_id)
        if key is None:
            return False
        with self._transaction() as txn:
            return delete(txn, [key]) > 0

    # -- waiting ------------------------------------------------------------------------------

    def wait_for_work(self, names: Iterable[str], timeout: float) -> bool:
        wanted = list(dict.fromkeys(names))
        signal = self._signal
        with signal.changed:
            seen = signal.work
        version = self._data_version()  # read first: a commit after this shows as a change
        with self._transaction() as txn:
            self._maintain(txn)
            if reads.has_waiting(txn.conn, wanted):  # paused names do not count
                return True
            timeout = min(timeout, reads.until_due(txn.conn, txn.now))
        deadline = time.monotonic() + max(timeout, 0.0)
        pause = POLL_START
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Same-process submits notify the condition; other processes' commits show up as
            # a new PRAGMA data_version, checked with a short back-off (no server to push).
            wait = remaining if self._pool.shared else min(pause, remaining)
            with signal.changed:
                if signal.changed.wait_for(lambda: signal.work != seen, timeout=wait):
                    return True
            pause = min(pause * 2, POLL_MAX)
            current = self._data_version()
            if current != version:
                version = current
                pause = POLL_START
                with self._reading() as conn:
                    now = self._clock()
                    if reads.has_waiting(conn, wanted) or reads.until_due(conn, now) <= 0:
                        return True
                    deadline = min(deadline, time.monotonic() + reads.until_due(conn, now))

    def _data_version(self) -> int:
        if self._pool.shared:
            return 0
        with self._reading() as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def wait_for_finish(self, job_id: str, timeout: float) -> Job | None:
        signal = self._signal
        deadline = time.monotonic() + max(timeout, 0.0)
        pause = POLL_START
        while True:
            with signal.changed:
                seen = signal.version
            version = self._data_version()
            job = self.get(job_id)
            if job is None or job.state.is_finished:
                return job
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                wait = remaining if self._pool.shared else min(pause, remaining)
                with signal.changed:
                    if signal.changed.wait_for(
                        lambda seen=seen: signal.version != seen,  # type: ignore[misc]
                        timeout=wait,
                    ):
                        break
                pause = min(pause * 2, POLL_MAX)
                if self._data_version() != version:
                    pause = POLL_START
                    break

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[Txn]:
        """A ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front, so what the
        body reads cannot change before it writes (no read-modify-write race)."""
        with self._signal.write_lock:
            try:
                conn = self._pool.get()
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc
            txn = Txn(conn, self._clock())
            try:
                yield txn
                txn.flush()
                conn.execute("COMMIT")
                self._recovered.note(str(key) for key in txn.recovered)
            except BaseException as exc:
                with suppress(sqlite3.Error):  # a failed statement may have rolled it back
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise translate(exc, self.path) from exc
                raise
        if txn.work_added or txn.changed:
            self._signal.notify(work=txn.work_added)

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A read-only snapshot (WAL readers never block writers, nor wait for them)."""
        lock = self._signal.write_lock if self._pool.shared else None
        if lock is not None:
            lock.acquire()
        viewer: sqlite3.Connection | None = None
        try:
            conn, viewer = self._pool.begin_read()
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        finally:
            if viewer is not None:
                viewer.close()
            if lock is not None:
                lock.release()

    def close(self) -> None:
        self._pool.close()
