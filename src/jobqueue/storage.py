"""The storage seam (becomes ``jobqueue.backend.Backend`` once every backend speaks it).

A store keeps jobs and moves them, each call one atomic step; it decides no rule of a job's
life. ``jobqueue.lifecycle`` decides every move as a guarded ``Change`` and the core
(``jobqueue.engine``) hands it to ``apply``; the store checks the guard and writes it.
Reads never write. Every time a store needs "now" it reads ``options.clock`` (a store with a
server of its own may use the server's clock when that is the default ``time.time``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, Protocol, runtime_checkable

from jobqueue.changes import Change, ClaimAsk, Conflict, Selector
from jobqueue.job import Job, JobState
from jobqueue.values import (
    BackendOptions,
    Claim,
    DispatcherInfo,
    LeaseStatus,
    ScheduleRecord,
    TickClaim,
    TickResult,
    WorkSpec,
)

Applied = tuple[list[Conflict | None], list[Claim]]
"""What ``apply`` answers: per change ``None`` (written) or its ``Conflict``; then the claims."""


@runtime_checkable
class Storage(Protocol):
    """Storage only, 21 methods: 10 writes, 8 reads, 2 waits and ``close``."""

    options: BackendOptions

    # -- writes: each call one atomic step ------------------------------------------------

    def insert(self, jobs: Sequence[Job]) -> list[Job]:
        """Store new jobs, each WAITING, or DELAYED when its ``run_at`` is after the store's
        now, ids assigned (``jobqueue.ids``), a new sequence number each, idle dispatchers of
        its name woken. A job whose ``unique_key`` a live job (also one earlier in ``jobs``)
        holds is not stored: that job comes back in its place."""
        ...

    def claim_many(self, spec: WorkSpec, limit: int) -> list[Claim]:
        """(Named ``claim`` once the old protocol is gone.) Take up to ``limit`` ready jobs
        of ``spec.names`` (not paused), highest priority first then sequence, across names,
        keeping ``spec.max_active`` caps; due delayed jobs count as ready. Each becomes
        ACTIVE under a new lease token until now + ``lease_seconds``: ``attempts_made`` + 1,
        ``started_at`` now, ``dispatcher`` the spec's, progress cleared. A record it cannot
        decode fails (``lifecycle.on_corrupt``) and is skipped. Expired leases are not
        recovered here."""
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
        """One tick of a periodic schedule, in one step (the high-water mark; see the old
        ``Transitions.claim_tick`` contract, unchanged)."""
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
