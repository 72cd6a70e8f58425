"""What a store is asked to write: one decided move of one job (``Change``), the guard it is
written under, and what a store answers when that guard no longer holds (``Conflict``).

``jobqueue.lifecycle`` decides every change; a backend only checks the guard and writes it
(``Backend.apply``), in one atomic step per call. Times in a change are relative (``run_at`` is
a delay) so a store with a server of its own measures them on the server's clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from jobqueue.job import Attempt, AttemptOutcome, JobError, JobState
from jobqueue.values import WorkSpec

__all__ = [
    "SETTABLE_FIELDS",
    "Change",
    "ClaimAsk",
    "Conflict",
    "Delivery",
    "Ended",
    "Expired",
    "Guard",
    "Held",
    "InState",
    "Selector",
]


@dataclass(frozen=True, slots=True)
class Held:
    """Guard: the job is active and ``token`` holds its unexpired lease. With
    ``cancel_requested`` set, the job's cancel flag must also have that value (the change
    was decided for it; when the flag changed since, the core decides again)."""

    token: str
    cancel_requested: bool | None = None


@dataclass(frozen=True, slots=True)
class Expired:
    """Guard: the job is active, ``token`` holds its lease and that lease has expired (on the
    store's clock). ``cancel_requested`` as for ``Held``."""

    token: str
    cancel_requested: bool | None = None


@dataclass(frozen=True, slots=True)
class InState:
    """Guard: the job is in one of ``states``. A change from a finished state into a live one
    also needs the job's unique key free (no other live job holds it)."""

    states: frozenset[JobState]


Guard = Held | Expired | InState

SETTABLE_FIELDS = frozenset(
    {
        "result",
        "error",
        "stalls",
        "attempts_made",
        "cancel_requested",
        "finished_at",
        "dependency_outcomes",
    }
)
"""The ``Job`` fields a change may set (``Change.set``); a store writes no others."""

_NOTHING: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Ended:
    """The attempt a change ends. The store appends ``Attempt(number=attempts_made,
    dispatcher, started_at, finished_at=its now, outcome, error)`` to the job's history (the
    last ``MAX_HISTORY`` kept) and clears ``Job.dispatcher``. ``counted=False``: the attempt
    is given back, ``attempts_made`` goes down by one (after the record took its number)."""

    outcome: AttemptOutcome
    error: JobError | None = None
    counted: bool = True

    def record(
        self, attempts_made: int, dispatcher: str | None, started_at: float | None, now: float
    ) -> Attempt:
        """The history record of the attempt, from the job's fields as stored."""
        return Attempt(attempts_made, dispatcher, started_at, now, self.outcome, self.error)


class Delivery(NamedTuple):
    """A dependency's outcome handed to one of its dependents (``Change.deliver``).

    Guard, on top of the change's own: the job ``from_id`` exists and is in one of
    ``states`` (its outcome is final: a completion whose lease was lost delivers nothing).
    Write: ``outcome`` is stored as ``dependency_outcomes[from_id]`` of the change's job.
    Then, when the change goes ``to`` WAITING, the job moves only if its
    ``dependency_outcomes`` now name every job of its ``depends_on`` -- into WAITING or
    DELAYED as its ``run_at`` says, as ``insert`` does, with a new sequence number, waking
    idle dispatchers -- and otherwise stays BLOCKED (the change is still written). A change
    ``to`` a finished state moves as any change does."""

    from_id: str
    states: frozenset[JobState]
    outcome: Mapping[str, object]


class Change(NamedTuple):
    """One decided move of one job, written only if ``guard`` still holds. (A named tuple,
    immutable: every job's outcome makes one, and it is five times cheaper to build than a
    frozen dataclass.)

    What a store does with it: move the job from its old state's structure to ``to``'s (the
    ready line by priority and sequence, the delayed set by ``run_at``, the active set by lease,
    the finished set by finish time); end the lease when leaving ACTIVE; set ``set``'s fields
    (names in ``SETTABLE_FIELDS``); record ``ended``; stamp ``finished_at`` with its own now
    when ``to`` is finished; take the unique key when entering a live state, free it when
    leaving them (``JobState.is_live``); wake finish-waiters or idle dispatchers; add one to
    ``counts_as``'s outcome count of this minute. A job moved into WAITING or DELAYED gets a
    new sequence number (it queues at the end of its priority).

    ``run_at``: a delay in seconds from the store's now (``None``: ``run_at`` stays).
    ``deliver``: a dependency's outcome for this job of a flow (``Delivery``): its guard
    and its conditional move.
    ``ends_lease``: the call that ended the lease (``complete``, ``fail``, ``release``,
    ``finish_cancelled``), remembered with the lease's token so that a repeat of that call
    learns it (``Conflict.ended_by``); ``fence``: forget any such memory (a new life)."""

    job_id: str
    guard: Guard
    to: JobState
    run_at: float | None = None
    set: Mapping[str, object] = _NOTHING
    ended: Ended | None = None
    ends_lease: str | None = None
    fence: bool = False
    counts_as: AttemptOutcome | None = None
    deliver: Delivery | None = None


@dataclass(frozen=True, slots=True)
class Conflict:
    """A change not written because its guard failed: the job as the store found it.

    ``state`` is ``None`` when there is no such job. ``held``: the guard's token still holds
    the job's unexpired lease (so only ``cancel_requested`` differed). ``ended_by``: the call
    with which the guard's token ended the job's lease, when that token was the last to end
    it and the job was not fenced since. ``unique_holder``: an ``InState`` change into a live
    state was refused because this other live job holds the unique key."""

    state: JobState | None
    held: bool = False
    ended_by: str | None = None
    cancel_requested: bool = False
    unique_holder: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimAsk:
    """Claim up to ``limit`` jobs for ``spec`` in the same step as the changes before it;
    with ``unless_conflict``, claim nothing when a change was not written (a completion that
    turned out a repeat or a lost lease hands out no next job)."""

    spec: WorkSpec
    limit: int = 1
    unless_conflict: bool = False


@dataclass(frozen=True, slots=True)
class Selector:
    """Jobs in ``state`` (of worker ``name``, when given; finished strictly before
    ``finished_before``, for finished states, when given), in that state's listing order:
    waiting in run order across names (priority high first, then sequence), delayed by
    ``run_at``, active by lease deadline, blocked by sequence (submit order), finished newest
    first."""

    state: JobState
    name: str | None = None
    finished_before: float | None = None
