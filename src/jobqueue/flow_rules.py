"""The rules of a flow's jobs, written once for every backend (``jobqueue.lifecycle``'s
counterpart for dependencies).

A dependent learns each dependency's outcome through a guarded change on the dependent
(``Change.deliver``): the store writes the outcome and moves the dependent to waiting when it
was the last one missing, in the same step as the dependency's own change. These functions
decide those changes; ``jobqueue.engine.flows`` reads what they need and applies them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jobqueue.changes import Change, Delivery, InState
from jobqueue.dependency import Dependency
from jobqueue.job import JSON, Job, JobError, JobState
from jobqueue.lifecycle import due_state

BLOCKED_ONLY = frozenset({JobState.BLOCKED})
ENDED_BY_DEPENDENCY = frozenset({JobState.CANCELLED, JobState.FAILED})
_COMPLETED_ONLY = frozenset({JobState.COMPLETED})

DEPENDENCY_FAILED = "DependencyFailed"
"""The error type of a dependent cancelled or failed because of a dependency."""


def completed_outcome(result: JSON) -> dict[str, JSON]:
    return {"state": JobState.COMPLETED.value, "result": result}


def ended_outcome(state: JobState, error: JobError | None) -> dict[str, JSON]:
    return {"state": state.value, "error": error.to_dict() if error is not None else None}


def on_completed(job_id: str, result: JSON, dependents: Sequence[Dependency]) -> list[Change]:
    """A dependency completed: each dependent gets its result, and the one it was the last
    for becomes waiting -- whatever the dependent's rule (a completion satisfies every rule)."""
    delivery = Delivery(job_id, _COMPLETED_ONLY, completed_outcome(result))
    return [
        Change(edge.job_id, InState(BLOCKED_ONLY), JobState.WAITING, deliver=delivery)
        for edge in dependents
    ]


def dependency_error(job_id: str, state: JobState, error: JobError | None) -> JobError:
    """The error of a dependent ended by ``job_id``'s end: it names the job and its reason."""
    reason = f": {error}" if error is not None else ""
    return JobError(DEPENDENCY_FAILED, f"dependency {job_id} ended {state.value}{reason}")


def on_ended(job_id: str, state: JobState, error: JobError | None, edge: Dependency) -> Change:
    """A dependency ended ``state`` (failed for good or cancelled): the dependent of ``edge``
    runs anyway (``ignore``, the failure readable), is cancelled (``cancel``, the default) or
    fails (``fail``), each guarded on the dependency being in that state."""
    delivery = Delivery(job_id, frozenset({state}), ended_outcome(state, error))
    if edge.on_failure == "ignore":
        return Change(edge.job_id, InState(BLOCKED_ONLY), JobState.WAITING, deliver=delivery)
    to = JobState.FAILED if edge.on_failure == "fail" else JobState.CANCELLED
    return Change(
        edge.job_id,
        InState(BLOCKED_ONLY),
        to,
        set={"error": dependency_error(job_id, state, error)},
        deliver=delivery,
    )


def ended_by(dependent: Job, job_id: str) -> bool:
    """Whether ``dependent`` was cancelled or failed because ``job_id`` ended, and by no other
    dependency (so a retry of ``job_id`` may bring it back)."""
    if dependent.state not in ENDED_BY_DEPENDENCY:
        return False
    rules = {edge.job_id: edge.on_failure for edge in dependent.depends_on}
    failed = [
        dep
        for dep, outcome in dependent.dependency_outcomes.items()
        if _state_of(outcome) != JobState.COMPLETED.value and rules.get(dep) != "ignore"
    ]
    return failed == [job_id]


def on_revived(dependent: Job, job_id: str) -> Change:
    """``job_id`` was retried: its dependent ``ended_by`` it waits for it again."""
    outcomes = {k: v for k, v in dependent.dependency_outcomes.items() if k != job_id}
    return Change(
        dependent.id,
        InState(ENDED_BY_DEPENDENCY),
        JobState.BLOCKED,
        set={"dependency_outcomes": outcomes, "error": None, "finished_at": None},
        fence=True,
    )


def missing_dependency(dependent: Job, job_id: str, now: float) -> Change:
    """A dependency no longer exists (removed by an operator) and never delivered: the
    dependent ends as its rule says for a cancelled dependency (``ignore``: runs once the
    others delivered, the dependency's outcome "removed")."""
    edge = next(e for e in dependent.depends_on if e.job_id == job_id)
    if edge.on_failure == "ignore":
        outcomes = {**dependent.dependency_outcomes, job_id: {"state": "removed", "error": None}}
        done = all(e.job_id in outcomes for e in dependent.depends_on)
        return Change(
            dependent.id,
            InState(BLOCKED_ONLY),
            due_state(dependent.run_at, now) if done else JobState.BLOCKED,
            set={"dependency_outcomes": outcomes},
        )
    to = JobState.FAILED if edge.on_failure == "fail" else JobState.CANCELLED
    error = JobError(DEPENDENCY_FAILED, f"dependency {job_id} was removed")
    return Change(dependent.id, InState(BLOCKED_ONLY), to, set={"error": error})


def _state_of(outcome: JSON) -> str | None:
    return outcome.get("state") if isinstance(outcome, Mapping) else None
