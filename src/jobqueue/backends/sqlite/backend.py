"""The SQLite backend: durable jobs in one file, shared by the processes of one machine.

Every transition is one ``BEGIN IMMEDIATE`` transaction, so it is atomic across threads and
processes; claim cost stays flat as the table grows because each hot query is a seek in a
partial index (see :mod:`.schema`). Time always comes from ``options.clock``, never from SQL,
so the contract suite's fake clock drives leases, delays and retention.

The semantics follow :mod:`jobqueue.backends.memory` (the reference) exactly, including the
order in which jobs run: one counter (``jobqueue_meta.seq``) hands out ids and orders jobs,
renewed when a job is requeued, claimed (recovery order) or finished (retention order).
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jobqueue.backend import BackendOptions, Claim, WorkSpec
from jobqueue.backends.sqlite import schema
from jobqueue.backends.sqlite.connections import ConnectionPool, signal_for
from jobqueue.backends.sqlite.rows import (
    INSERT_JOB,
    JOB_COLUMNS,
    error_json,
    is_busy,
    job_to_row,
    row_to_job,
)
from jobqueue.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    CorruptJobError,
    LeaseLostError,
)
from jobqueue.job import JSON, MAX_LOG_MESSAGE, MAX_LOGS, Job, JobError, JobState, dumps_json

logger = logging.getLogger("jobqueue.backends.sqlite")

MAINTENANCE_BATCH = 5000
"""At most this many jobs are promoted, recovered or removed by retention per transaction,
so one claim never holds the write lock for long; the rest follow on the next calls."""

POLL_START, POLL_MAX = 0.005, 0.05
"""Back-off between checks for other processes' commits while waiting (seconds)."""

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


class _Txn:
    """One write transaction: its connection, its ``now``, the order counter, and what to
    tell waiters once it commits."""

    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        self.work_added = False
        self.changed = False
        self._seq: int | None = None
        self._seq_read = 0

    def next_seq(self, count: int = 1) -> int:
        """Reserve ``count`` consecutive numbers of the order counter; returns the first."""
        if self._seq is None:
            row = self.conn.execute("SELECT value FROM jobqueue_meta WHERE key = 'seq'").fetchone()
            self._seq = self._seq_read = int(row[0])
        first = self._seq + 1
        self._seq += count
        return first

    def flush(self) -> None:
        if self._seq is not None and self._seq != self._seq_read:
            self.conn.execute("UPDATE jobqueue_meta SET value = ? WHERE key = 'seq'", (self._seq,))


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
        self._pool = ConnectionPool(
            path, busy_timeout=busy_timeout, synchronous=synchronous.upper()
        )
        if not self._pool.shared:
            schema.check_header(path)  # before SQLite opens (and could change) the file
        try:
            with self._signal.write_lock:
                schema.prepare(self._pool.get(), path, in_memory=self._pool.shared)
        except sqlite3.Error as exc:
            self._pool.close()
            raise BackendError(f"cannot open SQLite database {path!r}: {exc}") from exc
        except BaseException:
            self._pool.close()
            raise

    @classmethod
    def from_url(cls, url: str, options: BackendOptions) -> SQLiteBackend:
        parts = urlsplit(url)
        if parts.scheme != "sqlite" or parts.netloc or not parts.path.strip("/"):
            raise ConfigurationError(
                f"bad sqlite URL {url!r}: use sqlite:///relative/path.db, "
                "sqlite:////absolute/path.db or sqlite:///:memory:"
            )
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"busy_timeout", "synchronous"}
        if unknown:
            raise ConfigurationError(
                f"unknown sqlite URL option(s) {sorted(unknown)}; known: busy_timeout, synchronous"
            )
        try:
            busy_timeout = float(query.get("busy_timeout", 10.0))
        except ValueError:
            raise ConfigurationError("busy_timeout must be a number of seconds") from None
        path = schema.resolve_path(parts.path)
        if path != ":memory:":
            import os

            parent = os.path.dirname(path)
            if not os.path.isdir(parent):
                raise ConfigurationError(
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
        stored: list[Job] = []
        with self._transaction() as txn:
            pending: list[tuple[Any, ...]] = []
            pending_logs: list[tuple[int, float, str]] = []
            for job, row in zip(jobs, rows, strict=True):
                if job.unique_key is not None:
                    self._insert(txn, pending, pending_logs)
                    existing = txn.conn.execute(
                        f"SELECT {JOB_COLUMNS} FROM jobqueue_jobs WHERE unique_key = ? "
                        "AND state IN ('waiting', 'delayed', 'active')",
                        (job.unique_key,),
                    ).fetchone()
                    if existing is not None:
                        stored.append(self._load(txn.conn, existing))
                        continue
                job_id = txn.next_seq(2)  # the id, then the order: as the memory backend does
                state = JobState.DELAYED if job.run_at > txn.now else JobState.WAITING
                pending.append((job_id, row[1], state.value, row[3], job_id + 1, *row[5:]))
                pending_logs.extend((job_id, log.at, log.message) for log in job.logs)
                stored.append(replace(job, id=str(job_id), state=state, logs=list(job.logs)))
            self._insert(txn, pending, pending_logs)
            txn.work_added = True
        return stored

    def _insert(
        self, txn: _Txn, pending: list[tuple[Any, ...]], logs: list[tuple[int, float, str]]
    ) -> None:
        if pending:
            txn.conn.executemany(INSERT_JOB, pending)
            pending.clear()
        if logs:
            txn.conn.executemany(
                "INSERT INTO jobqueue_logs (job_id, at, message) VALUES (?, ?, ?)", logs
            )
            logs.clear()

    # -- reading ------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        key = _job_key(job_id)
        if key is None:
            return None
        with self._reading() as conn:
            row = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobqueue_jobs WHERE id = ?", (key,)
            ).fetchone()
            return None if row is None else self._load(conn, row)

    def list_jobs(self, state: JobState, offset: int = 0, limit: int = 100) -> list[Job]:
        order = {
            JobState.WAITING: "priority DESC, seq",
            JobState.DELAYED: "run_at, seq",
            JobState.ACTIVE: "lease_expires_at, id",
        }.get(state, "finished_at DESC, id DESC")
        # The state is spelled out (an enum value, never user text) so that SQLite can use the
        # partial index of that state instead of scanning the table.
        where = f"state = '{JobState(state).value}'"
        if JobState(state).is_finished:
            where += " AND finished_at IS NOT NULL"
        with self._transaction() as txn:
            self._maintain(txn)
            rows = txn.conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobqueue_jobs WHERE {where} "
                f"ORDER BY {order} LIMIT ? OFFSET ?",
                (max(limit, 0), max(offset, 0)),
            ).fetchall()
            logs = self._logs(txn.conn, [row[0] for row in rows])
        jobs = []
        for row in rows:
            try:
                jobs.append(row_to_job(row, logs.get(row[0], ())))
            except CorruptJobError as exc:  # a listing must stay usable; get() raises
                logger.error("skipping a corrupt job in a listing: %s", exc)
        return jobs

    def count_by_state(self) -> dict[JobState, int]:
        with self._transaction() as txn:
            self._maintain(txn)
            counts = dict(txn.conn.execute("SELECT state, n FROM jobqueue_counts").fetchall())
        return {state: int(counts.get(state.value, 0)) for state in JobState}

    def _load(self, conn: sqlite3.Connection, row: Sequence[Any]) -> Job:
        return row_to_job(row, self._logs(conn, [row[0]]).get(row[0], ()))

    def _logs(self, conn: sqlite3.Connection, ids: list[int]) -> dict[int, list[tuple[float, str]]]:
        found: dict[int, list[tuple[float, str]]] = {}
        for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for job_id, at, message in conn.execute(
                f"SELECT job_id, at, message FROM jobqueue_logs WHERE job_id IN ({marks}) "
                "ORDER BY job_id, id",
                chunk,
            ):
                found.setdefault(job_id, []).append((at, message))
        return found

    # -- claiming -----------------------------------------------------------------------------

    def claim(self, spec: WorkSpec) -> Claim | None:
        with self._transaction() as txn:
            return self._claim(txn, spec)

    def _claim(self, txn: _Txn, spec: WorkSpec) -> Claim | None:
        self._maintain(txn)
        names = list(dict.fromkeys(spec.names))
        while True:  # loops only past corrupt jobs, each failed on the way
            best: tuple[int, int, int] | None = None
            for name in names:
                cap = spec.max_active.get(name)
                if cap is not None and self._active_count(txn.conn, name) >= cap:
                    continue
                row = txn.conn.execute(
                    "SELECT priority, seq, id FROM jobqueue_jobs WHERE state = 'waiting' "
                    "AND name = ? ORDER BY priority DESC, seq LIMIT 1",
                    (name,),
                ).fetchone()
                if row is not None:
                    entry = (-row[0], row[1], row[2])
                    best = entry if best is None or entry < best else best
            if best is None:
                return None
            job_id = best[2]
            token = secrets.token_hex(8)
            deadline = txn.now + spec.lease_seconds
            # The claim takes a fresh seq too: expired leases are recovered in claim order.
            txn.conn.execute(
                "UPDATE jobqueue_jobs SET state = 'active', attempts_made = attempts_made + 1, "
                "started_at = ?, lease_token = ?, lease_expires_at = ?, seq = ? WHERE id = ?",
                (txn.now, token, deadline, txn.next_seq(), job_id),
            )
            row = txn.conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobqueue_jobs WHERE id = ?", (job_id,)
            ).fetchone()
            try:
                return Claim(self._load(txn.conn, row), token, deadline)
            except CorruptJobError as exc:
                # Never hand a dispatcher what it cannot decode, and never crash it: the job
                # fails with the reason kept, and the claim goes on to the next one.
                logger.error("failing job %s: its stored record cannot be decoded: %s", job_id, exc)
                error = JobError("CorruptJobError", f"stored job record is unreadable: {exc}")
                self._finish(txn, job_id, JobState.FAILED, error=error_json(error))

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
                (txn.now + lease_seconds, _job_key(job_id), token, txn.now),
            )
            return cursor.rowcount == 1

    def complete(
        self, job_id: str, token: str, result: JSON, next_spec: WorkSpec | None
    ) -> Claim | None:
        result_text = None if result is None else dumps_json(result)
        with self._transaction() as txn:
            key = self._take(txn, job_id, token)
            self._finish(txn, key, JobState.COMPLETED, result=result_text)
            return self._claim(txn, next_spec) if next_spec is not None else None

    def fail(self, job_id: str, token: str, error: JobError, retry_at: float | None) -> JobState:
        text = error_json(error)
        with self._transaction() as txn:
            key = self._take(txn, job_id, token)
            if retry_at is None:
                self._finish(txn, key, JobState.FAILED, error=text)
                return JobState.FAILED
            txn.conn.execute("UPDATE jobqueue_jobs SET error = ? WHERE id = ?", (text, key))
            return self._requeue(txn, key, retry_at)

    def release(self, job_id: str, token: str) -> bool:
        with self._transaction() as txn:
            key = self._holder(txn, job_id, token)
            if key is None:
                return False
            txn.conn.execute(
                "UPDATE jobqueue_jobs SET attempts_made = max(attempts_made - 1, 0) WHERE id = ?",
                (key,),
            )
            self._requeue(txn, key, txn.now)
            return True

    def set_progress(self, job_id: str, token: str, progress: float, message: str | None) -> bool:
        message = None if message is None else message[:MAX_LOG_MESSAGE]
        with self._transaction() as txn:
            cursor = txn.conn.execute(
                "UPDATE jobqueue_jobs SET progress = ?, progress_message = ? "
                "WHERE id = ? AND lease_token = ? AND lease_expires_at > ?",
                (progress, message, _job_key(job_id), token, txn.now),
            )
            return cursor.rowcount == 1

    def add_log(self, job_id: str, token: str, message: str) -> bool:
        with self._transaction() as txn:
            key = self._holder(txn, job_id, token)
            if key is None:
                return False
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

    def _holder(self, txn: _Txn, job_id: str, token: str) -> int | None:
        """The row id if ``token`` holds the job's unexpired lease, else ``None``."""
        key = _job_key(job_id)
        row = txn.conn.execute(
            "SELECT id FROM jobqueue_jobs "
            "WHERE id = ? AND lease_token = ? AND lease_expires_at > ?",
            (key, token, txn.now),
        ).fetchone()
        return None if row is None else key

    def _take(self, txn: _Txn, job_id: str, token: str) -> int:
        key = self._holder(txn, job_id, token)
        if key is None:
            raise LeaseLostError(
                f"job {job_id} is no longer held by this lease (it expired and was recovered, "
                "or the job was removed); the result of this attempt is discarded"
            )
        return key

    def _requeue(self, txn: _Txn, key: int, run_at: float) -> JobState:
        state = JobState.DELAYED if run_at > txn.now else JobState.WAITING
        txn.conn.execute(
            "UPDATE jobqueue_jobs SET state = ?, run_at = ?, seq = ?, lease_token = NULL, "
            "lease_expires_at = NULL WHERE id = ?",
            (state.value, run_at, txn.next_seq(), key),
        )
        txn.work_added = True
        return state

    def _finish(
        self,
        txn: _Txn,
        key: int,
        state: JobState,
        *,
        result: str | None = None,
        error: str | None = None,
    ) -> None:
        # A finished job takes a fresh seq: retention removes the first finished first.
        sets = "result = ?" if state is JobState.COMPLETED else "error = ?"
        txn.conn.execute(
            f"UPDATE jobqueue_jobs SET state = ?, finished_at = ?, seq = ?, lease_token = NULL, "
            f"lease_expires_at = NULL, {sets} WHERE id = ?",
            (
                state.value,
                txn.now,
                txn.next_seq(),
                result if state is JobState.COMPLETED else error,
                key,
            ),
        )
        txn.changed = True

    # -- maintenance --------------------------------------------------------------------------

    def recover_expired(self) -> int:
        with self._transaction() as txn:
            return self._recover(txn)

    def _maintain(self, txn: _Txn) -> None:
        """Promote due delayed jobs, recover expired leases and apply retention."""
        due = txn.conn.execute(
            "SELECT id FROM jobqueue_jobs WHERE state = 'delayed' AND run_at <= ? "
            "ORDER BY run_at, seq LIMIT ?",
            (txn.now, MAINTENANCE_BATCH),
        ).fetchall()
        if due:
            first = txn.next_seq(len(due))
            txn.conn.executemany(
                "UPDATE jobqueue_jobs SET state = 'waiting', seq = ? WHERE id = ?",
                [(first + n, row[0]) for n, row in enumerate(due)],
            )
        self._recover(txn)
        self._apply_retention(txn)

    def _recover(self, txn: _Txn) -> int:
        expired = txn.conn.execute(
            "SELECT id, stalls FROM jobqueue_jobs WHERE state = 'active' "
            "AND lease_expires_at <= ? ORDER BY seq LIMIT ?",
            (txn.now, MAINTENANCE_BATCH),
        ).fetchall()
        max_stalls = self.options.max_stalls
        for key, stalls in expired:
            stalls += 1
            txn.conn.execute("UPDATE jobqueue_jobs SET stalls = ? WHERE id = ?", (stalls, key))
            if stalls > max_stalls:
                logger.warning("job %s stalled %d times: failing it", key, stalls)
                error = JobError(
                    "StalledJobError",
                    f"job stalled {stalls} times: its lease expired while running "
                    "(the worker died, hung or lost its backend connection)",
                )
                self._finish(txn, key, JobState.FAILED, error=error_json(error))
            else:
                logger.info("job %s: lease expired, back to waiting (stall %d)", key, stalls)
                self._requeue(txn, key, txn.now)
        return len(expired)

    def _apply_retention(self, txn: _Txn) -> None:
        policy = self.options.retention
        budget = MAINTENANCE_BATCH
        for state, seconds, count in (
            (JobState.COMPLETED, policy.completed_seconds, policy.completed_count),
            (JobState.FAILED, policy.failed_seconds, policy.failed_count),
        ):
            if count is None and seconds is None:
                continue
            total = txn.conn.execute(
                "SELECT n FROM jobqueue_counts WHERE state = ?", (state.value,)
            ).fetchone()[0]
            excess = 0 if count is None else max(total - count, 0)
            limit = min(excess + 1, budget)
            offset = 0
            while budget > 0 and total > 0:
                rows = txn.conn.execute(
                    "SELECT id, finished_at FROM jobqueue_jobs WHERE state = ? "
                    "AND finished_at IS NOT NULL ORDER BY seq LIMIT ? OFFSET ?",
                    (state.value, limit, offset),
                ).fetchall()
                drop: list[int] = []
                for key, finished_at in rows:
                    too_many = count is not None and total - len(drop) > count
                    too_old = seconds is not None and (finished_at or 0.0) <= txn.now - seconds
                    if not (too_many or too_old):
                        break
                    drop.append(key)
                self._delete(txn, drop)
                total -= len(drop)
                budget -= len(drop)
                if len(drop) < len(rows) or len(rows) < limit:
                    break
                limit = min(limit * 2, budget)

    def remove(self, job_id: str) -> bool:
        key = _job_key(job_id)
        if key is None:
            return False
        with self._transaction() as txn:
            return self._delete(txn, [key]) > 0

    def _delete(self, txn: _Txn, keys: list[int]) -> int:
        removed = 0
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            removed += txn.conn.execute(
                f"DELETE FROM jobqueue_jobs WHERE id IN ({marks})", chunk
            ).rowcount
            txn.conn.execute(f"DELETE FROM jobqueue_logs WHERE job_id IN ({marks})", chunk)
        txn.changed = txn.changed or removed > 0
        return removed

    # -- waiting ------------------------------------------------------------------------------

    def wait_for_work(self, names: Iterable[str], timeout: float) -> bool:
        wanted = list(dict.fromkeys(names))
        signal = self._signal
        with signal.changed:
            seen = signal.work
        version = self._data_version()  # read first: a commit after this shows as a change
        with self._transaction() as txn:
            self._maintain(txn)
            if self._has_waiting(txn.conn, wanted):
                return True
            timeout = min(timeout, self._until_due(txn.conn, txn.now))
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
                    if self._has_waiting(conn, wanted) or self._until_due(conn, now) <= 0:
                        return True
                    deadline = min(deadline, time.monotonic() + self._until_due(conn, now))

    def _has_waiting(self, conn: sqlite3.Connection, names: list[str]) -> bool:
        return any(
            conn.execute(
                "SELECT 1 FROM jobqueue_jobs WHERE state = 'waiting' AND name = ? LIMIT 1",
                (name,),
            ).fetchone()
            for name in names
        )

    def _until_due(self, conn: sqlite3.Connection, now: float) -> float:
        """Seconds until the next delayed job is due or lease expires (inf when none)."""
        delayed = conn.execute(
            "SELECT run_at FROM jobqueue_jobs WHERE state = 'delayed' ORDER BY run_at LIMIT 1"
        ).fetchone()
        lease = conn.execute(
            "SELECT lease_expires_at FROM jobqueue_jobs WHERE state = 'active' "
            "ORDER BY lease_expires_at LIMIT 1"
        ).fetchone()
        due = [row[0] for row in (delayed, lease) if row is not None]
        return max(min(due) - now, 0.0) if due else float("inf")

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
    def _transaction(self) -> Iterator[_Txn]:
        """A ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front, so what the
        body reads cannot change before it writes (no read-modify-write race)."""
        with self._signal.write_lock:
            try:
                conn = self._pool.get()
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc
            txn = _Txn(conn, self._clock())
            try:
                yield txn
                txn.flush()
                conn.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):  # a failed statement may have rolled it back
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise _translate(exc, self.path) from exc
                raise
        if txn.work_added or txn.changed:
            self._signal.notify(work=txn.work_added)

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A read-only snapshot (WAL readers never block writers, nor wait for them)."""
        lock = self._signal.write_lock if self._pool.shared else None
        if lock is not None:
            lock.acquire()
        try:
            conn = self._pool.get()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        finally:
            if lock is not None:
                lock.release()

    def close(self) -> None:
        self._pool.close()


def _job_key(job_id: str) -> int | None:
    """Ids are decimal row ids; anything else names no job."""
    if isinstance(job_id, str) and job_id.isdigit() and len(job_id) < 19:
        return int(job_id)
    return None


def _translate(exc: sqlite3.Error, path: str) -> BackendError:
    if is_busy(exc):
        return BackendUnavailableError(
            f"SQLite database {path!r} is busy or unreachable ({exc}); nothing was changed, "
            "retry (or raise busy_timeout in the URL if many processes share the file)"
        )
    return BackendError(f"SQLite operation on {path!r} failed: {exc}")
