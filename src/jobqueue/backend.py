"""The Backend protocol: the one contract every storage backend meets.

A backend stores jobs and moves them between states, each move one atomic step. It never runs
handlers and never decides policy beyond what it is told: the dispatcher decides whether a
failure is retried and when; the backend applies that decision atomically, checking the
caller's lease token (fencing) first.

Every time a backend needs "now" it reads ``options.clock`` so that tests (and the shared
contract suite in ``jobqueue.testing``) can move time without sleeping. (A backend with a
server of its own may measure leases on the server's clock when ``clock`` is the default
``time.time``, so hosts with skewed clocks agree: the Redis backend does.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from jobqueue.job import JSON, Job, JobError, JobState

Clock = Callable[[], float]
"""Returns the current time as a UNIX timestamp in seconds."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long finished jobs are kept. ``None`` means no limit on that axis."""

    completed_seconds: float | None = 24 * 3600.0
    completed_count: int | None = 10_000
    failed_seconds: float | None = 7 * 24 * 3600.0
    failed_count: int | None = 100_000


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """What every backend factory receives besides its URL."""

    clock: Clock = time.time
    retention: Retention = field(default_factory=Retention)
    max_stalls: int = 3
    """A job whose lease expired more than this many times fails as stalled."""
    namespace: str | None = None
    """Keeps several applications apart in one store (backends that support it)."""


@dataclass(frozen=True, slots=True)
class WorkSpec:
    """What a dispatcher asks for when it claims: which worker names, for how long a lease,
    and per-name caps on how many jobs of that name may be active across all processes."""

    names: tuple[str, ...]
    lease_seconds: float = 30.0
    max_active: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Claim:
    """A claimed job plus the lease that proves ownership. Only the holder of ``token``
    may renew, complete, fail or release the job, and only until ``lease_expires_at``."""

    job: Job
    token: str
    lease_expires_at: float


@runtime_checkable
class Backend(Protocol):
    """Storage and atomic state transitions. See the module docstring."""

    def submit(self, job: Job) -> Job:
        """Store a new job (``state`` is WAITING or DELAYED, ``run_at`` its due time) and
        return it with its ``id`` assigned. If ``job.unique_key`` is set and a waiting,
        delayed or active job holds that key, store nothing and return that job instead."""
        ...

    def submit_many(self, jobs: Sequence[Job]) -> list[Job]:
        """Store several new jobs, as ``submit`` would, in as few round trips as possible."""
        ...

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or ``None``."""
        ...

    def claim(self, spec: WorkSpec) -> Claim | None:
        """Atomically take the next ready job among ``spec.names``: highest priority first,
        then submission order. Due delayed jobs are promoted and expired leases recovered
        first. The claimed job is ACTIVE with ``attempts_made`` counted and ``started_at`` set."""
        ...

    def renew(self, job_id: str, token: str, lease_seconds: float) -> bool:
        """Extend the lease; ``False`` if the token no longer holds the job."""
        ...

    def complete(
        self, job_id: str, token: str, result: JSON, next_spec: WorkSpec | None
    ) -> Claim | None:
        """Mark the job COMPLETED with ``result`` and, when ``next_spec`` is given, claim the
        next job in the same atomic step (one round trip where the backend allows).
        Raises ``LeaseLostError`` if the token no longer holds the job."""
        ...

    def fail(self, job_id: str, token: str, error: JobError, retry_at: float | None) -> JobState:
        """Record ``error``. With ``retry_at`` the job goes back to WAITING (or DELAYED until
        ``retry_at``); without, it is FAILED. Returns the new state. Raises
        ``LeaseLostError`` if the token no longer holds the job."""
        ...

    def release(self, job_id: str, token: str) -> bool:
        """Give an active job back to WAITING without counting the attempt (shutdown)."""
        ...

    def set_progress(self, job_id: str, token: str, progress: float, message: str | None) -> bool:
        """Store the running job's progress (0-100); ``False`` if the lease was lost."""
        ...

    def add_log(self, job_id: str, token: str, message: str) -> bool:
        """Append a timestamped log line (bounded); ``False`` if the lease was lost."""
        ...

    def recover_expired(self) -> int:
        """Return jobs whose lease expired to WAITING (counting a stall) or fail them as
        stalled past ``max_stalls``. Returns how many were recovered or failed."""
        ...

    def list_jobs(self, state: JobState, offset: int = 0, limit: int = 100) -> list[Job]:
        """Jobs in ``state``: waiting/delayed in the order they will run, active by lease
        deadline, finished ones newest first."""
        ...

    def count_by_state(self) -> dict[JobState, int]:
        """How many jobs are in each state (every state present, zero included)."""
        ...

    def remove(self, job_id: str) -> bool:
        """Delete the job whatever its state; ``False`` if there was none."""
        ...

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


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished attempt to record: a result, or an error with the retry decision."""

    job_id: str
    token: str
    result: JSON = None
    error: JobError | None = None
    retry_at: float | None = None


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
        for that outcome and does not stop the others), then claim up to ``limit`` more jobs
        when ``next_spec`` is given. One atomic step where the backend allows."""
        ...


BackendFactory = Callable[[str, BackendOptions], Backend]
"""What a ``jobqueue_register_backends`` hook maps a URL scheme to."""
