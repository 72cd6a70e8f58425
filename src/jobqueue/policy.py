"""The rules that storage applies, written once for every backend.

Backends keep jobs; they do not invent rules. What they must apply inside an atomic step —
when a stalled job fails for good, which finished jobs retention removes, and the texts of the
errors they record — is defined here and handed to them, so memory, SQLite, Redis (its Lua
receives these as arguments) and third-party backends agree by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jobqueue.backend import Retention, TickOutcome
from jobqueue.job import AttemptOutcome, JobError, JobState

STALLED_ERROR_TYPE = "StalledJobError"


def stalled_error(stalls: int) -> JobError:
    """The error a job fails with once its lease expired more than ``max_stalls`` times."""
    return JobError(
        STALLED_ERROR_TYPE,
        f"job stalled {stalls} times: its lease expired while running "
        "(the worker died, hung or lost its backend connection)",
    )


def is_stalled_too_often(stalls: int, max_stalls: int) -> bool:
    """A job whose lease expired ``stalls`` times fails instead of running again."""
    return stalls > max_stalls


def lease_lost_message(job_id: str) -> str:
    return (
        f"job {job_id} is no longer held by this lease (it expired and was recovered, or the "
        "job was removed); the result of this attempt is discarded"
    )


@dataclass(frozen=True, slots=True)
class Cutoff:
    """Retention of one finished state: jobs finished before ``before`` go, and beyond the
    newest ``keep`` the oldest go (``None``: no limit on that axis)."""

    state: JobState
    before: float | None
    keep: int | None


def retention_cutoffs(retention: Retention, now: float) -> tuple[Cutoff, ...]:
    """What retention removes at ``now``, one ``Cutoff`` per finished state."""

    def before(seconds: float | None) -> float | None:
        return None if seconds is None else now - seconds

    return (
        Cutoff(JobState.COMPLETED, before(retention.completed_seconds), retention.completed_count),
        Cutoff(JobState.FAILED, before(retention.failed_seconds), retention.failed_count),
        Cutoff(JobState.CANCELLED, before(retention.cancelled_seconds), retention.cancelled_count),
    )


# The states a job may be in while a repeat of the call that ended its lease still reports
# that call's outcome: where the call left it, or where a cancel or a due retry moved it since
# (the Redis scripts accept the same letters, so every backend answers alike).
REPEAT_STATES: dict[str, frozenset[JobState]] = {
    "complete": frozenset({JobState.COMPLETED}),
    "fail": frozenset({JobState.FAILED, JobState.WAITING, JobState.DELAYED, JobState.CANCELLED}),
    "release": frozenset({JobState.WAITING, JobState.CANCELLED}),
    "finish_cancelled": frozenset({JobState.CANCELLED}),
}


# -- outcome counts (throughput) ----------------------------------------------------------------

COUNTED_OUTCOMES = (
    AttemptOutcome.COMPLETED,
    AttemptOutcome.FAILED,
    AttemptOutcome.RETRIED,
    AttemptOutcome.CANCELLED,
)
"""How a finished attempt is counted in the per-minute outcome counts (``Reads.outcome_counts``):
completed; failed for good; retried (the job runs again: a failure with a retry, or an expired
lease sent back to waiting); cancelled (a running job that ended cancelled)."""

OUTCOME_MINUTES_KEPT = 24 * 60 + 60
"""Minutes of outcome counts kept: a day, plus an hour so that the oldest hour of a day's chart
is whole. Older minutes are never read back; storage drops them (``maintain``, or expiry)."""


def outcome_minute(now: float) -> int:
    """The minute ``now`` falls in, as outcome counts number them: ``floor(now / 60)``."""
    return math.floor(now / 60)


def first_kept_minute(now: float) -> int:
    """The oldest minute whose outcome counts are still kept at ``now``."""
    return outcome_minute(now) - OUTCOME_MINUTES_KEPT + 1


# -- periodic schedules -------------------------------------------------------------------------

SCHEDULE_TICKS_KEPT = 50
"""How many recent ticks a schedule's record keeps (``ScheduleRecord.recent``)."""


def overlap_blocks(overlap: str, last_job_state: JobState | None) -> bool:
    """Whether the previous tick's job, in ``last_job_state`` (``None``: no job, or removed),
    keeps a new tick of a schedule with this ``overlap`` from running."""
    if overlap == "skip":
        return last_job_state in (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE)
    if overlap == "queue":
        return last_job_state in (JobState.WAITING, JobState.DELAYED)
    return False


def tick_outcome(
    has_job: bool, paused: bool, overlap: str, last_job_state: JobState | None
) -> TickOutcome | None:
    """What a winning tick claim (``Transitions.claim_tick``) does: RECORDED without a job,
    PAUSED, OVERLAP_SKIPPED, or ``None``: submit the job (which may still find its unique key
    held, and then answer OVERLAP_SKIPPED)."""
    if not has_job:
        return TickOutcome.RECORDED
    if paused:
        return TickOutcome.PAUSED
    if overlap_blocks(overlap, last_job_state):
        return TickOutcome.OVERLAP_SKIPPED
    return None
