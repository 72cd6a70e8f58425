"""In-process backend: the reference implementation of the Backend contract.

Everything lives in Python dicts guarded by one lock, so it serves tests, scripts and
single-process apps. Time comes from ``options.clock`` so tests move it without sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace

from jobqueue import policy
from jobqueue.backend import (
    BackendOptions,
    Claim,
    DispatcherInfo,
    LeaseStatus,
    Outcome,
    ScheduleRecord,
    TickClaim,
    TickOutcome,
    TickResult,
    WorkSpec,
    check_schedule_name,
)
from jobqueue.backends.outcome_counts import OutcomeCounts
from jobqueue.backends.recovered import RecoveredLeases
from jobqueue.backends.schedule_book import ScheduleBook
from jobqueue.errors import InvalidURLError, JobStateError, LeaseLostError
from jobqueue.job import (
    JSON,
    MAX_LOG_MESSAGE,
    MAX_LOGS,
    Attempt,
    AttemptOutcome,
    Job,
    JobError,
    JobLog,
    JobState,
    add_attempt,
    dumps_json,
)

_LIVE = (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE)


class MemoryBackend:
    """Thread-safe in-memory backend (``memory://``). Not shared between processes."""

    def __init__(self, options: BackendOptions | None = None) -> None:
        self.options = options or BackendOptions()
        self._clock = self.options.clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._order = itertools.count(1)  # submission order, separate so ids stay 1, 2, 3…
        self._jobs: dict[str, Job] = {}
        self._seq: dict[str, int] = {}  # submission order, renewed on retry
        self._leases: dict[str, tuple[str, float]] = {}  # job id -> (token, deadline)
        # job id -> (token, call) of the call that ended its last lease, so a repeat of that
        # call reports its outcome; gone once the job is claimed again, retried or removed.
        self._ended: dict[str, tuple[str, str]] = {}
        self._unique: dict[str, str] = {}  # unique key -> live job id
        # A heap per worker name of (-priority, seq, job id); stale entries are skipped lazily.
        self._ready: dict[str, list[tuple[int, int, str]]] = {}
        self._delayed: list[tuple[float, int, str]] = []  # (run_at, seq, job id), lazy too
        # Finished job ids per state, in finishing order (dicts keep insertion order).
        self._finished: dict[JobState, dict[str, None]] = {
            JobState.COMPLETED: {},
            JobState.FAILED: {},
            JobState.CANCELLED: {},
        }
        self._paused: set[str] = set()
        self._dispatchers: dict[str, tuple[DispatcherInfo, float]] = {}  # id -> (info, expiry)
        self._outcomes = OutcomeCounts()  # finished attempts per minute, by outcome
        self._schedules = ScheduleBook()  # periodic schedules' records and recent ticks
        self._recovered = RecoveredLeases()  # until maintain/recover_expired report them
        self._wakeups = 0

    @classmethod
    def from_url(cls, url: str, options: BackendOptions) -> MemoryBackend:
        """``memory://``: nothing else to say (each queue gets its own store)."""
        if url.rstrip("/") != "memory:":
            raise InvalidURLError(
                f"bad memory URL {url!r}: it takes no host, path or parameters; use memory://"
            )
        return cls(options)

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, job: Job) -> Job:
        _check_storable(job)
        with self._lock:
            stored = self._store(job)
            self._notify()
            return stored.copy()

    def submit_many(self, jobs: Sequence[Job]) -> list[Job]:
        for job in jobs:  # every job first: a refused one stores nothing
            _check_storable(job)
        with self._lock:
            stored = [self._store(job).copy() for job in jobs]
            self._notify()
            return stored

    def _store(self, job: Job) -> Job:
        if job.unique_key is not None:
            existing = self._unique.get(job.unique_key)
            if existing is not None and self._jobs[existing].state in _LIVE:
                return replace(self._view(self._jobs[existing]), deduplicated=True)
        now = self._clock()
        # A read's lease deadline is no part of a new job (the lease is kept in _leases).
        job = replace(job, id=str(next(self._ids)), logs=list(job.logs), lease_expires_at=None)
        job.state = JobState.DELAYED if job.run_at > now else JobState.WAITING
        self._jobs[job.id] = job
        if job.unique_key is not None:
            self._unique[job.unique_key] = job.id
        self._enqueue(job)
        return job

    def _enqueue(self, job: Job) -> None:
        seq = next(self._order)
        self._seq[job.id] = seq
        if job.state is JobState.WAITING:
            heapq.heappush(self._ready.setdefault(job.name, []), (-job.priority, seq, job.id))
        else:
            heapq.heappush(self._delayed, (job.run_at, seq, job.id))

    # -- periodic schedules -------------------------------------------------------------------

    def claim_tick(self, claim: TickClaim) -> TickResult:
        if claim.job is not None:
            _check_storable(claim.job)  # as submit: a refused job changes nothing
        with self._lock:
            result = self._schedules.claim(claim, self._clock(), self._job_state, self._store)
            if result.outcome is not TickOutcome.SUBMITTED or result.job is None:
                return result
            self._notify()
            return TickResult(result.outcome, result.job.copy())

    def _job_state(self, job_id: str) -> JobState | None:
        job = self._jobs.get(job_id)
        return None if job is None else job.state

    def pause_schedule(self, name: str) -> None:
        check_schedule_name(name)
        with self._lock:
            self._schedules.set_paused(name, True, self._clock())

    def resume_schedule(self, name: str) -> None:
        check_schedule_name(name)
        with self._lock:
            self._schedules.set_paused(name, False, self._clock())

    def remove_schedule(self, name: str) -> bool:
        check_schedule_name(name)
        with self._lock:
            return self._schedules.remove(name)

    def schedule_records(self) -> list[ScheduleRecord]:
        with self._lock:
            return self._schedules.all()

    def schedule_record(self, name: str) -> ScheduleRecord | None:
        check_schedule_name(name)
        with self._lock:
            return self._schedules.get(name)

    # -- reading ------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return self._view(job) if job else None

    def _view(self, job: Job) -> Job:
        """A copy to hand out, with the lease deadline of an active job filled in."""
        view = job.copy()
        lease = self._leases.get(job.id) if job.state is JobState.ACTIVE else None
        view.lease_expires_at = None if lease is None else lease[1]
        return view

    def list_jobs(self, state: JobState, offset: int = 0, limit: int = 100) -> list[Job]:
        with self._lock:
            jobs = [job for job in self._jobs.values() if job.state is state]
            if state is JobState.WAITING:
                jobs.sort(key=lambda j: (-j.priority, self._seq[j.id]))
            elif state is JobState.DELAYED:
                jobs.sort(key=lambda j: (j.run_at, self._seq[j.id]))
            elif state is JobState.ACTIVE:
                jobs.sort(key=lambda j: self._leases[j.id][1])
            else:
                jobs.sort(key=lambda j: (j.finished_at or 0.0, int(j.id)), reverse=True)
            return [self._view(job) for job in jobs[offset : offset + limit]]

    def count_by_state(self) -> dict[JobState, int]:
        with self._lock:
            counts = dict.fromkeys(JobState, 0)
            for job in self._jobs.values():
                counts[job.state] += 1
            return counts

    def count_by_name(self) -> dict[str, dict[JobState, int]]:
        with self._lock:
            counts: dict[str, dict[JobState, int]] = {}
            for job in self._jobs.values():
                counts.setdefault(job.name, dict.fromkeys(JobState, 0))[job.state] += 1
            return counts

    def outcome_counts(self, since_minute: int) -> dict[int, dict[str, int]]:
        with self._lock:
            return self._outcomes.read(since_minute, self._clock())

    def _count(self, outcome: AttemptOutcome) -> None:
        """Count a finished attempt, under the lock of the step that finished it."""
        self._outcomes.add(self._clock(), outcome)

    # -- claiming -----------------------------------------------------------------------------

    def claim(self, spec: WorkSpec) -> Claim | None:
        with self._lock:
            return self._claim(spec)

    def _claim(self, spec: WorkSpec) -> Claim | None:
        now = self._clock()
        self._maintain(now)
        best: tuple[int, int, str] | None = None
        for name in spec.names:
            if name in self._paused:
                continue
            cap = spec.max_active.get(name)
            if cap is not None and self._active_count(name) >= cap:
                continue
            entry = self._peek(name)
            if entry is not None and (best is None or entry < best):
                best = entry
        if best is None:
            return None
        job = self._jobs[best[2]]
        heapq.heappop(self._ready[job.name])
        token = secrets.token_hex(8)
        deadline = now + spec.lease_seconds
        job.state = JobState.ACTIVE
        job.attempts_made += 1
        job.started_at = now
        job.dispatcher = spec.dispatcher
        self._leases[job.id] = (token, deadline)
        self._ended.pop(job.id, None)  # the old token is fenced from now on
        return Claim(self._view(job), token, deadline)

    def _peek(self, name: str) -> tuple[int, int, str] | None:
        heap = self._ready.get(name)
        while heap:
            _, seq, job_id = heap[0]
            job = self._jobs.get(job_id)
            if job is not None and job.state is JobState.WAITING and self._seq[job_id] == seq:
                return heap[0]
            heapq.heappop(heap)  # stale: removed, claimed, or re-queued with a new seq
        return None

    def _active_count(self, name: str) -> int:
        return sum(1 for job_id in self._leases if self._jobs[job_id].name == name)

    def _maintain(self, now: float) -> int:
        """Promote due delayed jobs, recover expired leases and apply retention."""
        moved = 0
        while self._delayed and self._delayed[0][0] <= now:
            _, seq, job_id = heapq.heappop(self._delayed)
            job = self._jobs.get(job_id)
            if job is not None and job.state is JobState.DELAYED and self._seq[job_id] == seq:
                job.state = JobState.WAITING
                self._enqueue(job)
                moved += 1
        return moved + self._recover(now) + self._apply_retention(now)

    # -- lease holders ------------------------------------------------------------------------

    def renew(self, job_id: str, token: str, lease_seconds: float) -> bool:
        with self._lock:
            if not self._holds(job_id, token):
                return False
            self._leases[job_id] = (token, self._clock() + lease_seconds)
            return True

    def complete(
        self, job_id: str, token: str, result: JSON, next_spec: WorkSpec | None
    ) -> Claim | None:
        with self._lock:
            if not self._holds(job_id, token) and self._repeated(job_id, token, "complete"):
                # The first call's claim went to its caller; a repeat claims nothing more.
                return None
            job = self._take(job_id, token, "complete")
            self._complete(job, result)
            self._changed.notify_all()
            return self._claim(next_spec) if next_spec is not None else None

    def claim_many(self, spec: WorkSpec, limit: int) -> list[Claim]:
        with self._lock:
            return self._claim_up_to(spec, limit)

    def finish_many(
        self, outcomes: Sequence[Outcome], next_spec: WorkSpec | None, limit: int
    ) -> tuple[list[JobState | None], list[Claim]]:
        with self._lock:
            states: list[JobState | None] = []
            for outcome in outcomes:
                call = "complete" if outcome.error is None else "fail"
                if not self._holds(outcome.job_id, outcome.token):
                    states.append(self._repeated(outcome.job_id, outcome.token, call))
                    continue
                job = self._take(outcome.job_id, outcome.token, call)
                if outcome.error is None:
                    self._complete(job, outcome.result)
                else:
                    self._fail(job, outcome.error, outcome.retry_at)
                states.append(job.state)
            self._changed.notify_all()
            claims = self._claim_up_to(next_spec, limit) if next_spec is not None else []
            return states, claims

    def _claim_up_to(self, spec: WorkSpec, limit: int) -> list[Claim]:
        claims: list[Claim] = []
        while len(claims) < limit:
            claim = self._claim(spec)
            if claim is None:
                break
            claims.append(claim)
        return claims

    def fail(self, job_id: str, token: str, error: JobError, retry_at: float | None) -> JobState:
        with self._lock:
            if not self._holds(job_id, token):
                state = self._repeated(job_id, token, "fail")
                if state is not None:
                    return state
            job = self._take(job_id, token, "fail")
            self._fail(job, error, retry_at)
            self._changed.notify_all()
            return job.state

    def _complete(self, job: Job, result: JSON) -> None:
        # A cancel that came while the handler finished is too late: the result is kept.
        self._record_attempt(job, AttemptOutcome.COMPLETED, None)
        self._finish(job, JobState.COMPLETED)
        job.result = result
        self._count(AttemptOutcome.COMPLETED)

    def _fail(self, job: Job, error: JobError, retry_at: float | None) -> None:
        job.error = error
        if job.cancel_requested:  # asked to stop: never run again
            self._record_attempt(job, AttemptOutcome.CANCELLED, error)
            self._finish(job, JobState.CANCELLED)
            self._count(AttemptOutcome.CANCELLED)
        elif retry_at is None:
            self._record_attempt(job, AttemptOutcome.FAILED, error)
            self._finish(job, JobState.FAILED)
            self._count(AttemptOutcome.FAILED)
        else:
            self._record_attempt(job, AttemptOutcome.RETRIED, error)
            self._requeue(job, retry_at)
            self._count(AttemptOutcome.RETRIED)

    def release(self, job_id: str, token: str) -> bool:
        with self._lock:
            if not self._holds(job_id, token):
                return self._repeated(job_id, token, "release") is not None
            job = self._take(job_id, token, "release")
            self._record_attempt(job, AttemptOutcome.RELEASED, None)
            job.attempts_made = max(job.attempts_made - 1, 0)
            if job.cancel_requested:
                self._finish(job, JobState.CANCELLED)
                self._count(AttemptOutcome.CANCELLED)  # the job ended: asked to stop
                self._changed.notify_all()
            else:
                self._requeue(job, self._clock())  # handed back: no attempt counted
            return True

    def finish_cancelled(self, job_id: str, token: str, error: JobError | None) -> bool:
        with self._lock:
            if not self._holds(job_id, token):
                return self._repeated(job_id, token, "finish_cancelled") is not None
            job = self._take(job_id, token, "finish_cancelled")
            if error is not None:
                job.error = error
            self._record_attempt(job, AttemptOutcome.CANCELLED, error)
            self._finish(job, JobState.CANCELLED)
            self._count(AttemptOutcome.CANCELLED)
            self._changed.notify_all()
            return True

    def _record_attempt(self, job: Job, outcome: AttemptOutcome, error: JobError | None) -> None:
        attempt = Attempt(
            job.attempts_made, job.dispatcher, job.started_at, self._clock(), outcome, error
        )
        job.history = add_attempt(job.history, attempt)
        job.dispatcher = None

    # -- the control plane --------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobState | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.state in (JobState.WAITING, JobState.DELAYED):
                self._finish(job, JobState.CANCELLED)
                self._changed.notify_all()
            elif job.state is JobState.ACTIVE:
                job.cancel_requested = True
            return job.state

    def retry(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            self._retry(job)
            return job.copy()

    def retry_many(self, state: JobState, name: str | None = None) -> int:
        with self._lock:
            retried = 0
            for job_id in list(self._finished.get(state, {})):
                job = self._jobs[job_id]
                if name is not None and job.name != name:
                    continue
                try:
                    self._retry(job)
                except JobStateError:
                    continue  # another live job holds its unique key
                retried += 1
            return retried

    def _retry(self, job: Job) -> None:
        if job.state not in (JobState.FAILED, JobState.CANCELLED):
            raise JobStateError(
                f"job {job.id} is {job.state.value}: only failed or cancelled jobs are retried"
            )
        if job.unique_key is not None:
            holder = self._unique.get(job.unique_key)
            if holder is not None and holder != job.id and self._jobs[holder].state in _LIVE:
                raise JobStateError(
                    f"job {job.id} cannot be retried: job {holder} holds its unique key "
                    f"{job.unique_key!r}"
                )
            self._unique[job.unique_key] = job.id
        self._finished[job.state].pop(job.id, None)
        self._ended.pop(job.id, None)  # a new life: the last attempt's token is fenced
        job.attempts_made = job.stalls = 0
        job.cancel_requested = False
        job.result = None
        job.finished_at = None
        self._requeue(job, self._clock())

    def promote(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.state is not JobState.DELAYED:
                raise JobStateError(
                    f"job {job_id} is {job.state.value}: only delayed jobs are run ahead of time"
                )
            self._requeue(job, self._clock())  # its delayed entry goes stale (a new seq)
            return self._view(job)

    def cancel_many(self, state: JobState, name: str | None = None) -> int:
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.state is state and name in (None, j.name)]
            if state is JobState.ACTIVE:
                jobs = [job for job in jobs if not job.cancel_requested]
                for job in jobs:
                    job.cancel_requested = True
                return len(jobs)
            if state is JobState.WAITING:
                jobs.sort(key=lambda j: (j.name, -j.priority, self._seq[j.id]))
            elif state is JobState.DELAYED:
                jobs.sort(key=lambda j: (j.run_at, self._seq[j.id]))
            else:
                return 0
            for job in jobs:  # finishing order is what retention goes by
                self._finish(job, JobState.CANCELLED)
            if jobs:
                self._changed.notify_all()
            return len(jobs)

    def purge(
        self, state: JobState, name: str | None = None, finished_before: float | None = None
    ) -> int:
        with self._lock:
            doomed = [
                job_id
                for job_id in self._finished.get(state, {})
                if (name is None or self._jobs[job_id].name == name)
                and (
                    finished_before is None
                    or (self._jobs[job_id].finished_at or 0.0) < finished_before
                )
            ]
            for job_id in doomed:
                self._drop(job_id)
            if doomed:
                self._changed.notify_all()
            return len(doomed)

    def pause(self, name: str) -> None:
        with self._lock:
            self._paused.add(name)

    def resume(self, name: str) -> None:
        with self._lock:
            self._paused.discard(name)
            self._notify()

    def paused(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._paused)

    def heartbeat(
        self,
        dispatcher: DispatcherInfo,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
    ) -> list[LeaseStatus]:
        with self._lock:
            now = self._clock()
            statuses = []
            for job_id, token in leases:
                if not self._holds(job_id, token):
                    statuses.append(LeaseStatus.LOST)
                    continue
                self._leases[job_id] = (token, now + lease_seconds)
                cancel = self._jobs[job_id].cancel_requested
                statuses.append(LeaseStatus.CANCEL if cancel else LeaseStatus.HELD)
            info = replace(dispatcher, last_seen=now, jobs=tuple(job_id for job_id, _ in leases))
            self._dispatchers[dispatcher.id] = (info, now + lease_seconds)
            return statuses

    def remove_dispatcher(self, dispatcher_id: str) -> None:
        with self._lock:
            self._dispatchers.pop(dispatcher_id, None)

    def dispatchers(self) -> list[DispatcherInfo]:
        with self._lock:
            now = self._clock()
            live = [info for info, expires in self._dispatchers.values() if expires > now]
            return sorted(live, key=lambda info: (info.started_at, info.id))

    def set_progress(self, job_id: str, token: str, progress: float, message: str | None) -> bool:
        with self._lock:
            if not self._holds(job_id, token):
                return False
            job = self._jobs[job_id]
            job.progress = progress
            job.progress_message = None if message is None else message[:MAX_LOG_MESSAGE]
            return True

    def add_log(self, job_id: str, token: str, message: str) -> bool:
        with self._lock:
            if not self._holds(job_id, token):
                return False
            job = self._jobs[job_id]
            job.logs.append(JobLog(self._clock(), message[:MAX_LOG_MESSAGE]))
            del job.logs[:-MAX_LOGS]
            return True

    def _holds(self, job_id: str, token: str) -> bool:
        lease = self._leases.get(job_id)
        return lease is not None and lease[0] == token and lease[1] > self._clock()

    def _take(self, job_id: str, token: str, call: str) -> Job:
        """Check the token and drop the lease, remembering which ``call`` ended it; the
        caller moves the job on."""
        if not self._holds(job_id, token):
            raise LeaseLostError(policy.lease_lost_message(job_id))
        del self._leases[job_id]
        self._ended[job_id] = (token, call)
        return self._jobs[job_id]

    def _repeated(self, job_id: str, token: str, call: str) -> JobState | None:
        """For a token that no longer holds the job: the job's state if ``call`` with this
        token is what ended its last lease (a repeat), else ``None`` (fenced)."""
        job = self._jobs.get(job_id)
        if job is None or self._ended.get(job_id) != (token, call):
            return None
        return job.state if job.state in policy.REPEAT_STATES[call] else None

    def _requeue(self, job: Job, run_at: float) -> None:
        job.run_at = run_at
        job.state = JobState.DELAYED if run_at > self._clock() else JobState.WAITING
        self._enqueue(job)
        self._notify()

    def _finish(self, job: Job, state: JobState) -> None:
        job.state = state
        job.finished_at = self._clock()
        self._finished[state][job.id] = None
        if job.unique_key is not None and self._unique.get(job.unique_key) == job.id:
            del self._unique[job.unique_key]

    # -- maintenance --------------------------------------------------------------------------

    def maintain(self) -> list[Job]:
        with self._lock:
            self._maintain(self._clock())
            now = self._clock()
            for dispatcher_id, (_, expires) in list(self._dispatchers.items()):
                if expires <= now:
                    del self._dispatchers[dispatcher_id]
            self._outcomes.trim(now)
            return self._take_recovered()

    def recover_expired(self) -> list[Job]:
        with self._lock:
            self._recover(self._clock())
            return self._take_recovered()

    def _take_recovered(self) -> list[Job]:
        """The jobs recovered since the last report, as they are now (a removed one is
        left out)."""
        taken = self._recovered.take()
        return [self._view(self._jobs[job_id]) for job_id in taken if job_id in self._jobs]

    def _recover(self, now: float) -> int:
        expired = [job_id for job_id, (_, deadline) in self._leases.items() if deadline <= now]
        for job_id in expired:
            del self._leases[job_id]
            job = self._jobs[job_id]
            job.stalls += 1
            self._record_attempt(job, AttemptOutcome.STALLED, None)
            if job.cancel_requested:
                self._finish(job, JobState.CANCELLED)
                self._count(AttemptOutcome.CANCELLED)
            elif policy.is_stalled_too_often(job.stalls, self.options.max_stalls):
                job.error = policy.stalled_error(job.stalls)
                self._finish(job, JobState.FAILED)
                self._count(AttemptOutcome.FAILED)
            else:
                self._requeue(job, now)
                self._count(AttemptOutcome.RETRIED)
        if expired:
            self._recovered.note(expired)
            self._changed.notify_all()
        return len(expired)

    def _apply_retention(self, now: float) -> int:
        removed = 0
        for cutoff in policy.retention_cutoffs(self.options.retention, now):
            finished = self._finished[cutoff.state]
            while finished:
                oldest = next(iter(finished))
                too_many = cutoff.keep is not None and len(finished) > cutoff.keep
                finished_at = self._jobs[oldest].finished_at or 0.0
                too_old = cutoff.before is not None and finished_at <= cutoff.before
                if not (too_many or too_old):
                    break
                self._drop(oldest)
                removed += 1
        return removed

    def remove(self, job_id: str) -> bool:
        with self._lock:
            if job_id not in self._jobs:
                return False
            self._drop(job_id)
            self._changed.notify_all()
            return True

    def _drop(self, job_id: str) -> None:
        job = self._jobs.pop(job_id)
        self._seq.pop(job_id, None)
        if job.state.is_finished:
            self._finished[job.state].pop(job_id, None)
        self._leases.pop(job_id, None)
        self._ended.pop(job_id, None)
        if job.unique_key is not None and self._unique.get(job.unique_key) == job_id:
            del self._unique[job.unique_key]

    # -- waiting ------------------------------------------------------------------------------

    def _notify(self) -> None:
        self._wakeups += 1
        self._changed.notify_all()

    def wait_for_work(self, names: Iterable[str], timeout: float) -> bool:
        wanted = set(names)
        with self._lock:
            now = self._clock()
            self._maintain(now)
            if any(self._peek(name) for name in wanted - self._paused):
                return True
            due = [deadline for _, deadline in self._leases.values()]
            if self._delayed:
                due.append(self._delayed[0][0])
            if due:
                timeout = min(timeout, max(min(due) - now, 0.0))
            seen = self._wakeups
            self._changed.wait_for(lambda: self._wakeups != seen, timeout=max(timeout, 0.0))
            return self._wakeups != seen

    def wait_for_finish(self, job_id: str, timeout: float) -> Job | None:
        with self._lock:

            def finished() -> bool:
                job = self._jobs.get(job_id)
                return job is None or job.state.is_finished

            if not self._changed.wait_for(finished, timeout=max(timeout, 0.0)):
                return None
            job = self._jobs.get(job_id)
            return job.copy() if job else None

    def close(self) -> None:
        """Nothing to release; the jobs live as long as this object."""


def _check_storable(job: Job) -> None:
    """Refuse, as every store does, a job whose data or result is not plain JSON
    (``NotSerializableError``), before anything is stored."""
    dumps_json(job.data)
    if job.result is not None:
        dumps_json(job.result)
