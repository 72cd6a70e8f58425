"""The Backend protocol: the storage seam every backend implements, and the values it speaks.

A backend stores jobs and moves them, each call one atomic step; it decides no rule of a
job's life. ``jobqueue.lifecycle`` decides every move as a guarded ``Change``
(``jobqueue.changes``) and the core (``jobqueue.engine.Engine``: complete, fail, cancel,
retry, maintain... written once) hands it to ``apply``, the one guarded write; the backend
checks the guard and writes it. Reads never write, so a dashboard or a metrics scrape costs no
transition.

Every time a backend needs "now" it reads ``options.clock`` so that tests (and the shared
contract suite in ``jobqueue.testing``) can move time without sleeping. (A backend with a
server of its own may measure leases on the server's clock when ``clock`` is the default
``time.time``, so hosts with skewed clocks agree: the Redis backend does.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal, Protocol, runtime_checkable

from jobqueue.changes import Change, ClaimAsk, Conflict, Selector
from jobqueue.job import Job, JobState

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
    totals_by_state,
)

__all__ = [
    "MAX_SCHEDULE_DEFINITION",
    "MAX_SCHEDULE_NAME",
    "OVERLAP_MODES",
    "TICK_ENTRY_OUTCOMES",
    "Applied",
    "Backend",
    "BackendFactory",
    "BackendOptions",
    "Claim",
    "Clock",
    "DispatcherInfo",
    "HandoffBackend",
    "LeaseStatus",
    "Outcome",
    "Retention",
    "ScheduleRecord",
    "ThroughputBucket",
    "TickClaim",
    "TickEntry",
    "TickOutcome",
    "TickResult",
    "WorkSpec",
    "check_schedule_name",
    "totals_by_state",
]

Applied = tuple[list[Conflict | None], list[Claim]]
"""What ``apply`` answers: per change ``None`` (written) or its ``Conflict``; then the claims."""


@runtime_checkable
class Backend(Protocol):
    """Storage only, 21 methods: 10 writes, 8 reads, 2 waits and ``close``."""

    options: BackendOptions

    # -- writes: each call one atomic step ------------------------------------------------

    def insert(self, jobs: Sequence[Job]) -> list[Job]:
        """Store new jobs, each WAITING, or DELAYED when its ``run_at`` is after the store's
        now, ids assigned (``jobqueue.ids``), a new sequence number each, idle dispatchers of
        its name woken. A job whose ``unique_key`` a live job (also one earlier in ``jobs``)
        holds is not stored: that job comes back in its place.

        Flows (``submit_flow``): the whole call is one atomic step. A job with ``depends_on``
        is stored BLOCKED (listed in sequence order, never claimed, promoted or expired).
        Every ``"@k"`` in a job's ``flow_id`` and in the ``job_id`` of its ``depends_on`` and
        ``dependents`` edges is replaced by the id the ``k``-th job of ``jobs`` gets (the
        core builds both directions of every edge; the store only translates)."""
        ...

    def claim_many(self, spec: WorkSpec, limit: int) -> list[Claim]:
        """Take up to ``limit`` ready jobs of ``spec.names`` (not paused), highest priority
        first then sequence, across names, keeping ``spec.max_active`` caps; due delayed jobs
        count as ready. Each becomes ACTIVE under a new lease token until now +
        ``lease_seconds``: ``attempts_made`` + 1, ``started_at`` now, ``dispatcher`` the
        spec's, progress cleared. A record it cannot decode fails (``lifecycle.on_corrupt``)
        and is skipped. Expired leases are not recovered here."""
        ...

    def apply(self, changes: Sequence[Change], then: ClaimAsk | None = None) -> Applied:
        """Write each change whose guard holds, in order, then claim as ``claim_many`` would for
        ``then``: one atomic step (one round trip). See ``Change`` for what a write does."""
        ...

    def heartbeat(
        self,
        dispatcher: DispatcherInfo | None,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
    ) -> list[LeaseStatus]:
        """Extend every ``(job_id, token)`` lease the token still holds (unexpired) to now +
        ``lease_seconds`` and report each: HELD, CANCEL (held, cancel requested) or LOST.
        Records ``dispatcher`` as alive (``last_seen`` now, ``jobs`` the leases' ids) until
        one ``lease_seconds`` from now, when given."""
        ...

    def annotate(
        self,
        job_id: str,
        token: str,
        *,
        progress: tuple[float, str | None] | None = None,
        log: str | None = None,
    ) -> bool:
        """For the holder of an unexpired lease: store its progress (0-100, message cut to
        ``MAX_LOG_MESSAGE``) and/or append a log line (timestamped, cut, last ``MAX_LOGS``
        kept). ``False`` when the token no longer holds the job."""
        ...

    def delete(self, job_ids: Sequence[str]) -> int:
        """Delete these jobs whatever their state (logs, unique keys, leases, counts with
        them), waking finish-waiters. Returns how many existed."""
        ...

    def set_paused(self, kind: Literal["worker", "schedule"], name: str, paused: bool) -> None:
        """Pause or resume claims of worker ``name`` (resuming wakes its idle dispatchers),
        or a schedule's ticks (creating its record if absent)."""
        ...

    def claim_tick(self, tick: TickClaim) -> TickResult:
        """Claim one tick of a periodic schedule, submitting its job, in ONE atomic step, so
        that however many schedulers run, each (schedule, tick) submits at most one job.

        The job is checked first as ``insert`` checks it (a refused job changes nothing, the
        record included). Then, on the schedule's record (created if absent): a record whose
        ``last_tick`` is at or past ``tick.tick`` answers ALREADY_CLAIMED and nothing changes
        (the high-water mark: ticks are claimed in ascending order, so a lagging or restarted
        scheduler cannot run a tick twice). Otherwise the claim wins: ``last_tick`` becomes the
        tick, ``definition`` the claim's, ``missed`` grows by ``tick.missed``, ``updated_at``
        is now, and ``lifecycle.tick_outcome`` says what it does: RECORDED (no job asked),
        PAUSED or OVERLAP_SKIPPED (``skipped`` + 1; overlap given by
        ``lifecycle.blocking_states``: a removed previous job never blocks), else the job is
        inserted -- OVERLAP_SKIPPED (``skipped`` + 1, nothing stored, ``last_job_id`` kept)
        when a live job holds its unique key, else SUBMITTED with the job (``last_job_id`` its
        id). The tick is added to ``recent`` (newest first, ``lifecycle.SCHEDULE_TICKS_KEPT``
        kept). A Redis resend of a claim whose reply was lost answers what the first run did
        while no later tick has been claimed, and ALREADY_CLAIMED after: never a second job."""
        ...

    def forget(self, kind: Literal["dispatcher", "schedule"], name: str) -> bool:
        """Drop a dispatcher's record (its clean exit) or a schedule's record and recent
        ticks. ``False`` when there was none."""
        ...

    def housekeep(self) -> int:
        """Move time forward: promote due delayed jobs, remove finished jobs past
        ``lifecycle.retention_cutoffs(options.retention)``, drop dispatcher records older than
        their lease and outcome minutes older than ``lifecycle.first_kept_minute``. Returns
        how many jobs it moved or removed. (Stalls are the core's: ``expired`` + ``apply``.)"""
        ...

    # -- reads: never write ---------------------------------------------------------------

    def get(self, job_id: str) -> Job | None: ...

    def scan(self, selector: Selector, offset: int, limit: int) -> list[Job]:
        """Jobs matching ``selector``, in its state's listing order (see ``Selector``)."""
        ...

    def expired(self, limit: int) -> list[Claim]:
        """Up to ``limit`` active jobs whose lease expired on the store's clock, with the
        token of that lease, soonest expired first."""
        ...

    def counts(self) -> dict[str, dict[JobState, int]]:
        """For each worker name with at least one job, its jobs per state (all states)."""
        ...

    def outcome_counts(self, since_minute: int) -> dict[int, dict[str, int]]: ...

    def dispatchers(self) -> list[DispatcherInfo]: ...

    def paused(self) -> frozenset[str]: ...

    def schedule_records(self, name: str | None = None) -> list[ScheduleRecord]:
        """Every schedule's record by name, or only ``name``'s (empty if absent)."""
        ...

    # -- waits ----------------------------------------------------------------------------

    def wait_for_work(self, names: Iterable[str], timeout: float) -> bool: ...

    def wait_for_finish(self, job_id: str, timeout: float) -> Job | None: ...

    def close(self) -> None: ...


@runtime_checkable
class HandoffBackend(Backend, Protocol):
    """Optional: backends that hand a newly ready job straight to an idle dispatcher.

    The dispatcher's idle slot calls ``wait_for_claim`` instead of ``wait_for_work`` followed
    by ``claim_many``: submit to start is then two hops (the submit, the hand-off) rather than
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


BackendFactory = Callable[[str, BackendOptions], Backend]
"""What a ``jobqueue_register_backends`` hook maps a URL scheme to."""
