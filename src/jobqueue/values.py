"""The values the Backend protocol (``jobqueue.backend``) speaks in: what a claim, a lease, a
dispatcher, a schedule's tick and a finished attempt are, and the options every backend gets.

Plain frozen dataclasses and enums that check nothing but themselves, kept apart from the
protocol so each file holds one idea. ``jobqueue.backend`` re-exports every name: that stays
the import path for users and third-party backends.
"""

from __future__ import annotations

import enum
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from jobqueue.dependency import Dependency
from jobqueue.errors import InvalidArgumentError
from jobqueue.job import JSON, Job, JobError, JobState, is_unicode

Clock = Callable[[], float]
"""Returns the current time as a UNIX timestamp in seconds."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long finished jobs are kept. ``None`` means no limit on that axis."""

    completed_seconds: float | None = 24 * 3600.0
    completed_count: int | None = 10_000
    failed_seconds: float | None = 7 * 24 * 3600.0
    failed_count: int | None = 100_000
    cancelled_seconds: float | None = 7 * 24 * 3600.0
    cancelled_count: int | None = 100_000


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """What every backend factory receives besides its URL."""

    clock: Clock = time.time
    retention: Retention = field(default_factory=Retention)
    max_stalls: int = 3
    """A job whose lease expired more than this many times fails as stalled."""
    namespace: str | None = None
    """Keeps several applications apart in one store (backends that support it)."""
    replicas: int = 0
    """Redis: how many replicas must acknowledge each submit and outcome before it returns
    (``WAIT``); a URL's ``?replicas=`` wins. 0: none (asynchronous replication)."""
    replica_timeout: float = 1.0
    """Redis: how long to wait for them (``ReplicationTimeoutError`` after it)."""


@dataclass(frozen=True, slots=True)
class WorkSpec:
    """What a dispatcher asks for when it claims: which worker names, for how long a lease,
    and per-name caps on how many jobs of that name may be active across all processes."""

    names: tuple[str, ...]
    lease_seconds: float = 30.0
    max_active: Mapping[str, int] = field(default_factory=dict)
    dispatcher: str | None = None
    """The claiming dispatcher's id, recorded on the job (``Job.dispatcher``) and its attempt."""


class LeaseStatus(str, enum.Enum):
    """What a heartbeat learned of one lease."""

    HELD = "held"
    CANCEL = "cancel"
    """Still held, and a cancel was requested: interrupt the handler."""
    LOST = "lost"
    """Expired and recovered, or the job is gone: the attempt's outcome will be refused."""


@dataclass(frozen=True, slots=True)
class DispatcherInfo:
    """A live dispatcher as the backend records it: registered by its first heartbeat,
    refreshed by each one, removed on a clean exit, forgotten one lease after the last."""

    id: str
    host: str
    pid: int
    names: tuple[str, ...]
    concurrency: int
    started_at: float
    last_seen: float = 0.0
    jobs: tuple[str, ...] = ()
    """Ids of the jobs it holds (claimed ahead, running, or finished and not yet recorded)."""


@dataclass(frozen=True, slots=True)
class ThroughputBucket:
    """Finished attempts in one minute or hour, by how they ended (``JobQueue.throughput``;
    the outcomes are those of ``Reads.outcome_counts``)."""

    start: int
    """When the bucket begins, in UNIX seconds (a whole minute or hour)."""
    seconds: int
    """How long it spans: 60 or 3600."""
    completed: int = 0
    failed: int = 0
    """Failed for good (no attempt left, or stalled too often)."""
    retried: int = 0
    """Failed, or lost its lease, and runs again."""
    cancelled: int = 0

    @property
    def total(self) -> int:
        """Every attempt that ended in the bucket."""
        return self.completed + self.failed + self.retried + self.cancelled

    def to_dict(self) -> dict[str, int]:
        return {
            "start": self.start,
            "seconds": self.seconds,
            "completed": self.completed,
            "failed": self.failed,
            "retried": self.retried,
            "cancelled": self.cancelled,
        }


@dataclass(frozen=True, slots=True)
class Claim:
    """A claimed job plus the lease that proves ownership. Only the holder of ``token``
    may renew, complete, fail or release the job, and only until ``lease_expires_at``."""

    job: Job
    token: str
    lease_expires_at: float


MAX_SCHEDULE_NAME = 200
"""A schedule's name is a non-empty str of valid Unicode, at most this many characters."""

MAX_SCHEDULE_DEFINITION = 64 * 1024
"""A schedule's stored definition (JSON text) is at most this many characters."""

OVERLAP_MODES = ("skip", "allow", "queue")
"""What a tick does while the job of the schedule's previous tick is still live: ``skip`` it
(that job waiting, delayed or active), ``allow`` another one, or ``queue`` one behind a job
that is running (skipped only while that job waits or is delayed)."""


class TickOutcome(str, enum.Enum):
    """What ``Transitions.claim_tick`` did with one (schedule, tick)."""

    SUBMITTED = "submitted"
    """The claim won and its job was stored."""
    RECORDED = "recorded"
    """The claim won and asked for no job (a baseline, or ticks missed): the mark moved."""
    ALREADY_CLAIMED = "already_claimed"
    """The schedule's high-water mark is at or past this tick: nothing changed."""
    OVERLAP_SKIPPED = "overlap_skipped"
    """The claim won, but the previous tick's job is still live (``overlap``), or another
    live job holds the job's ``unique_key``: no job stored, the tick counted as skipped."""
    PAUSED = "paused"
    """The claim won, but the schedule is paused: no job stored, the tick counted as skipped."""

    def __str__(self) -> str:
        return self.value


TICK_ENTRY_OUTCOMES = (
    TickOutcome.SUBMITTED,
    TickOutcome.RECORDED,
    TickOutcome.OVERLAP_SKIPPED,
    TickOutcome.PAUSED,
)
"""The outcomes a schedule's ``recent`` ticks record (a claim that lost changes nothing)."""


def check_schedule_name(name: object) -> str:
    """``name`` if it can name a schedule, else ``InvalidArgumentError``."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > MAX_SCHEDULE_NAME
        or not is_unicode(name)
    ):
        raise InvalidArgumentError(
            f"a schedule name must be a non-empty str of valid Unicode, at most "
            f"{MAX_SCHEDULE_NAME} characters, got {name!r}"
        )
    return name


@dataclass(frozen=True, slots=True)
class TickClaim:
    """One scheduler's claim of one tick of one schedule (``Transitions.claim_tick``).

    Every field is checked when the claim is made (``InvalidArgumentError``), so a backend
    never sees a malformed one; the job is checked by the backend as ``submit`` checks it."""

    schedule: str
    """The schedule's name."""
    definition: str
    """The canonical JSON of the schedule's definition, stored with its record (listings)."""
    tick: float
    """The tick's time, UNIX seconds (whole seconds)."""
    job: Job | None
    """The job to submit for the tick; ``None`` moves the high-water mark only (a baseline,
    or ticks missed)."""
    missed: int = 0
    """Ticks missed before this one: added to the schedule's ``missed`` if the claim wins."""
    overlap: str = "skip"
    """One of ``OVERLAP_MODES``."""

    def __post_init__(self) -> None:
        check_schedule_name(self.schedule)
        if not isinstance(self.definition, str) or len(self.definition) > MAX_SCHEDULE_DEFINITION:
            raise InvalidArgumentError(
                f"a schedule definition must be JSON text of at most {MAX_SCHEDULE_DEFINITION} "
                f"characters, got {self.definition!r:.80}"
            )
        try:
            json.loads(self.definition)
        except ValueError as exc:
            raise InvalidArgumentError(
                f"a schedule definition must be JSON text ({exc}): {self.definition!r:.80}"
            ) from None
        if not is_unicode(self.definition):
            raise InvalidArgumentError("a schedule definition must be valid Unicode")
        tick = self.tick
        if (
            isinstance(tick, bool)
            or not isinstance(tick, (int, float))
            or not math.isfinite(tick)
            or tick < 0
            or tick != math.floor(tick)
            or tick >= 2**53
        ):
            raise InvalidArgumentError(
                f"a tick must be whole UNIX seconds >= 0 (an int or an integral float), "
                f"got {tick!r}"
            )
        object.__setattr__(self, "tick", float(tick))
        if self.job is not None and not isinstance(self.job, Job):
            raise InvalidArgumentError(f"a tick's job must be a Job or None, got {self.job!r}")
        if isinstance(self.missed, bool) or not isinstance(self.missed, int) or self.missed < 0:
            raise InvalidArgumentError(f"missed must be an int >= 0, got {self.missed!r}")
        if self.overlap not in OVERLAP_MODES:
            raise InvalidArgumentError(
                f"overlap must be one of {', '.join(OVERLAP_MODES)}, got {self.overlap!r}"
            )


@dataclass(frozen=True, slots=True)
class TickResult:
    """What a tick claim did (``outcome``) and, when SUBMITTED, the job stored for it."""

    outcome: TickOutcome
    job: Job | None = None


@dataclass(frozen=True, slots=True)
class TickEntry:
    """One tick a schedule's record remembers (``ScheduleRecord.recent``)."""

    tick: float
    outcome: TickOutcome
    """One of ``TICK_ENTRY_OUTCOMES``."""
    job_id: str | None = None
    """SUBMITTED: the job stored. OVERLAP_SKIPPED: the live job in the way (the previous
    tick's, or the one holding the unique key). Otherwise ``None``."""


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """What a backend keeps of one periodic schedule (``Reads.schedule_records``)."""

    name: str
    definition: str
    """As the last winning claim gave it; ``""`` for a schedule paused or resumed before its
    first tick was claimed."""
    last_tick: float | None
    """The high-water mark: the newest tick claimed (``None`` before the first)."""
    last_job_id: str | None
    """The job the last SUBMITTED tick stored (it may since have been removed)."""
    paused: bool
    missed: int
    """Ticks missed, as the claims that won reported them (``TickClaim.missed``)."""
    skipped: int
    """Ticks claimed but not run: because of ``overlap`` (or a held unique key) or a pause."""
    updated_at: float
    """When the record last changed (the backend's clock)."""
    recent: tuple[TickEntry, ...] = ()
    """The newest ticks claimed, newest first, at most ``lifecycle.SCHEDULE_TICKS_KEPT``."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished attempt to record: a result, or an error with the retry decision."""

    job_id: str
    token: str
    result: JSON = None
    error: JobError | None = None
    retry_at: float | None = None
    dependents: tuple[Dependency, ...] = ()
    """The job's dependents (a flow's), as claimed: a completion delivers its result to them
    in the same step."""


def totals_by_state(by_name: Mapping[str, Mapping[JobState, int]]) -> dict[JobState, int]:
    """Jobs per state, every state present, summed over per-name counts (what
    ``Backend.counts`` and the asyncio backends' ``count_by_name`` answer)."""
    totals = dict.fromkeys(JobState, 0)
    for by_state in by_name.values():
        for state, n in by_state.items():
            totals[state] += n
    return totals
