"""In-process backend: the storage seam (``jobqueue.backend.Backend``) on Python dicts.

Everything lives in dicts guarded by one lock, so it serves tests, scripts and single-process
apps. Time comes from ``options.clock`` so tests move it without sleeping. It decides nothing:
``jobqueue.engine`` asks ``jobqueue.lifecycle`` and hands the decided changes to ``apply``,
whose guarded write is ``MemoryStore._write`` (the state lives in ``memory_store``).
"""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Literal

from jobqueue.backend import (
    Applied,
    BackendOptions,
    Claim,
    DispatcherInfo,
    LeaseStatus,
    ScheduleRecord,
    TickClaim,
    TickOutcome,
    TickResult,
    WorkSpec,
    check_schedule_name,
)
from jobqueue.backends.memory_store import MemoryStore, check_storable, translate_refs
from jobqueue.changes import Change, ClaimAsk, Conflict, InState, Selector
from jobqueue.errors import InvalidURLError
from jobqueue.job import MAX_LOG_MESSAGE, MAX_LOGS, Job, JobLog, JobState


class MemoryBackend(MemoryStore):
    """Thread-safe in-memory store (``memory://``). Not shared between processes."""

    @classmethod
    def from_url(cls, url: str, options: BackendOptions) -> MemoryBackend:
        """``memory://``: nothing else to say (each queue gets its own store)."""
        if url.rstrip("/") != "memory:":
            raise InvalidURLError(
                f"bad memory URL {url!r}: it takes no host, path or parameters; use memory://"
            )
        return cls(options)

    # -- writes ---------------------------------------------------------------------------

    def insert(self, jobs: Sequence[Job]) -> list[Job]:
        for job in jobs:  # every job first: a refused one stores nothing
            check_storable(job)
        with self._lock:
            stored = [self._store(job) for job in jobs]
            if any(job.flow_id is not None for job in jobs):  # a flow's "@k" references
                batch_ids = [job.id for job in stored]
                for job in stored:
                    if not job.deduplicated:
                        translate_refs(job, batch_ids)
            stored = [job.copy() for job in stored]
            self._notify()
            return stored

    def claim_many(self, spec: WorkSpec, limit: int) -> list[Claim]:
        with self._lock:
            return self._claim_up_to(spec, limit, self._clock())

    def apply(self, changes: Sequence[Change], then: ClaimAsk | None = None) -> Applied:
        with self._lock:
            now = self._clock()
            answers = [None if self._write(c, now) else self._conflict(c, now) for c in changes]
            if then is None or (then.unless_conflict and any(answers)):
                return answers, []
            return answers, self._claim_up_to(then.spec, then.limit, now)

    def heartbeat(
        self,
        dispatcher: DispatcherInfo | None,
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
            if dispatcher is not None:
                held = tuple(job_id for job_id, _ in leases)
                info = replace(dispatcher, last_seen=now, jobs=held)
                self._dispatchers[dispatcher.id] = (info, now + lease_seconds)
            return statuses

    def annotate(
        self,
        job_id: str,
        token: str,
        *,
        progress: tuple[float, str | None] | None = None,
        log: str | None = None,
    ) -> bool:
        with self._lock:
            if not self._holds(job_id, token):
                return False
            job = self._jobs[job_id]
            if progress is not None:
                job.progress, message = progress
                job.progress_message = None if message is None else message[:MAX_LOG_MESSAGE]
            if log is not None:
                job.logs.append(JobLog(self._clock(), log[:MAX_LOG_MESSAGE]))
                del job.logs[:-MAX_LOGS]
            return True

    def delete(self, job_ids: Sequence[str]) -> int:
        with self._lock:
            doomed = [job_id for job_id in dict.fromkeys(job_ids) if job_id in self._jobs]
            for job_id in doomed:
                self._drop(job_id)
            if doomed:
                self._changed.notify_all()
            return len(doomed)

    def set_paused(self, kind: Literal["worker", "schedule"], name: str, paused: bool) -> None:
        if kind == "schedule":
            check_schedule_name(name)
        with self._lock:
            if kind == "schedule":
                self._schedules.set_paused(name, paused, self._clock())
            elif paused:
                self._paused.add(name)
            else:
                self._paused.discard(name)
                self._notify()

    def claim_tick(self, tick: TickClaim) -> TickResult:
        if tick.job is not None:
            check_storable(tick.job)  # as insert: a refused job changes nothing
        with self._lock:
            result = self._schedules.claim(tick, self._clock(), self._job_state, self._store)
            if result.outcome is not TickOutcome.SUBMITTED or result.job is None:
                return result
            self._notify()
            return TickResult(result.outcome, result.job.copy())

    def forget(self, kind: Literal["dispatcher", "schedule"], name: str) -> bool:
        if kind == "schedule":
            check_schedule_name(name)
        with self._lock:
            if kind == "schedule":
                return self._schedules.remove(name)
            return self._dispatchers.pop(name, None) is not None

    def housekeep(self) -> int:
        with self._lock:
            now = self._clock()
            moved = self._promote(now) + self._apply_retention(now)
            for dispatcher_id, (_, expires) in list(self._dispatchers.items()):
                if expires <= now:
                    del self._dispatchers[dispatcher_id]
            self._outcomes.trim(now)
            return moved

    # -- reads ----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return self._view(job) if job else None

    def scan(self, selector: Selector, offset: int, limit: int) -> list[Job]:
        state, name, before = selector.state, selector.name, selector.finished_before
        with self._lock:
            jobs = [
                job
                for job in self._jobs.values()
                if job.state is state
                and name in (None, job.name)
                and (before is None or (job.finished_at or 0.0) < before)
            ]
            if state is JobState.WAITING:
                jobs.sort(key=lambda j: (-j.priority, self._seq[j.id]))
            elif state is JobState.DELAYED:
                jobs.sort(key=lambda j: (j.run_at, self._seq[j.id]))
            elif state is JobState.ACTIVE:
                jobs.sort(key=lambda j: self._leases[j.id][1])
            elif state is JobState.BLOCKED:
                jobs.sort(key=lambda j: self._seq[j.id])
            else:
                jobs.sort(key=lambda j: (j.finished_at or 0.0, int(j.id)), reverse=True)
            return [self._view(job) for job in jobs[offset : offset + limit]]

    def expired(self, limit: int) -> list[Claim]:
        with self._lock:
            now = self._clock()
            due = sorted(
                (deadline, job_id, token)
                for job_id, (token, deadline) in self._leases.items()
                if deadline <= now
            )
            return [
                Claim(self._view(self._jobs[job_id]), token, deadline)
                for deadline, job_id, token in due[:limit]
            ]

    def counts(self) -> dict[str, dict[JobState, int]]:
        with self._lock:
            counts: dict[str, dict[JobState, int]] = {}
            for job in self._jobs.values():
                counts.setdefault(job.name, dict.fromkeys(JobState, 0))[job.state] += 1
            return counts

    def outcome_counts(self, since_minute: int) -> dict[int, dict[str, int]]:
        with self._lock:
            return self._outcomes.read(since_minute, self._clock())

    def dispatchers(self) -> list[DispatcherInfo]:
        with self._lock:
            now = self._clock()
            live = [info for info, expires in self._dispatchers.values() if expires > now]
            return sorted(live, key=lambda info: (info.started_at, info.id))

    def paused(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._paused)

    def schedule_records(self, name: str | None = None) -> list[ScheduleRecord]:
        if name is not None:
            check_schedule_name(name)
        with self._lock:
            if name is None:
                return self._schedules.all()
            record = self._schedules.get(name)
            return [] if record is None else [record]

    # -- waits ----------------------------------------------------------------------------

    def wait_for_work(self, names: Iterable[str], timeout: float) -> bool:
        wanted = set(names)
        with self._lock:
            now = self._clock()
            self._promote(now)
            if any(self._peek(name) for name in wanted - self._paused):
                return True
            # A delayed job coming due is work; an expired lease is not until maintenance
            # recovers it (that write wakes the waiters), so it sets no deadline here.
            if self._delayed:
                timeout = min(timeout, max(self._delayed[0][0] - now, 0.0))
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

    # -- mechanics ------------------------------------------------------------------------

    def _conflict(self, change: Change, now: float) -> Conflict:
        """The job as a failed guard found it (see ``Conflict``)."""
        job = self._jobs.get(change.job_id)
        if job is None:
            return Conflict(None)
        guard = change.guard
        token = None if isinstance(guard, InState) else guard.token
        lease, ended = self._leases.get(job.id), self._ended.get(job.id)
        # The unique key was the reason only when the state itself was right.
        keyed = isinstance(guard, InState) and job.state in guard.states and job.unique_key
        return Conflict(
            job.state,
            held=lease is not None and lease[0] == token and lease[1] > now,
            ended_by=ended[1] if ended is not None and ended[0] == token else None,
            cancel_requested=job.cancel_requested,
            unique_holder=self._unique_holder(job) if keyed else None,
        )

    def _claim_up_to(self, spec: WorkSpec, limit: int, now: float) -> list[Claim]:
        self._promote(now)
        claims: list[Claim] = []
        while len(claims) < limit and (claim := self._claim(spec, now)) is not None:
            claims.append(claim)
        return claims

    def _claim(self, spec: WorkSpec, now: float) -> Claim | None:
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

    def _promote(self, now: float) -> int:
        """Due delayed jobs into their ready lines (a new sequence number each)."""
        moved = 0
        while self._delayed and self._delayed[0][0] <= now:
            _, seq, job_id = heapq.heappop(self._delayed)
            job = self._jobs.get(job_id)
            if job is not None and job.state is JobState.DELAYED and self._seq[job_id] == seq:
                job.state = JobState.WAITING
                self._enqueue(job)
                moved += 1
        if moved:
            self._notify()
        return moved

    def _apply_retention(self, now: float) -> int:
        removed = 0
        for cutoff in self._cutoffs:
            finished = self._finished[cutoff.state]
            while finished:
                oldest = next(iter(finished))
                if not cutoff.removes(len(finished), self._jobs[oldest].finished_at or 0.0, now):
                    break
                self._drop(oldest)
                removed += 1
        return removed
