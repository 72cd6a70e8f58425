"""Checks of the facades' call arguments (ids, names, states, counts, durations): a bad one
is the caller's mistake, raised as ``InvalidArgumentError`` before the backend is asked."""

from __future__ import annotations

from datetime import timedelta

from jobqueue.errors import InvalidArgumentError
from jobqueue.job import JobState


def check_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not job_id:
        raise InvalidArgumentError(f"a job id is a non-empty str, got {job_id!r}")
    return job_id


def check_name(name: object) -> str | None:
    """A worker name, or ``None`` (every worker)."""
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"a worker name is a non-empty str, got {name!r}")
    return name


def check_state(state: object) -> JobState:
    try:
        return JobState(state)
    except ValueError:
        states = ", ".join(s.value for s in JobState)
        raise InvalidArgumentError(f"unknown job state {state!r}; use one of {states}") from None


def check_count(label: str, value: object) -> int:
    """An ``offset`` or a ``limit``: an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"{label} must be an int >= 0, got {value!r}")
    return value


def check_seconds(label: str, value: object) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidArgumentError(f"{label} must be seconds >= 0 or a timedelta, got {value!r}")
    return float(value)
