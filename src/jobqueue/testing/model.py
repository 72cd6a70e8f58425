"""The model the state machine checks a backend against: its jobs and schedules as plain
records, and ``ModelBook``, the bookkeeping that moves them as the lifecycle's rules say
(finish, requeue, stall recovery, promotion, operator retry). See ``state_machine``."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobqueue import lifecycle
from jobqueue.backend import DispatcherInfo, ScheduleRecord, TickEntry
from jobqueue.job import JSON, JobState
from jobqueue.testing.clock import ManualClock

MAX_STALLS = 2
NAMES = ("a", "b")
DISPATCHERS = ("d1", "d2")
RETRYABLE = (JobState.FAILED, JobState.CANCELLED)
FINISHED = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)
SCHEDULES = ("s1", "s2")
FIRST_TICK = 1_700_000_040.0


@dataclass
class ModelJob:
    id: str
    name: str
    priority: int
    run_at: float
    state: JobState = JobState.WAITING
    token: str | None = None
    lease_deadline: float = 0.0
    attempts_made: int = 0
    stalls: int = 0
    cancel_requested: bool = False
    finished_at: float | None = None
    result: JSON = None
    # A flow's edges (every rule "cancel"), the dependencies that delivered an outcome, and
    # those whose outcome was a failure (what a retry of that one dependency undoes).
    depends_on: list[str] = field(default_factory=list)
    dependents: list[str] = field(default_factory=list)
    delivered: set[str] = field(default_factory=set)
    failures: set[str] = field(default_factory=set)


@dataclass
class ModelSchedule:
    definition: str = ""
    last_tick: float | None = None
    last_job_id: str | None = None
    paused: bool = False
    missed: int = 0
    skipped: int = 0
    updated_at: float = 0.0
    recent: list[TickEntry] = field(default_factory=list)  # newest first

    def record(self, name: str) -> ScheduleRecord:
        return ScheduleRecord(
            name,
            self.definition,
            self.last_tick,
            self.last_job_id,
            self.paused,
            self.missed,
            self.skipped,
            self.updated_at,
            tuple(self.recent[: lifecycle.SCHEDULE_TICKS_KEPT]),
        )


class ModelBook:
    """The model's state (set by the machine's ``__init__``) and its bookkeeping."""

    clock: ManualClock
    jobs: dict[str, ModelJob]
    removed: list[str]  # ids of jobs the backend no longer has
    stale_tokens: list[tuple[str, str]]  # (job id, token) no longer valid
    repeatable: dict[str, tuple[str, str]]  # job id -> (token, call) answered on repeat
    paused: set[str]
    dispatchers: dict[str, tuple[DispatcherInfo, float]]  # id -> (info, expiry)
    outcomes: dict[int, dict[str, int]]  # minute -> outcome -> attempts
    first_minute: int
    schedules: dict[str, ModelSchedule]
    recovered: list[str]  # ids recovered from expired leases, not reported

    def _finish(self, job: ModelJob, state: JobState, follow: bool = True) -> None:
        """``job`` ended ``state``; with ``follow``, its flow's dependents learn it at once."""
        if job.token is not None:
            self.stale_tokens.append((job.id, job.token))
        job.state, job.token, job.finished_at = state, None, self.clock()
        if not follow:
            return
        if state is JobState.COMPLETED:
            self._deliver(job)
        else:
            self._cascade(job)

    # -- flows: what the core's flow rules do (``jobqueue.flow_rules``) ---------------------

    def _deliver(self, job: ModelJob) -> None:
        """A completion: each blocked dependent takes the outcome, waiting once it has all."""
        for dependent in self._dependents(job):
            if dependent.state is JobState.BLOCKED:
                dependent.delivered.add(job.id)
                if set(dependent.depends_on) <= dependent.delivered:
                    dependent.state = JobState.WAITING  # its run_at is its submit time

    def _cascade(self, job: ModelJob) -> None:
        """A failure or cancel: each blocked dependent is cancelled, and so on down."""
        for dependent in self._dependents(job):
            if dependent.state is JobState.BLOCKED:
                dependent.delivered.add(job.id)
                dependent.failures.add(job.id)
                self._finish(dependent, JobState.CANCELLED)

    def _dependents(self, job: ModelJob) -> list[ModelJob]:
        return [self.jobs[d] for d in job.dependents if d in self.jobs]

    def _revive(self, job: ModelJob) -> None:
        """``job`` was retried: dependents it alone had ended wait for it again, catching up
        at once on the outcomes their other dependencies gave meanwhile."""
        frontier = [job]
        while frontier:
            source = frontier.pop()
            for dependent in self._dependents(source):
                ended = dependent.state in (JobState.CANCELLED, JobState.FAILED)
                if not ended or dependent.failures != {source.id}:
                    continue
                dependent.state, dependent.finished_at = JobState.BLOCKED, None
                dependent.delivered.discard(source.id)
                dependent.failures.clear()
                frontier.append(dependent)
                self._catch_up(dependent)

    def _catch_up(self, dependent: ModelJob) -> None:
        """What the sweep does for one blocked job: the outcomes it lacks, in edge order."""
        for dep_id in dependent.depends_on:
            if dependent.state is not JobState.BLOCKED:
                return
            if dep_id in dependent.delivered:
                continue
            source = self.jobs.get(dep_id)
            if source is None:  # removed: its rule as for a cancel (no outcome recorded)
                self._finish(dependent, JobState.CANCELLED)
            elif source.state is JobState.COMPLETED:
                dependent.delivered.add(dep_id)
                if set(dependent.depends_on) <= dependent.delivered:
                    dependent.state = JobState.WAITING
            elif source.state in (JobState.FAILED, JobState.CANCELLED):
                dependent.delivered.add(dep_id)
                dependent.failures.add(dep_id)
                self._finish(dependent, JobState.CANCELLED)

    def _sweep(self) -> None:
        """``maintain``'s sweep: every blocked job (in submit order) catches up."""
        for job in sorted(self.jobs.values(), key=lambda j: int(j.id)):
            if job.state is JobState.BLOCKED:
                self._catch_up(job)

    def _count(self, outcome: str) -> None:
        counts = self.outcomes.setdefault(lifecycle.outcome_minute(self.clock()), {})
        counts[outcome] = counts.get(outcome, 0) + 1

    def _requeue(self, job: ModelJob, run_at: float) -> None:
        if job.token is not None:
            self.stale_tokens.append((job.id, job.token))
        job.token, job.run_at = None, run_at
        job.state = JobState.DELAYED if run_at > self.clock() else JobState.WAITING

    def _recover_expired(self) -> int:
        now = self.clock()
        recovered = 0
        for job in self.jobs.values():
            if job.state is JobState.ACTIVE and job.lease_deadline <= now:
                recovered += 1
                self.recovered.append(job.id)
                job.stalls += 1
                if job.cancel_requested:
                    self._finish(job, JobState.CANCELLED)
                    self._count("cancelled")
                elif job.stalls > MAX_STALLS:
                    self._finish(job, JobState.FAILED)
                    self._count("failed")
                else:
                    self._requeue(job, now)
                    self._count("retried")
        return recovered

    def _promote(self) -> int:
        """What claims do first: due delayed jobs become waiting (claims recover nothing)."""
        now = self.clock()
        promoted = 0
        for job in self.jobs.values():
            if job.state is JobState.DELAYED and job.run_at <= now:
                job.state = JobState.WAITING
                promoted += 1
        return promoted

    def _maintain(self) -> int:
        """What ``maintain`` does: promote due jobs, recover expired leases, sweep flows."""
        moved = self._promote() + self._recover_expired()
        self._sweep()
        return moved

    def _ready(self, names: tuple[str, ...]) -> list[ModelJob]:
        return [
            job
            for job in self.jobs.values()
            if job.name in names and job.name not in self.paused and job.state is JobState.WAITING
        ]

    def _active(self) -> list[ModelJob]:
        return sorted(
            (j for j in self.jobs.values() if j.state is JobState.ACTIVE), key=lambda j: j.id
        )

    def _live(self, job: ModelJob) -> bool:
        return job.state is JobState.ACTIVE and job.lease_deadline > self.clock()

    def _retried(self, job: ModelJob, revive: bool = True) -> None:
        self.repeatable.pop(job.id, None)  # retried: the old token is fenced
        job.state, job.run_at = JobState.WAITING, self.clock()
        job.attempts_made = job.stalls = 0
        job.cancel_requested, job.finished_at, job.result = False, None, None
        if revive:
            self._revive(job)

    def _forget(self, job_id: str) -> None:
        del self.jobs[job_id]
        self.removed.append(job_id)
