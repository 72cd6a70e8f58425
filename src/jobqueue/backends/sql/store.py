"""The SQL family's store: the ``Backend`` protocol once, over a dialect and its connections.

Every call is one transaction (``Link.begin``: it takes the database's write lock up front, so
what a call reads cannot change before it writes) or one read snapshot (``Link.reading``,
which never writes: reads neither take the write lock nor promote, recover or expire
anything). Claim cost stays flat as the table grows because each hot query is a seek in a
partial index (see ``statements``). Time always comes from ``options.clock``, never from SQL,
so the contract suite's fake clock drives leases, delays and retention.

The decisions are ``jobqueue.lifecycle``'s; the steps here and in ``transitions``,
``control`` and ``schedules`` check a guard and write the decided change, all through one
write (``transitions.write``). The seam (``jobqueue.storage.Storage``) is here too, next to
the old verbs until they go: ``apply`` checks each change's guard (``guarded``) and writes
it with that same write.

Waiting never sleeps blindly: same-process submits, retries and resumes wake waiters through
the link's signal; other processes' commits are noticed through ``Link.data_version``,
checked with a short back-off (5 ms doubling to 50 ms).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Literal

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
from jobqueue.backends.sql import control, guarded, reads, schedules
from jobqueue.backends.sql.claims import Served, active_counts, next_waiting, served
from jobqueue.backends.sql.corrupt import fail_corrupt
from jobqueue.backends.sql.dialect import Connection, Dialect, Link, Reader
from jobqueue.backends.sql.rows import job_to_row
from jobqueue.backends.sql.transitions import (
    Txn,
    apply_retention,
    delete,
    forget_old_outcomes,
    holder,
    job_key,
    maintain,
    promote_due,
    record,
    recover,
    repeated,
    store_jobs,
    take,
    write,
)
from jobqueue.changes import Change, ClaimAsk, Selector
from jobqueue.errors import CorruptJobError
from jobqueue.job import (
    JSON,
    MAX_LOG_MESSAGE,
    MAX_LOGS,
    Job,
    JobError,
    JobState,
    dumps_json,
)
from jobqueue.storage import Applied

POLL_START, POLL_MAX = 0.005, 0.05
"""Back-off between checks for other processes' commits while waiting (seconds)."""


class SQLStore:
    """A backend over ``dialect`` and its connections ``link`` (which it closes)."""

    def __init__(self, options: BackendOptions, dialect: Dialect, link: Link) -> None:
        self.options = options
        self._clock = options.clock
        self._dialect = dialect
        self._sql = dialect.sql
        self._error = dialect.error
        self._integrity_error = dialect.integrity_error
        self._log = logging.getLogger(f"jobqueue.backends.{dialect.name}")
        self._link = link
        self._signal = link.signal
        self._recovered = RecoveredLeases()  # until maintain/recover_expired report them
        self._served: tuple[WorkSpec, Served] | None = None  # the last claim's spec, prepared

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

    def schedule_records(self, name: str | None = None) -> list[ScheduleRecord]:
        if name is not None:
            check_schedule_name(name)
        with self._reading() as db:
            return schedules.records(db, name)

    def schedule_record(self, name: str) -> ScheduleRecord | None:
        check_schedule_name(name)
        with self._reading() as db:
            found = schedules.records(db, name)
            return found[0] if found else None

    # -- reading ------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        key = job_key(job_id)
        if key is None:
            return None
        with self._reading() as db:
            row = db.conn.execute(db.sql.JOB, (key,)).fetchone()
            return None if row is None else reads.load_job(db, row)

    def list_jobs(self, state: JobState, offset: int = 0, limit: int = 100) -> list[Job]:
        with self._reading() as db:  # a snapshot: listing never promotes or recovers
            return reads.list_jobs(db, JobState(state), offset, limit)

    def count_by_state(self) -> dict[JobState, int]:
        with self._reading() as db:  # the trigger-kept counts: one read, no maintenance
            return reads.count_by_state(db)

    def count_by_name(self) -> dict[str, dict[JobState, int]]:
        with self._reading() as db:  # one snapshot: the names' counts agree with each other
            return reads.count_by_name(db)

    def outcome_counts(self, since_minute: int) -> dict[int, dict[str, int]]:
        with self._reading() as db:
            return reads.outcome_counts(db, since_minute, self._clock())

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
            return []  # as the reference: no claim, so no promotion either
        promote_due(txn)  # due delayed jobs count as ready; stalls are the core's
        # Paused names are read inside the claim's own transaction: a pause committed by any
        # process stops every claim that starts after it.
        paused = reads.paused_names(txn)
        self._served = last = served(spec, self._served)
        names = last[1]
        caps = names.caps
        # Active counts are read once: within this transaction only its own claims change them.
        active = active_counts(txn, caps)
        blocked = {name for name in paused if name in names.wanted}
        blocked.update(name for name, n in active.items() if n >= caps[name])
        blocked.update(names.closed)
        claims: list[Claim] = []
        while len(claims) < limit:  # also steps past corrupt jobs, each failed on the way
            found = next_waiting(txn, names, blocked, limit - len(claims))
            if not found:
                break
            for name, key in found:  # in run order; a name reaching its cap is passed over
                if len(claims) == limit or name in blocked:
                    continue
                token = secrets.token_hex(8)
                deadline = txn.now + spec.lease_seconds
                txn.conn.execute(
                    txn.sql.CLAIM,
                    (txn.now, token, deadline, txn.next_seq(), spec.dispatcher, key),
                )
                row = txn.conn.execute(txn.sql.JOB, (key,)).fetchone()
                try:
                    claims.append(Claim(reads.load_job(txn, row), token, deadline))
                except CorruptJobError as exc:
                    fail_corrupt(txn, key, str(exc).removeprefix(f"job {key}: "))
                    continue
                if name in caps:
                    active[name] = active.get(name, 0) + 1
                    if active[name] >= caps[name]:
                        blocked.add(name)
        return claims

    # -- lease holders ------------------------------------------------------------------------

    def renew(self, job_id: str, token: str, lease_seconds: float) -> bool:
        with self._transaction() as txn:
            cursor = txn.conn.execute(
                txn.sql.RENEW,
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
                txn.sql.SET_PROGRESS,
                (progress, message, job_key(job_id), token, txn.now),
            )
            return cursor.rowcount == 1

    def add_log(self, job_id: str, token: str, message: str) -> bool:
        with self._transaction() as txn:
            held = holder(txn, job_id, token)
            if held is None:
                return False
            key = held.key
            txn.conn.execute(txn.sql.INSERT_LOG, (key, txn.now, message[:MAX_LOG_MESSAGE]))
            txn.conn.execute(txn.sql.TRIM_LOGS, (key, key, MAX_LOGS))
            return True

    def heartbeat(
        self,
        dispatcher: DispatcherInfo | None,
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
            row = txn.conn.execute(txn.sql.JOB, (job_key(job_id),)).fetchone()
            return reads.load_job(txn, row)

    def promote(self, job_id: str) -> Job | None:
        with self._transaction() as txn:
            if not control.promote(txn, job_id):
                return None
            row = txn.conn.execute(txn.sql.JOB, (job_key(job_id),)).fetchone()
            return reads.load_job(txn, row)

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
        with self._reading() as db:
            return reads.paused_names(db)

    def dispatchers(self) -> list[DispatcherInfo]:
        with self._reading() as db:
            return reads.live_dispatchers(db, self._clock())

    def remove_dispatcher(self, dispatcher_id: str) -> None:
        with self._transaction() as txn:
            control.remove_dispatcher(txn, dispatcher_id)

    # -- the seam (jobqueue.storage.Storage): what the old verbs above become -------------------

    def insert(self, jobs: Sequence[Job]) -> list[Job]:
        return self.submit_many(jobs)

    def apply(self, changes: Sequence[Change], then: ClaimAsk | None = None) -> Applied:
        results = [  # encode first: a bad value stores nothing
            dumps_json(change.set["result"]) if change.set.get("result") is not None else None
            for change in changes
        ]
        with self._transaction() as txn:
            answers = [
                guarded.apply_one(txn, change, result)
                for change, result in zip(changes, results, strict=True)
            ]
            if then is None or (then.unless_conflict and any(answers)):
                return answers, []  # a repeat or a lost lease hands out no next job
            return answers, self._claim(txn, then.spec, then.limit)

    def annotate(
        self,
        job_id: str,
        token: str,
        *,
        progress: tuple[float, str | None] | None = None,
        log: str | None = None,
    ) -> bool:
        with self._transaction() as txn:
            held = holder(txn, job_id, token)
            if held is None:
                return False
            if progress is not None:
                message = None if progress[1] is None else progress[1][:MAX_LOG_MESSAGE]
                txn.conn.execute(txn.sql.SET_PROGRESS_OF, (progress[0], message, held.key))
            if log is not None:
                txn.conn.execute(txn.sql.INSERT_LOG, (held.key, txn.now, log[:MAX_LOG_MESSAGE]))
                txn.conn.execute(txn.sql.TRIM_LOGS, (held.key, held.key, MAX_LOGS))
            return True

    def delete(self, job_ids: Sequence[str]) -> int:
        keys = [key for key in map(job_key, job_ids) if key is not None]
        with self._transaction() as txn:
            return delete(txn, list(dict.fromkeys(keys)))

    def set_paused(self, kind: Literal["worker", "schedule"], name: str, paused: bool) -> None:
        if kind == "schedule":
            check_schedule_name(name)
        with self._transaction() as txn:
            if kind == "schedule":
                schedules.set_paused(txn, name, paused)
            elif paused:
                control.pause(txn, name)
            else:
                control.resume(txn, name)

    def forget(self, kind: Literal["dispatcher", "schedule"], name: str) -> bool:
        if kind == "schedule":
            check_schedule_name(name)
        with self._transaction() as txn:
            if kind == "schedule":
                return schedules.remove(txn, name)
            return control.remove_dispatcher(txn, name)

    def housekeep(self) -> int:
        with self._transaction() as txn:
            moved = promote_due(txn) + apply_retention(txn, self.options.retention)
            control.forget_dead_dispatchers(txn)
            forget_old_outcomes(txn)
            return moved

    def scan(self, selector: Selector, offset: int, limit: int) -> list[Job]:
        with self._reading() as db:
            return guarded.scan(db, selector, offset, limit)

    def expired(self, limit: int) -> list[Claim]:
        with self._reading() as db:
            return guarded.expired(db, self._clock(), limit)

    def counts(self) -> dict[str, dict[JobState, int]]:
        return self.count_by_name()

    # -- maintenance --------------------------------------------------------------------------

    def maintain(self) -> list[Job]:
        with self._transaction() as txn:
            maintain(txn, self.options.max_stalls, self.options.retention)
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
        with self._reading() as db:
            return reads.jobs_by_key(db, [int(job_id) for job_id in taken])

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
            promote_due(txn)
            if reads.has_waiting(txn, wanted):  # paused names do not count
                return True
            timeout = min(timeout, reads.until_due(txn, txn.now))
        deadline = time.monotonic() + max(timeout, 0.0)
        pause = POLL_START
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Same-process submits notify the condition; other processes' commits show up as
            # a new PRAGMA data_version, checked with a short back-off (no server to push).
            wait = min(pause, remaining) if self._link.polls else remaining
            with signal.changed:
                if signal.changed.wait_for(lambda: signal.work != seen, timeout=wait):
                    return True
            pause = min(pause * 2, POLL_MAX)
            current = self._data_version()
            if current != version:
                version = current
                pause = POLL_START
                with self._reading() as db:
                    now = self._clock()
                    if reads.has_waiting(db, wanted) or reads.until_due(db, now) <= 0:
                        return True
                    deadline = min(deadline, time.monotonic() + reads.until_due(db, now))

    def _data_version(self) -> int:
        return self._link.data_version() if self._link.polls else 0

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
                wait = min(pause, remaining) if self._link.polls else remaining
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
        """One write transaction, the database's write lock taken up front: what the body
        reads cannot change before it writes (no read-modify-write race)."""
        link = self._link
        with link.write_lock:
            conn = link.begin()
            txn = Txn(conn, self._sql, self._log, self._clock(), self._integrity_error)
            try:
                yield txn
                txn.flush()
                conn.execute("COMMIT")
                self._recovered.note(str(key) for key in txn.recovered)
            except BaseException as exc:
                link.rollback(conn)  # a failed statement may have rolled it back already
                if isinstance(exc, self._error):
                    raise link.translate(exc) from exc
                raise
        if txn.work_added or txn.changed:
            self._signal.notify(work=txn.work_added)

    def _reading(self) -> AbstractContextManager[Reader]:
        """A read-only snapshot."""
        return self._link.reading(self._reader)

    def _reader(self, conn: Connection) -> Reader:
        return Reader(conn, self._sql, self._log)

    def close(self) -> None:
        self._link.close()
