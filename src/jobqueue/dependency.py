"""The edges of a flow (``Job.depends_on`` / ``Job.dependents``) and what a dependency
delivers to its dependents (``Job.dependency_outcomes``): plain values, no storage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from jobqueue.errors import CorruptJobError
from jobqueue.json_value import JSON

__all__ = [
    "ON_FAILURE",
    "Dependency",
    "batch_ref",
    "completed_results",
    "ended_errors",
    "parse_dependencies",
]

ON_FAILURE = ("cancel", "ignore", "fail")
"""What a dependent does when a dependency fails for good or is cancelled: is cancelled
(the default), runs anyway with the failure readable, or fails."""


class Dependency(NamedTuple):
    """One edge of a flow: the job ``job_id`` and the rule ``on_failure`` (``ON_FAILURE``)
    of the dependent for it. In ``Job.depends_on`` it names a dependency, in
    ``Job.dependents`` a dependent (with that dependent's rule for this job). Before the
    flow is stored, ``job_id`` is ``"@k"``: the ``k``-th job of the same ``insert``."""

    job_id: str
    on_failure: str = "cancel"

    def to_list(self) -> list[JSON]:
        return [self.job_id, self.on_failure]


def batch_ref(position: int) -> str:
    """How a job of a flow names the ``position``-th job of its own ``insert`` batch."""
    return f"@{position}"


def parse_dependencies(raw: JSON) -> tuple[Dependency, ...]:
    if not raw:
        return ()
    edges = []
    for edge in raw:
        job_id, on_failure = edge
        if not isinstance(job_id, str) or on_failure not in ON_FAILURE:
            raise CorruptJobError(f"stored dependency {edge!r} is malformed")
        edges.append(Dependency(job_id, on_failure))
    return tuple(edges)


def completed_results(outcomes: Mapping[str, JSON]) -> dict[str, JSON]:
    """The results of the dependencies that completed, by job id."""
    return {
        job_id: outcome.get("result")
        for job_id, outcome in outcomes.items()
        if isinstance(outcome, dict) and outcome.get("state") == "completed"
    }


def ended_errors(outcomes: Mapping[str, JSON]) -> dict[str, JSON]:
    """The stored errors (``JobError.to_dict`` or ``None``) of the dependencies that did not
    complete, by job id."""
    return {
        job_id: outcome.get("error")
        for job_id, outcome in outcomes.items()
        if isinstance(outcome, dict) and outcome.get("state") != "completed"
    }
