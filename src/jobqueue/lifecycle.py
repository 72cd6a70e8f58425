"""The rules of a job's life, written once for every backend.

Each ``on_*`` function is pure: from a job, an event and the time it decides what the job
becomes, as a ``Change``. A store only checks the change's ``Guard`` and writes it (moves the
job, frees its unique key once it is no longer live, wakes waiters, counts the outcome): it
decides nothing. ``jobqueue.engine.Engine`` calls these rules and hands their changes to
``Backend.apply`` on every backend (memory, SQLite, Redis). The texts, predicates and
constants storage is given (stall error, retention cut-offs, a schedule's blocking states,
the live states that hold a unique key, history bound, outcome minutes) are here too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from jobqueue.backend import Retention, TickOutcome
from jobqueue.changes import Change, Ended, Expired, Held, InState
from jobqueue.errors import JobStateError
from jobqueue.job import (
    JSON,
    LIVE_STATES,
    MAX_HISTORY,
    Attempt,
    AttemptOutcome,
    Job,
    JobError,
    JobState,
)

# Re-exported: the unique-key and history rules, and what the rules return.
__all__ = ["LIVE_STATES", "MAX_HISTORY", "Change", "Ended", "Expired", "Held", "InState"]

_NOTHING: Mapping[str, object] = MappingProxyType({})

# -- what a rule decides: a ``jobqueue.changes.Change`` --------------------------------------


class Running(Protocol):
    """What the rules read of a job (``Job`` has it; a store may pass a narrower row)."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> JobState: ...
    @property
    def stalls(self) -> int: ...
    @property
    def cancel_requested(self) -> bool: ...


# -- small rules ------------------------------------------------------------------------------


def due_state(run_at: float, now: float) -> JobState:
    """Rule 10: a job due later is DELAYED, otherwise WAITING."""
    return JobState.DELAYED if run_at > now else JobState.WAITING


def bounded_history(history: list[Attempt], attempt: Attempt) -> list[Attempt]:
    """Rule 13: ``history`` with ``attempt`` appended, cut to the last ``MAX_HISTORY``."""
    return [*history, attempt][-MAX_HISTORY:]


def retry_at(job: Job, now: float) -> float | None:
    """When a failed attempt of ``job`` runs again (its backoff after this attempt), or
    ``None`` when it has no attempt left: the dispatcher's retry decision."""
    if job.attempts_made >= job.attempts:
        return None
    return now + job.backoff.delay_for(job.attempts_made)


# -- the outcome of an attempt (rules 1, 2, 3) ---------------------------------------------------


_COMPLETED = Ended(AttemptOutcome.COMPLETED)


def on_complete(job_id: str, token: str, result: JSON) -> Change:
    """A completed attempt: COMPLETED with its result, even after a cancel (too late). (No
    read of the job: the hot path's rule.)"""
    return Change(
        job_id,
        Held(token),
        JobState.COMPLETED,
        None,
        {"result": result},
        _COMPLETED,
        "complete",
        False,
        AttemptOutcome.COMPLETED,
    )


def on_fail(
    job: Running, token: str, error: JobError, retry_at: float | None, now: float
) -> Change:
    """Rule 1: a failed attempt. Cancel requested: CANCELLED (never runs again); no
    ``retry_at``: FAILED; else back to waiting, or delayed until ``retry_at``."""
    if job.cancel_requested:
        to, outcome, delay = JobState.CANCELLED, AttemptOutcome.CANCELLED, None
    elif retry_at is None:
        to, outcome, delay = JobState.FAILED, AttemptOutcome.FAILED, None
    else:
        to, outcome, delay = due_state(retry_at, now), AttemptOutcome.RETRIED, retry_at - now
    return Change(
        job.id,
        Held(token, job.cancel_requested),
        to,
        run_at=delay,
        set={"error": error},
        ended=Ended(outcome, error),
        ends_lease="fail",
        counts_as=outcome,
    )


def on_release(job: Running, token: str, now: float) -> Change:
    """Rule 3: an attempt given back unfinished is not counted (``attempts_made - 1``; its
    record keeps the number it ran as). Cancel requested: CANCELLED; else waiting now."""
    cancelled = job.cancel_requested
    return Change(
        job.id,
        Held(token, cancelled),
        JobState.CANCELLED if cancelled else JobState.WAITING,
        run_at=None if cancelled else 0.0,
        ended=Ended(AttemptOutcome.RELEASED, counted=False),
        ends_lease="release",
        counts_as=AttemptOutcome.CANCELLED if cancelled else None,
    )


def on_snooze(job: Running, token: str, delay: float) -> Change:
    """Rule 3b: a handler put its job back to run again in ``delay`` seconds
    (``job.retry_in``). Like a release, the attempt is not counted and the backoff is not
    consulted; the job waits (``delay`` 0) or is delayed. Cancel requested: CANCELLED."""
    cancelled = job.cancel_requested
    return Change(
        job.id,
        Held(token, cancelled),
        JobState.CANCELLED if cancelled else due_state(delay, 0.0),
        run_at=None if cancelled else delay,
        ended=Ended(AttemptOutcome.SNOOZED, counted=False),
        ends_lease="snooze",
        counts_as=AttemptOutcome.CANCELLED if cancelled else None,
    )


def on_cancelled(job: Running, token: str, error: JobError | None, now: float) -> Change:
    """A handler that stopped after its cancel: CANCELLED, with its error if it had one."""
    outcome = AttemptOutcome.CANCELLED
    return Change(
        job.id,
        Held(token),
        JobState.CANCELLED,
        set=_NOTHING if error is None else {"error": error},
        ended=Ended(outcome, error),
        ends_lease="finish_cancelled",
        counts_as=outcome,
    )


def on_stall(job: Running, max_stalls: int, now: float, token: str = "") -> Change:
    """Rule 2: an expired lease (``token``'s) counts a stall. Cancel requested: CANCELLED;
    more than ``max_stalls`` stalls: FAILED with ``stalled_error``; else waiting now."""
    stalls = job.stalls + 1
    fields: dict[str, object] = {"stalls": stalls}
    if job.cancel_requested:
        to, outcome = JobState.CANCELLED, AttemptOutcome.CANCELLED
    elif is_stalled_too_often(stalls, max_stalls):
        to, outcome = JobState.FAILED, AttemptOutcome.FAILED
        fields["error"] = stalled_error(stalls)
    else:
        to, outcome = JobState.WAITING, AttemptOutcome.RETRIED
    return Change(
        job.id,
        Expired(token, job.cancel_requested),
        to,
        run_at=0.0 if to is JobState.WAITING else None,
        set=fields,
        ended=Ended(AttemptOutcome.STALLED),
        counts_as=outcome,
    )


def corrupt_error(job_id: str, reason: str) -> JobError:
    """The error of a job failed as corrupt, in the claim's words."""
    return JobError("CorruptJobError", f"stored job record is unreadable: job {job_id}: {reason}")


def on_corrupt(job_id: str, reason: str) -> Change:
    """Rule 14: a record a claim cannot decode fails (counted as a fail would be), so one bad
    record never stops the queue nor crashes a dispatcher."""
    return Change(
        job_id,
        InState(LIVE_STATES),
        JobState.FAILED,
        set={"error": corrupt_error(job_id, reason)},
        counts_as=AttemptOutcome.FAILED,
    )


# -- the control plane (rules 8, 9) -------------------------------------------------------------

RETRIABLE = frozenset({JobState.FAILED, JobState.CANCELLED})
WAITING_OR_DELAYED = frozenset({JobState.WAITING, JobState.DELAYED})
NOT_STARTED = frozenset({JobState.WAITING, JobState.DELAYED, JobState.BLOCKED})


def on_retry(job: Running, now: float) -> Change:
    """Rule 8: an operator's retry of a failed or cancelled job: a new life, waiting now, its
    counters reset, the last attempt's token fenced. Raises ``JobStateError`` for any other
    state. (The store refuses it when another live job holds its unique key:
    ``unique_key_taken``.)"""
    if job.state not in RETRIABLE:
        raise JobStateError(
            f"job {job.id} is {job.state.value}: only failed or cancelled jobs are retried"
        )
    return Change(
        job.id,
        InState(RETRIABLE),
        JobState.WAITING,
        run_at=0.0,
        set={
            "attempts_made": 0,
            "stalls": 0,
            "cancel_requested": False,
            "result": None,
            "finished_at": None,
        },
        fence=True,
    )


def unique_key_taken(job_id: str, holder: str, unique_key: str) -> JobStateError:
    return JobStateError(
        f"job {job_id} cannot be retried: job {holder} holds its unique key {unique_key!r}"
    )


def on_cancel(job: Running) -> Change | None:
    """Rule 9: waiting, delayed or blocked: CANCELLED now. Active: flagged for its holder,
    who learns it from its next heartbeat (so exactly one party ends the attempt). Finished:
    nothing."""
    if job.state in NOT_STARTED:
        return Change(job.id, InState(NOT_STARTED), JobState.CANCELLED)
    if job.state is JobState.ACTIVE and not job.cancel_requested:
        return Change(
            job.id,
            InState(frozenset({JobState.ACTIVE})),
            JobState.ACTIVE,
            set={"cancel_requested": True},
        )
    return None


def on_promote(job: Running) -> Change:
    """Run a delayed job now, at the end of the waiting line. Raises ``JobStateError`` for a
    job in any other state."""
    if job.state is not JobState.DELAYED:
        raise JobStateError(
            f"job {job.id} is {job.state.value}: only delayed jobs are run ahead of time"
        )
    return Change(job.id, InState(frozenset({JobState.DELAYED})), JobState.WAITING, run_at=0.0)


# -- a token that no longer holds its job (rule 7) -----------------------------------------------

REPEAT_STATES: dict[str, frozenset[JobState]] = {
    "complete": frozenset({JobState.COMPLETED}),
    "fail": frozenset({JobState.FAILED, JobState.WAITING, JobState.DELAYED, JobState.CANCELLED}),
    "release": frozenset({JobState.WAITING, JobState.CANCELLED}),
    "snooze": frozenset({JobState.WAITING, JobState.DELAYED, JobState.CANCELLED}),
    "finish_cancelled": frozenset({JobState.CANCELLED}),
}
"""The states a job may be in while a repeat of the call that ended its lease still reports
that call's outcome: where the call left it, or where a cancel or a due retry moved it since
(the Redis scripts accept the same letters, so every backend answers alike)."""


def repeat_or_lost(call: str, ended_by_this_call: bool, state: JobState | None) -> JobState | None:
    """For a token that no longer holds its job: the state a repeat of ``call`` reports, or
    ``None`` when the lease is lost (another call ended it, the job moved on or is gone)."""
    if not ended_by_this_call or state is None:
        return None
    return state if state in REPEAT_STATES[call] else None


def lease_lost_message(job_id: str) -> str:
    return (
        f"job {job_id} is no longer held by this lease (it expired and was recovered, or the "
        "job was removed); the result of this attempt is discarded"
    )


# -- stalls -------------------------------------------------------------------------------------

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


# -- retention (rule 4) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cutoff:
    """Retention of one finished state: jobs finished more than ``seconds`` ago go, and
    beyond the newest ``keep`` the oldest go (``None``: no limit on that axis)."""

    state: JobState
    seconds: float | None
    keep: int | None

    def before(self, now: float) -> float | None:
        """Jobs finished at or before this time go (``None``: none for their age)."""
        return None if self.seconds is None else now - self.seconds

    def removes(self, total: int, finished_at: float, now: float) -> bool:
        """Whether the oldest of ``total`` jobs in this state, finished at ``finished_at``,
        goes at ``now`` (stores walk oldest first and stop at the first they keep)."""
        if self.keep is not None and total > self.keep:
            return True
        return self.seconds is not None and finished_at <= now - self.seconds


def retention_cutoffs(retention: Retention) -> tuple[Cutoff, ...]:
    """What retention removes, one ``Cutoff`` per finished state (made once per store: they
    are relative to the time they are applied at)."""
    return (
        Cutoff(JobState.COMPLETED, retention.completed_seconds, retention.completed_count),
        Cutoff(JobState.FAILED, retention.failed_seconds, retention.failed_count),
        Cutoff(JobState.CANCELLED, retention.cancelled_seconds, retention.cancelled_count),
    )


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


# -- periodic schedules (rule 6) ----------------------------------------------------------------

SCHEDULE_TICKS_KEPT = 50
"""How many recent ticks a schedule's record keeps (``ScheduleRecord.recent``)."""


def blocking_states(overlap: str) -> frozenset[JobState]:
    """The states of the previous tick's job that keep a new tick of a schedule with this
    ``overlap`` from running: ``skip`` while it is live, ``queue`` until it starts."""
    if overlap == "skip":
        return LIVE_STATES
    if overlap == "queue":
        return WAITING_OR_DELAYED
    return frozenset()


def overlap_blocks(overlap: str, last_job_state: JobState | None) -> bool:
    """Whether the previous tick's job, in ``last_job_state`` (``None``: no job, or removed),
    keeps a new tick of a schedule with this ``overlap`` from running."""
    return last_job_state in blocking_states(overlap)


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
