"""In-process backend: storage mechanics for the Backend contract, nothing more.

Everything lives in Python dicts guarded by one lock, so it serves tests, scripts and
single-process apps. Time comes from ``options.clock`` so tests move it without sleeping.
What a job becomes is decided by ``jobqueue.lifecycle``; ``_write`` checks each decided
``Change``'s guard and applies it. The state and that write live in ``memory_store``
(``MemoryStore``, the base class); the Backend calls are here.
"""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import replace

from jobqueue import lifecycle
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
from jobqueue.backends.memory_store import MemoryStore, check_storable
from jobqueue.errors import InvalidURLError, LeaseLostError
from jobqueue.job import (
    JSON,
    MAX_LOG_MESSAGE,
    MAX_LOGS,
    Job,
    JobError,
    JobLog,
    JobState,
)


class MemoryBackend(MemoryStore):
    """Thread-safe in-memory backend (``memory://``). Not shared between processes."""

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
        check_storable(job)
        with self._lock:
            stored = self._store(job)
            self._notify()
            return stored.copy()

    def submit_many(self, jobs: Sequence[Job]) -> list[Job]:
        for job in jobs:  # every job first: a refused one stores nothing
            check_storable(job)
        with self._lock:
            stored = [self._store(job).copy() for job in jobs]
            self._notify()
            return stored

    # -- periodic schedules -------------------------------------------------------------------

    def claim_tick(self, claim: TickClaim) -> TickResult:
        if claim.job is not None:
            check_storable(claim.job)  # as submit: a refused job changes nothing
        with self._lock:
            result = self._schedules.claim(claim, self._clock(), self._job_state, self._store)
            if result.outcome is not TickOutcome.SUBMITTED or result.job is None:
                return result
            self._notify()
            return TickResult(result.outcome, result.job.copy())

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
            done, _ = self._end(job_id, token, "complete", result=result)
            if not done:  # a repeat: the first call's claim went to its caller
                return None
            return self._claim(next_spec) if next_spec is not None else None

    def claim_many(self, spec: WorkSpec, limit: int) -> list[Claim]:
        with self._lock:
            return self._claim_up_to(spec, limit)

    def finish_many(
        self, outcomes: Sequence[Outcome], next_spec: WorkSpec | None, limit: int
    ) -> tuple[list[JobState | None], list[Claim]]:
        with self._lock:
            states = [
                self._end(o.job_id, o.token, "complete", result=o.result, lost_ok=True)[1]
                if o.error is None
                else self._end(o.job_id, o.token, "fail", o.error, o.retry_at, lost_ok=True)[1]
                for o in outcomes
            ]
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
            state = self._end(job_id, token, "fail", error, retry_at)[1]
            assert state is not None  # a lost lease raised
            return state

    def release(self, job_id: str, token: str) -> bool:
        with self._lock:
            return self._end(job_id, token, "release", lost_ok=True)[1] is not None

    def finish_cancelled(self, job_id: str, token: str, error: JobError | None) -> bool:
        with self._lock:
            return self._end(job_id, token, "finish_cancelled", error, lost_ok=True)[1] is not None

    def _end(
        self,
        job_id: str,
        token: str,
        call: str,
        error: JobError | None = None,
        retry_at: float | None = None,
        *,
        result: JSON = None,
        lost_ok: bool = False,
    ) -> tuple[bool, JobState | None]:
        """End the lease ``token`` holds with ``call``'s decided change: ``(True, state)``.
        When the guard fails (the token no longer holds the job): ``(False, state)``, the
        state a repeat of ``call`` reports; a lost lease gets ``(False, None)`` or, unless
        ``lost_ok``, ``LeaseLostError``."""
        job = self._jobs.get(job_id)
        if job is not None:
            now = self._clock()
            if call == "complete":
                change = lifecycle.on_complete(job, token, result, now)
            elif call == "fail":
                assert error is not None
                change = lifecycle.on_fail(job, token, error, retry_at, now)
            elif call == "release":
                change = lifecycle.on_release(job, token, now)
            else:
                change = lifecycle.on_cancelled(job, token, error, now)
            if self._write(change, now):
                return True, job.state
        ended = self._ended.get(job_id) == (token, call)
        state = lifecycle.repeat_or_lost(call, ended, None if job is None else job.state)
        if state is None and not lost_ok:
            raise LeaseLostError(lifecycle.lease_lost_message(job_id))
        return False, state

    # -- the control plane --------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobState | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            change = lifecycle.on_cancel(job)
            if change is not None:
                self._write(change, self._clock())
            return job.state

    def retry(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            self._retry(job)
            return job.copy()

    def retry_many(self, state: JobState, name: str | None = None) -> int:
        if state not in lifecycle.RETRIABLE:
            return 0
        with self._lock:
            jobs, now = [self._jobs[job_id] for job_id in self._finished[state]], self._clock()
            return sum(
                self._write(lifecycle.on_retry(job, now), now)
                for job in jobs
                if name in (None, job.name)
            )

    def _retry(self, job: Job) -> None:
        now = self._clock()
        if not self._write(lifecycle.on_retry(job, now), now):
            holder = self._unique_holder(job)
            assert holder is not None and job.unique_key is not None
            raise lifecycle.unique_key_taken(job.id, holder, job.unique_key)

    def promote(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            self._write(lifecycle.on_promote(job), self._clock())
            return self._view(job)

    def cancel_many(self, state: JobState, name: str | None = None) -> int:
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.state is state and name in (None, j.name)]
            if state is JobState.WAITING:
                jobs.sort(key=lambda j: (j.name, -j.priority, self._seq[j.id]))
            elif state is JobState.DELAYED:
                jobs.sort(key=lambda j: (j.run_at, self._seq[j.id]))
            # Finishing order is what retention goes by: the order they would have run.
            changes = [change for job in jobs if (change := lifecycle.on_cancel(job))]
            now = self._clock()
            return sum(self._write(change, now) for change in changes)

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
            self._write(lifecycle.on_stall(self._jobs[job_id], self.options.max_stalls, now), now)
        if expired:
            self._recovered.note(expired)
        return len(expired)

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

    def remove(self, job_id: str) -> bool:
        with self._lock:
            if job_id not in self._jobs:
                return False
            self._drop(job_id)
            self._changed.notify_all()
            return True

    # -- waiting ------------------------------------------------------------------------------

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
