"""The memory backend's state and the one place it changes (``MemoryBackend``'s base).

What the store holds -- jobs, leases, the ready heaps and delayed heap, finished order,
unique keys, dispatchers, schedules -- and the mechanics every call shares: storing a new
job, queueing it, the guarded write of a decided ``Change`` (``_write``), the copies handed
out, dropping a job, waking waiters. ``jobqueue.backends.memory`` builds the Backend calls on
these; this split only keeps each file to one idea. Callers hold ``_lock``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Sequence
from dataclasses import replace

from jobqueue import lifecycle
from jobqueue.backend import BackendOptions, DispatcherInfo
from jobqueue.backends.outcome_counts import OutcomeCounts
from jobqueue.backends.schedule_book import ScheduleBook
from jobqueue.changes import Change, Held, InState
from jobqueue.dependency import Dependency
from jobqueue.job import FINISHED_STATES, LIVE_STATES, Job, JobState, dumps_json

_ACTIVE = JobState.ACTIVE


class MemoryStore:
    """The in-memory state, guarded by ``_lock`` (``_changed`` wakes its waiters)."""

    def __init__(self, options: BackendOptions | None = None) -> None:
        self.options = options or BackendOptions()
        self._clock = self.options.clock
        self._cutoffs = lifecycle.retention_cutoffs(self.options.retention)
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
        self._wakeups = 0

    def _store(self, job: Job) -> Job:
        if job.unique_key is not None:
            existing = self._unique.get(job.unique_key)
            if existing is not None and self._jobs[existing].state.is_live:
                return replace(self._view(self._jobs[existing]), deduplicated=True)
        now = self._clock()
        # A read's lease deadline is no part of a new job (the lease is kept in _leases).
        job = replace(job, id=str(next(self._ids)), logs=list(job.logs), lease_expires_at=None)
        job.state = JobState.BLOCKED if job.depends_on else lifecycle.due_state(job.run_at, now)
        self._jobs[job.id] = job
        if job.unique_key is not None:
            self._unique[job.unique_key] = job.id
        self._enqueue(job)
        return job

    def _enqueue(self, job: Job) -> None:
        seq = next(self._order)
        self._seq[job.id] = seq
        if job.state is JobState.BLOCKED:
            return  # listed by sequence from _seq; nothing claims it
        if job.state is JobState.WAITING:
            heapq.heappush(self._ready.setdefault(job.name, []), (-job.priority, seq, job.id))
        else:
            heapq.heappush(self._delayed, (job.run_at, seq, job.id))

    def _job_state(self, job_id: str) -> JobState | None:
        job = self._jobs.get(job_id)
        return None if job is None else job.state

    def _view(self, job: Job) -> Job:
        """A copy to hand out, with the lease deadline of an active job filled in."""
        view = job.copy()
        lease = self._leases.get(job.id) if job.state is JobState.ACTIVE else None
        view.lease_expires_at = None if lease is None else lease[1]
        return view

    def _write(self, change: Change, now: float) -> bool:
        """The one guarded write: if ``change.guard`` holds, move the job to ``change.to``
        (its lease, ready or delayed entry, finished order), take or free its unique key,
        wake waiters and count the outcome; else change nothing and answer ``False``."""
        job = self._jobs.get(change.job_id)
        if job is None or not self._guard_holds(job, change, now):
            return False
        old, to = job.state, change.to
        if change.deliver is not None:
            job.dependency_outcomes = {
                **job.dependency_outcomes,
                change.deliver.from_id: dict(change.deliver.outcome),
            }
            if to is JobState.WAITING:
                if any(d.job_id not in job.dependency_outcomes for d in job.depends_on):
                    return True  # still blocked by another dependency
                to = lifecycle.due_state(job.run_at, now)
        if old is _ACTIVE and to is not _ACTIVE:
            token, _ = self._leases.pop(job.id)
            if change.ends_lease is not None:  # so a repeat of that call gets its answer
                self._ended[job.id] = (token, change.ends_lease)
        if change.fence:
            self._ended.pop(job.id, None)
        for name, value in change.set.items():
            setattr(job, name, value)
        if change.ended is not None:
            record = change.ended.record(job.attempts_made, job.dispatcher, job.started_at, now)
            job.history = lifecycle.bounded_history(job.history, record)
            job.dispatcher = None
            if not change.ended.counted:
                job.attempts_made = max(job.attempts_made - 1, 0)
        if old in FINISHED_STATES:
            self._finished[old].pop(job.id, None)
        job.state = to
        if job.unique_key is not None and (to in LIVE_STATES) is not (old in LIVE_STATES):
            if to in LIVE_STATES:  # the guard found the key free
                self._unique[job.unique_key] = job.id
            elif self._unique.get(job.unique_key) == job.id:
                del self._unique[job.unique_key]
        if change.counts_as is not None:
            self._outcomes.add(now, change.counts_as)
        if to in FINISHED_STATES:
            job.finished_at = now
            self._finished[to][job.id] = None
            self._changed.notify_all()
        elif to is not _ACTIVE:
            if change.run_at is not None:
                job.run_at = now + change.run_at
            self._enqueue(job)  # a new seq: any older ready or delayed entry goes stale
            self._notify()
        return True

    def _guard_holds(self, job: Job, change: Change, now: float) -> bool:
        if change.deliver is not None:
            source = self._jobs.get(change.deliver.from_id)
            if source is None or source.state not in change.deliver.states:
                return False
        guard = change.guard
        if isinstance(guard, InState):
            if job.state not in guard.states:
                return False
            if change.to in LIVE_STATES and job.state not in LIVE_STATES and job.unique_key:
                return self._unique_holder(job) is None
            return True
        lease = self._leases.get(job.id)
        if lease is None or lease[0] != guard.token:
            return False
        if guard.cancel_requested is not None and job.cancel_requested != guard.cancel_requested:
            return False
        return lease[1] > now if isinstance(guard, Held) else lease[1] <= now

    def _unique_holder(self, job: Job) -> str | None:
        """Another live job holding ``job``'s unique key, if any."""
        assert job.unique_key is not None
        holder = self._unique.get(job.unique_key)
        if holder is None or holder == job.id or not self._jobs[holder].state.is_live:
            return None
        return holder

    def _holds(self, job_id: str, token: str) -> bool:
        lease = self._leases.get(job_id)
        return lease is not None and lease[0] == token and lease[1] > self._clock()

    def _drop(self, job_id: str) -> None:
        job = self._jobs.pop(job_id)
        self._seq.pop(job_id, None)
        if job.state.is_finished:
            self._finished[job.state].pop(job_id, None)
        self._leases.pop(job_id, None)
        self._ended.pop(job_id, None)
        if job.unique_key is not None and self._unique.get(job.unique_key) == job_id:
            del self._unique[job.unique_key]

    def _notify(self) -> None:
        self._wakeups += 1
        self._changed.notify_all()


def translate_refs(job: Job, batch_ids: Sequence[str]) -> None:
    """Replace the ``"@k"`` references of a flow's job by the ids its batch got."""

    def resolve(ref: str) -> str:
        return batch_ids[int(ref[1:])] if ref.startswith("@") else ref

    if job.flow_id is not None:
        job.flow_id = resolve(job.flow_id)
    job.depends_on = tuple(Dependency(resolve(d.job_id), d.on_failure) for d in job.depends_on)
    job.dependents = tuple(Dependency(resolve(d.job_id), d.on_failure) for d in job.dependents)


def check_storable(job: Job) -> None:
    """Refuse, as every store does, a job whose data or result is not plain JSON
    (``NotSerializableError``), before anything is stored."""
    dumps_json(job.data)
    if job.result is not None:
        dumps_json(job.result)
