"""The Backend protocol: the one contract every storage backend meets.

A backend stores jobs and moves them between states, each move one atomic step. It never runs
handlers and decides no rule of a job's life: ``jobqueue.lifecycle`` decides each move (what a
failed, stalled, released or cancelled attempt becomes, retention cut-offs, which states hold a
unique key) as a guarded ``Change``; the backend checks the guard (the caller's lease token,
fencing) and writes it atomically. (Redis's Lua still holds its own copies, for now.)

The protocol has three parts:

* **transitions** — submit, claim, complete, fail, release, renew/heartbeat, cancel, retry,
  purge, pause/resume, and the periodic schedules' tick claims: each one atomic step;
* **reads** — get, list, counts, paused names, live dispatchers, schedule records: they never
  write, so a dashboard or a metrics scrape costs no transition;
* **maintenance** — promote due jobs, recover expired leases, apply retention, forget dead
  dispatchers (``maintain``), driven by dispatchers on a schedule.

Every time a backend needs "now" it reads ``options.clock`` so that tests (and the shared
contract suite in ``jobqueue.testing``) can move time without sleeping. (A backend with a
server of its own may measure leases on the server's clock when ``clock`` is the default
``time.time``, so hosts with skewed clocks agree: the Redis backend does.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

from jobqueue.job import JSON, Job, JobError, JobState
from jobqueue.storage import Storage

# The value types live in ``jobqueue.values``; re-exported here, their documented home
# (``__all__`` also makes the API docs render them under ``jobqueue.backend``).
from jobqueue.values import (
    MAX_SCHEDULE_DEFINITION,
    MAX_SCHEDULE_NAME,
    OVERLAP_MODES,
    TICK_ENTRY_OUTCOMES,
    BackendOptions,
    Claim,
    Clock,
    DispatcherInfo,
    LeaseStatus,
    Outcome,
    Retention,
    ScheduleRecord,
    ThroughputBucket,
    TickClaim,
    TickEntry,
    TickOutcome,
    TickResult,
    WorkSpec,
    check_schedule_name,
)

__all__ = [
    "MAX_SCHEDULE_DEFINITION",
    "MAX_SCHEDULE_NAME",
    "OVERLAP_MODES",
    "TICK_ENTRY_OUTCOMES",
    "Backend",
    "BackendFactory",
    "BackendOptions",
    "BatchBackend",
    "Claim",
    "Clock",
    "DispatcherInfo",
    "HandoffBackend",
    "LeaseStatus",
    "Maintenance",
    "Outcome",
    "Reads",
    "Retention",
    "ScheduleRecord",
    "ThroughputBucket",
    "TickClaim",
    "TickEntry",
    "TickOutcome",
    "TickResult",
    "Transitions",
    "WorkSpec",
    "check_schedule_name",
]


@runtime_checkable
class Transitions(Protocol):
    """Atomic state changes: each call is one step (a Lua script, a SQL transaction, a
    lock), fenced by the caller's lease token where it holds one.

    ``complete``, ``fail``, ``release`` and ``finish_cancelled`` are idempotent per lease
    token: repeating the call that ended a lease, with that lease's token, while the job has
    not moved on (not claimed again, retried or removed), reports the first call's outcome and
    changes nothing. A different one of these calls with that token is refused, and so is the
    token of a lease that expired and was recovered (fencing)."""

    def submit(self, job: Job) -> Job:
        """Store a new job (``state`` is WAITING or DELAYED, ``run_at`` its due time) and
        return it with its ``id`` assigned. If ``job.unique_key`` is set and a waiting,
        delayed or active job holds that key, store nothing and return that job instead."""
        ...

    def submit_many(self, jobs: Sequence[Job]) -> list[Job]:
        """Store several new jobs, as ``submit`` would, in as few round trips as possible."""
        ...

    def claim(self, spec: WorkSpec) -> Claim | None:
        """Atomically take the next ready job among ``spec.names``: highest priority first,
        then submission order. Due delayed jobs are promoted and expired leases recovered
        first. The claimed job is ACTIVE with ``attempts_made`` counted and ``started_at`` set."""
        ...

    def renew(self, job_id: str, token: str, lease_seconds: float) -> bool:
        """Extend the lease; ``False`` if the token no longer holds the job."""
        ...

    def heartbeat(
        self,
        dispatcher: DispatcherInfo,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
    ) -> list[LeaseStatus]:
        """One step: renew every ``(job_id, token)`` lease as ``renew`` would, and record the
        dispatcher as alive (``last_seen`` now, ``jobs`` the leases' ids) until one
        ``lease_seconds`` from now. Returns each lease's status, in order."""
        ...

    def complete(
        self, job_id: str, token: str, result: JSON, next_spec: WorkSpec | None
    ) -> Claim | None:
        """Mark the job COMPLETED with ``result`` and, when ``next_spec`` is given, claim the
        next job in the same atomic step (one round trip where the backend allows).
        Raises ``LeaseLostError`` if the token no longer holds the job, unless this token's
        lease was ended by a ``complete`` (a repeat): then nothing changes and no claim is
        made, and it returns ``None`` (a Redis resend after a lost reply gets the claim its
        first run made)."""
        ...

    def fail(self, job_id: str, token: str, error: JobError, retry_at: float | None) -> JobState:
        """Record ``error``. With ``retry_at`` the job goes back to WAITING (or DELAYED until
        ``retry_at``); without, it is FAILED. Returns the new state. Raises
        ``LeaseLostError`` if the token no longer holds the job, unless this token's lease
        was ended by a ``fail`` (a repeat): then nothing changes and it returns the job's
        state (the one the first call moved it to, or CANCELLED / WAITING if a cancel or the
        retry's due time moved it on since)."""
        ...

    def release(self, job_id: str, token: str) -> bool:
        """Give an active job back to WAITING without counting the attempt (shutdown); a
        cancel-requested job ends CANCELLED instead. ``False`` if the token no longer holds
        the job; a repeat of the ``release`` that ended this token's lease returns ``True``
        and changes nothing."""
        ...

    def finish_cancelled(self, job_id: str, token: str, error: JobError | None) -> bool:
        """The holder stopped the handler of a cancel-requested job: CANCELLED, the
        attempt recorded as cancelled (with ``error`` when the handler raised). ``False``
        if the token no longer holds the job; a repeat of the ``finish_cancelled`` that
        ended this token's lease returns ``True`` and changes nothing."""
        ...

    def set_progress(self, job_id: str, token: str, progress: float, message: str | None) -> bool:
        """Store the running job's progress (0-100); ``False`` if the lease was lost."""
        ...

    def add_log(self, job_id: str, token: str, message: str) -> bool:
        """Append a timestamped log line (bounded); ``False`` if the lease was lost."""
        ...

    def cancel(self, job_id: str) -> JobState | None:
        """Cancel a job. Waiting or delayed: CANCELLED at once (``finished_at`` set, its
        unique key freed). Active: ``cancel_requested`` is set and it stays ACTIVE until its
        holder calls ``finish_cancelled`` — or its lease expires, and then it is CANCELLED,
        not retried. A holder that completes first keeps its result (the cancel came too
        late); a failure of a cancel-requested job is not retried. Finished: unchanged.
        Returns the job's state after the call, or ``None`` if there is no such job."""
        ...

    def retry(self, job_id: str) -> Job | None:
        """A FAILED or CANCELLED job back to WAITING now: ``attempts_made`` and ``stalls``
        from 0, ``cancel_requested`` off, ``result``, ``finished_at`` cleared; ``error``
        and ``history`` kept. Returns the job as it now is, ``None`` if there is none.
        Raises ``JobStateError`` if it is in another state, or if another live job holds
        its unique key."""
        ...

    def retry_many(self, state: JobState, name: str | None = None) -> int:
        """``retry`` every job in ``state`` (FAILED or CANCELLED) — of worker ``name`` only,
        when given — skipping those whose unique key another live job holds. Returns how
        many were retried."""
        ...

    def promote(self, job_id: str) -> Job | None:
        """Run a DELAYED job now: WAITING with ``run_at`` now, at the end of the line of its
        priority (as a delayed job coming due is), waking idle dispatchers of its name as a
        submit does. Returns the job as it now is, ``None`` if there is none. Raises
        ``JobStateError`` if it is in another state."""
        ...

    def cancel_many(self, state: JobState, name: str | None = None) -> int:
        """``cancel`` every job in ``state`` -- of worker ``name`` only, when given. WAITING
        and DELAYED jobs end CANCELLED at once (``finished_at`` set, unique keys freed), in
        the order they would have run (waiting: by worker name, then priority and submission
        order; delayed: by due time, then submission order), which is the order retention
        later removes them in. ACTIVE jobs get their cancel requested, as ``cancel`` does, for
        their holders to see in their next heartbeat. Any other state changes nothing.
        Returns how many jobs were cancelled or asked to stop (an active job asked before is
        not counted again). A backend may work through a large set in batches (Redis: 1000
        jobs), each batch one atomic step."""
        ...

    def purge(
        self, state: JobState, name: str | None = None, finished_before: float | None = None
    ) -> int:
        """Delete finished jobs in ``state`` (COMPLETED, FAILED or CANCELLED): of worker
        ``name`` only, and finished before ``finished_before`` only, when given. Returns how
        many were deleted."""
        ...

    def pause(self, name: str) -> None:
        """Stop every claim of jobs of worker ``name``, in every process, until ``resume``.
        Its jobs stay waiting; submitting to it still works."""
        ...

    def resume(self, name: str) -> None:
        """Undo ``pause``, waking idle dispatchers of that name."""
        ...

    def remove(self, job_id: str) -> bool:
        """Delete the job whatever its state; ``False`` if there was none."""
        ...

    def remove_dispatcher(self, dispatcher_id: str) -> None:
        """Forget a dispatcher at once (its clean exit)."""
        ...

    def claim_tick(self, claim: TickClaim) -> TickResult:
        """Claim one tick of a periodic schedule, submitting its job, in ONE atomic step, so
        that however many schedulers run, each (schedule, tick) submits at most one job.

        The job is checked first as ``submit`` checks it (a refused job changes nothing, the
        record included). Then, on the schedule's record (created if absent): a record whose
        ``last_tick`` is at or past ``claim.tick`` answers ALREADY_CLAIMED and nothing changes
        (the high-water mark: ticks are claimed in ascending order, so a lagging or restarted
        scheduler cannot run a tick twice). Otherwise the claim wins: ``last_tick`` becomes the
        tick, ``definition`` the claim's, ``missed`` grows by ``claim.missed``, ``updated_at``
        is now, and

        * no job asked → RECORDED;
        * the schedule is paused → PAUSED (``skipped`` + 1);
        * the previous tick's job (``last_job_id``) blocks it (``lifecycle.overlap_blocks``: a
          removed job never does) → OVERLAP_SKIPPED (``skipped`` + 1);
        * the job's ``unique_key`` is held by a live job → OVERLAP_SKIPPED (``skipped`` + 1),
          nothing stored (the holder is not this tick's job: ``last_job_id`` is kept);
        * else the job is stored exactly as ``submit`` stores it (ids, wake-ups, per-name
          counts) → SUBMITTED with the job, ``last_job_id`` its id.

        The tick is added to ``recent`` (newest first, ``lifecycle.SCHEDULE_TICKS_KEPT`` kept).
        A Redis resend of a claim whose reply was lost answers what the first run did (its
        job included) while no later tick has been claimed, and ALREADY_CLAIMED after: never
        a second job."""
        ...

    def pause_schedule(self, name: str) -> None:
        """Mark the schedule paused (its winning ticks then answer PAUSED), creating its
        record if absent, so a schedule can be paused before its first tick."""
        ...

    def resume_schedule(self, name: str) -> None:
        """Undo ``pause_schedule`` (creating the record if absent)."""
        ...

    def remove_schedule(self, name: str) -> bool:
        """Forget a schedule (no longer declared): its record and recent ticks. ``False`` if
        there was none. Its jobs are left alone."""
        ...


@runtime_checkable
class Reads(Protocol):
    """Reads never write: a dashboard, a metrics scrape or ``jobqueue stats`` costs no
    transition, and a due job or an expired lease stays as it is until maintenance."""

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or ``None``."""
        ...

    def list_jobs(self, state: JobState, offset: int = 0, limit: int = 100) -> list[Job]:
        """Jobs in ``state``: waiting/delayed in the order they will run, active by lease
        deadline, finished ones newest first."""
        ...

    def count_by_state(self) -> dict[JobState, int]:
        """How many jobs are in each state (every state present, zero included)."""
        ...

    def count_by_name(self) -> dict[str, dict[JobState, int]]:
        """For every worker name that has at least one job, how many jobs of that name are in
        each state (every state present, zero included). Cheap enough to poll: Redis keeps
        the counts per name as jobs change state (a namespace that held jobs before those
        counts existed is counted job by job instead, O(jobs) per call)."""
        ...

    def paused(self) -> frozenset[str]:
        """The worker names paused now."""
        ...

    def dispatchers(self) -> list[DispatcherInfo]:
        """The live dispatchers (a record older than its lease is left out), oldest first."""
        ...

    def schedule_records(self) -> list[ScheduleRecord]:
        """Every schedule's record, sorted by name."""
        ...

    def schedule_record(self, name: str) -> ScheduleRecord | None:
        """One schedule's record, or ``None``."""
        ...

    def outcome_counts(self, since_minute: int) -> dict[int, dict[str, int]]:
        """Finished attempts per minute, for throughput charts: for every minute from
        ``since_minute`` up to now that has any, ``{outcome: count}``. A minute is
        ``floor(unix seconds / 60)`` on the backend's clock (the Redis server's, there);
        outcomes are the values of ``lifecycle.COUNTED_OUTCOMES``, each present only when
        counted: ``completed``; ``failed`` (for good: no attempt left, or stalled too often);
        ``retried`` (the job runs again: a failure with a retry, or an expired lease sent back
        to waiting); ``cancelled`` (a running job that ended cancelled: its handler stopped,
        or it failed, was released or lost its lease after a cancel request). Cancelling a
        waiting or delayed job ends no attempt and counts nothing; neither does a release
        that hands a job back.

        Every transition counts in the same atomic step as the move it counts (``complete``,
        ``fail``, ``finish_many``, ``finish_cancelled``, ``release``, lease recovery), so the
        counts never disagree with the jobs. Only the last ``lifecycle.OUTCOME_MINUTES_KEPT``
        minutes are kept: older ones are never returned (storage drops them in ``maintain``,
        or lets them expire)."""
        ...


@runtime_checkable
class Maintenance(Protocol):
    """Moving time forward: what dispatchers run on a schedule (claims run it too)."""

    def maintain(self) -> list[Job]:
        """Maintenance, driven by dispatchers: promote due delayed jobs, recover expired
        leases (``lifecycle.on_stall``: a stall; failed as stalled past ``max_stalls``;
        CANCELLED when a cancel was requested), apply retention, forget dispatchers whose
        last heartbeat is older than their lease.

        Returns the recovered jobs, in recovery order, as they are now (a job removed since
        is left out): those this call recovered and those the backend's claims and idle
        waits recovered since the last ``maintain`` or ``recover_expired``. Each recovery
        is returned once, by one of these two calls (a backend shared by processes returns
        it in the process that recovered it, or -- Redis -- in whichever process of the
        namespace maintains next): the dispatcher fires ``jobqueue_job_stalled`` for each."""
        ...

    def recover_expired(self) -> list[Job]:
        """Return jobs whose lease expired to WAITING (counting a stall) or fail them as
        stalled past ``max_stalls`` (CANCELLED after a cancel request). Returns the
        recovered jobs, as ``maintain`` does."""
        ...


@runtime_checkable
class Backend(Transitions, Reads, Maintenance, Protocol):
    """Storage and atomic state transitions: ``Transitions``, ``Reads`` and ``Maintenance``,
    plus the blocking waits. See the module docstring."""

    def wait_for_work(self, names: Iterable[str], timeout: float) -> bool:
        """Block until a job for one of ``names`` may be ready (a submit, a retry, a delayed
        job coming due) or ``timeout`` seconds pass. ``True`` when woken by new work."""
        ...

    def wait_for_finish(self, job_id: str, timeout: float) -> Job | None:
        """Block until the job is COMPLETED or FAILED (or removed) and return it as it then
        is, or return ``None`` after ``timeout`` seconds. Without polling where possible."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class BatchBackend(Backend, Protocol):
    """Optional: backends that can claim ahead and record several outcomes in one round trip.

    The dispatcher's ``prefetch`` uses these when the backend has them (and falls back to
    ``Backend.claim``, ``Backend.complete`` and ``Backend.fail`` when it does not).
    """

    def claim_many(self, spec: WorkSpec, limit: int) -> list[Claim]:
        """Claim up to ``limit`` ready jobs at once, in the order ``claim`` would."""
        ...

    def finish_many(
        self, outcomes: Sequence[Outcome], next_spec: WorkSpec | None, limit: int
    ) -> tuple[list[JobState | None], list[Claim]]:
        """Record every outcome (each fenced by its own token: a lost lease yields ``None``
        for that outcome and does not stop the others; a repeat of a recorded outcome yields
        its state, as ``complete`` and ``fail`` report it), then claim up to ``limit`` more jobs
        when ``next_spec`` is given. One atomic step where the backend allows."""
        ...


@runtime_checkable
class HandoffBackend(Backend, Protocol):
    """Optional: backends that hand a newly ready job straight to an idle dispatcher.

    The dispatcher's idle slot calls ``wait_for_claim`` instead of ``wait_for_work`` followed
    by ``claim``: submit to start is then two hops (the submit, the hand-off) rather than
    four (submit, wake-up, claim, its reply).
    """

    def wait_for_claim(self, spec: WorkSpec, timeout: float) -> Claim | bool:
        """Claim a ready job of ``spec`` now, or block for at most ``timeout`` seconds until
        one is handed over, claimed for this caller under a lease of ``spec.lease_seconds``
        (with the fencing and exclusivity of ``claim``). Returns the Claim; ``True`` when
        woken for work the caller must ``claim`` itself (or when ready work is there that
        it may not claim: ``max_active``); ``False`` when the wait ended with nothing. A
        job handed over while the caller stopped waiting is never lost: it is returned, or
        its lease expires and it is recovered."""
        ...


BackendFactory = Callable[[str, BackendOptions], "Backend | Storage"]
"""What a ``jobqueue_register_backends`` hook maps a URL scheme to."""
