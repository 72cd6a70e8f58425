"""The SQL family's store: the ``Backend`` protocol once, over a dialect and its connections.

Every call is one transaction (``Link.begin``: it takes the database's write lock up front, so
what a call reads cannot change before it writes) or one read snapshot (``Link.reading``,
which never writes: reads neither take the write lock nor promote, recover or expire
anything). Claim cost stays flat as the table grows because each hot query is a seek in a
partial index (see ``statements``), and, where the dialect has ``CLAIM_SEEK``, while dead
index entries pile up behind a long transaction (``claim_cursor``). Time always comes from
``options.clock``, never from SQL, so the contract suite's fake clock drives leases, delays
and retention.

It decides nothing: ``jobqueue.engine`` asks ``jobqueue.lifecycle`` for every move and hands
it to ``apply``, which checks each change's guard against the row as stored (``guarded``)
and writes it with one statement (``transitions.write``). Claims promote due delayed jobs
but recover no lease: an expired lease is the core's (``expired`` + ``apply``). A dialect
that can do a lease holder's changes and the next claim as one call to its server
(``OneStepWrite``: PostgreSQL's ``jobqueue_apply_held``) is asked first by ``apply`` and
``claim_many``; what it does not cover goes the long way below.

Waiting never sleeps blindly: same-process submits, retries and resumes wake waiters through
the link's signal; other processes' commits are noticed through ``Link.data_version``,
checked with a short back-off (5 ms doubling to 50 ms).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Literal

from jobqueue.backend import (
    Applied,
    BackendOptions,
    Claim,
    DispatcherInfo,
    LeaseStatus,
    ScheduleRecord,
    TickClaim,
    TickResult,
    WorkSpec,
    check_schedule_name,
)
from jobqueue.backends.sql import control, flows, guarded, reads, schedules
from jobqueue.backends.sql.claim_cursor import ClaimCursor
from jobqueue.backends.sql.claims import Served, active_counts, next_waiting, served
from jobqueue.backends.sql.corrupt import fail_corrupt
from jobqueue.backends.sql.dialect import (
    Connection,
    Cursor,
    Dialect,
    Link,
    OneStepWrite,
    Reader,
    Stepped,
    pipeline,
)
from jobqueue.backends.sql.rows import job_to_row, row_to_job
from jobqueue.backends.sql.transitions import (
    MAINTENANCE_BATCH,
    Txn,
    apply_retention,
    delete,
    forget_old_outcomes,
    holder,
    job_key,
    promote_due,
    store_jobs,
)
from jobqueue.changes import Change, ClaimAsk, InState, Selector
from jobqueue.errors import CorruptJobError
from jobqueue.job import (
    MAX_LOG_MESSAGE,
    MAX_LOGS,
    Job,
    JobState,
    dumps_json,
)

_REQUEUED = frozenset({JobState.WAITING, JobState.DELAYED})
Row = Any  # a claim statement's row: n, waiting priority and seq, the job's columns, logs

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
        self._served: tuple[WorkSpec, Served] | None = None  # the last claim's spec, prepared
        self._one_step: OneStepWrite | None = None
        """The dialect's write-and-claim in one call, where it has one (set by its backend)."""
        # Where the dialect can seek past it: claims that stay fast while dead index entries
        # pile up (a long transaction pins the xmin horizon; see ``claim_cursor``).
        self.claim_cursor = ClaimCursor() if dialect.sql.CLAIM_SEEK else None

    # -- writes: each call one transaction -----------------------------------------------------

    def insert(self, jobs: Sequence[Job]) -> list[Job]:
        rows = [job_to_row(job, 0, 0) for job in jobs]  # encode first: bad JSON stores nothing
        if flows.has_flow(jobs):  # one transaction, its references translated (no bulk path)
            with self._transaction(pipelined=True, exclusive=True, ids=len(jobs)) as txn:
                return flows.store_flow(txn, jobs, rows)
        # Only a unique key needs the writers' lock: its holder is read, then the job stored.
        exclusive = any(job.unique_key is not None for job in jobs)
        with self._transaction(pipelined=True, exclusive=exclusive, ids=len(jobs)) as txn:
            return store_jobs(txn, jobs, rows)

    def claim_many(self, spec: WorkSpec, limit: int) -> list[Claim]:
        one = self._one_step
        if one is not None and limit > 0:
            stepped = one.apply((), (), ClaimAsk(spec, limit))
            if stepped is not None:
                return self._stepped((), stepped, spec)[1]
        # Caps need the writers' lock (active jobs are counted, then more claimed).
        with self._transaction(pipelined=True, exclusive=bool(spec.max_active)) as txn:
            return self._claim(txn, spec, limit)

    def _ask(self, txn: Txn) -> tuple[Cursor, Cursor]:
        """A claim's first reads, sent (where statements are pipelined, answered with the
        next read made): the due delayed jobs and the paused names."""
        due = txn.conn.execute(txn.sql.DUE_DELAYED, (txn.now, MAINTENANCE_BATCH))
        return due, txn.conn.execute(txn.sql.PAUSED_NAMES)

    def _claim(
        self, txn: Txn, spec: WorkSpec, limit: int, asked: tuple[Cursor, Cursor] | None = None
    ) -> list[Claim]:
        if limit <= 0:
            return []  # as the reference: no claim, so no promotion either
        # Paused names are read inside the claim's own transaction: a pause committed by any
        # process stops every claim that starts after it. Where statements are pipelined, the
        # due delayed jobs and the paused names are asked for together (one round trip; with
        # an outcome's guard read when the claim follows one: ``asked``).
        if txn.pipelines:
            due, paused_rows = asked or self._ask(txn)
            promote_due(txn, due.fetchall())  # due delayed jobs count as ready
            paused = frozenset(name for (name,) in paused_rows.fetchall())
        else:
            promote_due(txn)  # due delayed jobs count as ready; stalls are the core's
            paused = reads.paused_names(txn)
        self._served = last = served(spec, self._served)
        names = last[1]
        caps = names.caps
        # Active counts are read once: within this transaction only its own claims change them.
        active = active_counts(txn, caps)
        blocked = {name for name in paused if name in names.wanted}
        blocked.update(name for name, n in active.items() if n >= caps[name])
        blocked.update(names.closed)
        if txn.sql.CLAIM_HEADS and len(names.names) - len(blocked) == 1:
            (name,) = (name for name in names.names if name not in blocked)
            room = caps[name] - active.get(name, 0) if name in caps else limit
            return self._claim_heads(txn, spec, name, min(limit, room))
        claims: list[Claim] = []
        while len(claims) < limit:  # also steps past corrupt jobs, each failed on the way
            found = next_waiting(txn, names, blocked, limit - len(claims), self.claim_cursor)
            if not found:
                break
            batch: list[tuple[str, int]] = []
            for name, key in found:  # in run order; a name reaching its cap is passed over
                if len(claims) + len(batch) == limit or name in blocked:
                    continue
                batch.append((name, key))
                if name in caps:
                    active[name] = active.get(name, 0) + 1
                    if active[name] >= caps[name]:
                        blocked.add(name)
            for (name, _), claim in zip(batch, self._take(txn, spec, batch), strict=True):
                if claim is not None:
                    claims.append(claim)
                elif name in caps:  # failed as corrupt, or another writer took it: room again
                    active[name] -= 1
                    if active[name] < caps[name]:
                        blocked.discard(name)
        return claims

    def _claim_heads(self, txn: Txn, spec: WorkSpec, name: str, limit: int) -> list[Claim]:
        """Up to ``limit`` jobs of ``name`` in run order, one statement (``CLAIM_HEADS``, or
        ``CLAIM_SEEK`` past the claim cursor) a round (another only when a job that does not
        decode was failed on the way, or a seek found fewer than asked)."""
        claims: list[Claim] = []
        deadline = txn.now + spec.lease_seconds
        while len(claims) < limit:
            count = limit - len(claims)
            taken = self._heads(txn, spec, name, count, deadline)
            failed = False
            for token, row in taken:
                job_row = row[3:-2]
                logs = list(zip(row[-2] or (), row[-1] or (), strict=True))
                try:
                    claims.append(Claim(row_to_job(job_row, logs), token, deadline))
                except CorruptJobError as exc:
                    key = job_row[0]
                    fail_corrupt(txn, key, str(exc).removeprefix(f"job {key}: "))
                    failed = True
            if len(taken) < count or not failed:
                break
        return claims

    def _heads(
        self, txn: Txn, spec: WorkSpec, name: str, count: int, deadline: float
    ) -> list[tuple[str, Row]]:
        """Up to ``count`` waiting jobs of ``name`` claimed, ``(token, row)`` each, in run
        order: a seek past the claim cursor where it says so, else (and for what a seek did
        not find) the full scan from the index start, timed for the cursor."""
        cursor = self.claim_cursor
        taken: list[tuple[str, Row]] = []
        ranges = None if cursor is None else cursor.plan(name)
        if cursor is not None and ranges is not None:
            seek = (ranges.tops, ranges.bottoms, ranges.afters, name, count, count)
            taken = self._claim_rows(txn, spec, txn.sql.CLAIM_SEEK, seek, count, deadline)
            cursor.sought(name, [(row[1], row[2]) for _, row in taken])
            if len(taken) == count:
                return taken
        need = count - len(taken)
        started = time.perf_counter()
        more = self._claim_rows(txn, spec, txn.sql.CLAIM_HEADS, (name, need), need, deadline)
        if cursor is not None:
            took = time.perf_counter() - started
            cursor.scanned(name, [(row[1], row[2]) for _, row in more], took)
        if not taken:
            return more
        return sorted(taken + more, key=lambda item: (-item[1][1], item[1][2]))

    @staticmethod
    def _claim_rows(
        txn: Txn,
        spec: WorkSpec,
        sql: str,
        head: tuple[object, ...],
        count: int,
        deadline: float,
    ) -> list[tuple[str, Row]]:
        """One claim statement (``head``: its leading parameters) for up to ``count`` jobs:
        ``(token, row)`` each, in run order (``n``, the row's first column)."""
        tokens = [secrets.token_hex(8) for _ in range(count)]
        first = txn.next_seq(count)
        rows = txn.conn.execute(
            sql, (*head, txn.now, tokens, deadline, first, spec.dispatcher)
        ).fetchall()
        return [(tokens[row[0] - 1], row) for row in sorted(rows, key=lambda row: int(row[0]))]

    def _take(self, txn: Txn, spec: WorkSpec, batch: list[tuple[str, int]]) -> list[Claim | None]:
        """Claim ``batch``'s jobs: one statement each, sent together, and their logs read in
        one; a job that does not decode is failed as corrupt (``None`` in its place)."""
        deadline = txn.now + spec.lease_seconds
        first = txn.next_seq(len(batch)) if batch else 0
        tokens = [secrets.token_hex(8) for _ in batch]
        rows = txn.fetch_each(
            txn.sql.CLAIM_RETURNING,
            [
                (txn.now, token, deadline, first + n, spec.dispatcher, key)
                for n, ((_, key), token) in enumerate(zip(batch, tokens, strict=True))
            ],
        )
        logs = reads.job_logs(txn, [key for _, key in batch])
        taken: list[Claim | None] = []
        for (_, key), token, row in zip(batch, tokens, rows, strict=True):
            if row is None:  # another writer claimed it since it was read: not ours
                taken.append(None)
                continue
            try:
                taken.append(Claim(row_to_job(row, logs.get(key, ())), token, deadline))
            except CorruptJobError as exc:
                fail_corrupt(txn, key, str(exc).removeprefix(f"job {key}: "))
                taken.append(None)
        return taken

    def apply(self, changes: Sequence[Change], then: ClaimAsk | None = None) -> Applied:
        results = [  # encode first: a bad value stores nothing
            dumps_json(change.set["result"]) if change.set.get("result") is not None else None
            for change in changes
        ]
        one = self._one_step
        if one is not None:  # complete-and-claim-next in one call, where the dialect can
            stepped = one.apply(changes, results, then)
            if stepped is not None:
                return self._stepped(changes, stepped, None if then is None else then.spec)
        # A lease holder's outcomes lock only their rows; a move guarded by state (which may
        # read a unique key's holder) or a claim under caps takes the writers' lock.
        # A delivery reads the state of the job it comes from: a finished job changes only
        # by a move guarded by state, so under the lock that state stays as read.
        exclusive = any(
            isinstance(change.guard, InState) or change.deliver is not None for change in changes
        ) or (then is not None and bool(then.spec.max_active))
        with self._transaction(pipelined=True, exclusive=exclusive) as txn:
            # Complete-and-claim-next: the claim's first reads go with the guard's.
            claiming = then is not None and then.limit > 0 and txn.pipelines
            asked = self._ask(txn) if claiming else None
            answers = guarded.apply_all(txn, changes, results)
            if then is None or (then.unless_conflict and any(answers)):
                return answers, []  # a repeat or a lost lease hands out no next job
            return answers, self._claim(txn, then.spec, then.limit, asked)

    def _stepped(
        self, changes: Sequence[Change], stepped: Stepped, spec: WorkSpec | None
    ) -> Applied:
        """What a ``OneStepWrite`` call did, told as ``apply`` tells it: waiters woken as the
        commit of a transaction with those moves wakes them, a claimed record that does not
        decode failed as corrupt and replaced (the claim has committed: a transaction more)."""
        work = stepped.promoted > 0
        changed = False
        for change, conflict in zip(changes, stepped.conflicts, strict=True):
            if conflict is None:
                work = work or change.to in _REQUEUED
                changed = changed or change.to.is_finished
        claims = stepped.claims
        if stepped.corrupt:
            with self._transaction() as txn:
                for key, reason in stepped.corrupt:
                    fail_corrupt(txn, key, reason)
            if spec is not None:
                claims = claims + self.claim_many(spec, len(stepped.corrupt))
        if work or changed:
            self._signal.notify(work=work)
        return stepped.conflicts, claims

    def heartbeat(
        self,
        dispatcher: DispatcherInfo | None,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
    ) -> list[LeaseStatus]:
        with self._transaction() as txn:
            return control.heartbeat(txn, dispatcher, leases, lease_seconds)

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

    def claim_tick(self, claim: TickClaim) -> TickResult:
        # Encoded first, as submit does: a refused job changes nothing, the record included.
        row = None if claim.job is None else job_to_row(claim.job, 0, 0)
        with self._transaction() as txn:
            return schedules.claim_tick(txn, claim, row)

    def forget(self, kind: Literal["dispatcher", "schedule"], name: str) -> bool:
        if kind == "schedule":
            check_schedule_name(name)
        with self._transaction() as txn:
            if kind == "schedule":
                return schedules.remove(txn, name)
            return control.remove_dispatcher(txn, name)

    def housekeep(self) -> int:
        with self._transaction() as txn:
            if txn.sql.FOLD_COUNTS:
                txn.conn.execute(txn.sql.FOLD_COUNTS)
            moved = promote_due(txn) + apply_retention(txn, self.options.retention)
            control.forget_dead_dispatchers(txn)
            forget_old_outcomes(txn)
            return moved

    # -- reads: one snapshot each, never a write -----------------------------------------------

    def get(self, job_id: str) -> Job | None:
        key = job_key(job_id)
        if key is None:
            return None
        with self._reading() as db:
            row = db.conn.execute(db.sql.JOB, (key,)).fetchone()
            return None if row is None else reads.load_job(db, row)

    def scan(self, selector: Selector, offset: int, limit: int) -> list[Job]:
        with self._reading() as db:
            return guarded.scan(db, selector, offset, limit)

    def expired(self, limit: int) -> list[Claim]:
        with self._reading() as db:
            return guarded.expired(db, self._clock(), limit)

    def counts(self) -> dict[str, dict[JobState, int]]:
        with self._reading() as db:  # one snapshot: the names' counts agree with each other
            return reads.count_by_name(db)

    def outcome_counts(self, since_minute: int) -> dict[int, dict[str, int]]:
        with self._reading() as db:
            return reads.outcome_counts(db, since_minute, self._clock())

    def dispatchers(self) -> list[DispatcherInfo]:
        with self._reading() as db:
            return reads.live_dispatchers(db, self._clock())

    def paused(self) -> frozenset[str]:
        with self._reading() as db:
            return reads.paused_names(db)

    def schedule_records(self, name: str | None = None) -> list[ScheduleRecord]:
        if name is not None:
            check_schedule_name(name)
        with self._reading() as db:
            return schedules.records(db, name)

    # -- waiting -------------------------------------------------------------------------------

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

    # -- plumbing ------------------------------------------------------------------------------

    @contextmanager
    def _transaction(
        self, *, pipelined: bool = False, exclusive: bool = True, ids: int = 0
    ) -> Iterator[Txn]:
        """One write transaction, the database's write lock taken up front: what the body
        reads cannot change before it writes (no read-modify-write race). A dialect whose
        writers run side by side leaves the lock out unless ``exclusive``: the body then
        locks the rows it reads for a decision (``FOR UPDATE``, ``SKIP LOCKED``) and
        writes no row every writer updates; ``ids``: job ids to reserve. Its last writes
        and the commit go together (``dialect.pipeline``); ``pipelined``: the whole body's
        too, for bodies that never read a ``rowcount`` (which a pipeline knows only later)."""
        link = self._link
        with link.write_lock:
            conn = link.begin(exclusive=exclusive, ids=ids)
            txn = Txn(conn, self._sql, self._log, self._clock(), self._integrity_error)
            try:
                with pipeline(conn) if pipelined else nullcontext():
                    yield txn
                    if pipelined:
                        txn.flush()
                        conn.execute("COMMIT")
                if not pipelined:
                    with pipeline(conn):
                        txn.flush()
                        conn.execute("COMMIT")
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
