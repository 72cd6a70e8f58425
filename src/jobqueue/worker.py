"""Workers: a name, a handler, and the options its jobs run with."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from jobqueue.errors import InvalidJobDataError, InvalidOptionError, InvalidWorkerError
from jobqueue.job import JSON, Backoff, is_unicode
from jobqueue.limits import MAX_TIMEOUT_SECONDS

if TYPE_CHECKING:
    from jobqueue.runtime.running import RunningJob

HandleFunction = Callable[["RunningJob"], "JSON | Awaitable[JSON]"]

MAX_PRIORITY = 1_000_000
"""Priorities are integers in ``[-MAX_PRIORITY, MAX_PRIORITY]``; higher runs first."""


@runtime_checkable
class Handler(Protocol):
    """The seed module's handler shape: ``handle(job)`` plus an optional ``get_title(data)``.

    ``handle`` receives a ``RunningJob`` (``job.data``, ``job.progress()``, ``job.log()``)
    and returns the job's result (JSON), or is an ``async def`` that does. ``get_title(data)``,
    when the handler has one, names a job for people (``job.title``) at submit time."""

    def handle(self, job: RunningJob) -> JSON | Awaitable[JSON]: ...


@dataclass(frozen=True)
class Worker:
    """A named handler and the defaults its jobs run with.

    ``attempts``: how many times a job may run before it is failed for good.
    ``backoff``: delay before each retry (seconds, a ``Backoff`` or a mapping).
    ``timeout``: seconds a single attempt may run, or ``None``.
    ``priority``: default priority of its jobs.
    ``max_active``: at most this many of its jobs run at once across all dispatchers.
    ``exclusive=True`` is ``max_active=1``: never two of its jobs at once, anywhere.
    """

    name: str
    handler: Any
    attempts: int = 1
    backoff: Backoff = field(default_factory=Backoff)
    timeout: float | None = None
    priority: int = 0
    max_active: int | None = None
    exclusive: bool = False

    def __post_init__(self) -> None:
        try:
            self._validate()
        except InvalidOptionError as exc:  # a worker's option is a setup mistake, not job input
            raise InvalidWorkerError(f"worker {self.name!r}: {exc}") from None

    def _validate(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidWorkerError(f"a worker needs a non-empty string name, got {self.name!r}")
        if not is_unicode(self.name):
            raise InvalidWorkerError(
                f"worker name {self.name!r} is not valid Unicode (a lone surrogate): no "
                "backend can store it"
            )
        if self.handler is None:
            raise InvalidWorkerError(f"worker {self.name!r} has no handler")
        handle = getattr(self.handler, "handle", self.handler)
        if not callable(handle):
            raise InvalidWorkerError(
                f"worker {self.name!r}: handler must be a callable or an object with a "
                f"callable handle(job) method, got {self.handler!r}"
            )
        title = getattr(self.handler, "get_title", None)
        if title is not None and not callable(title):
            raise InvalidWorkerError(f"worker {self.name!r}: get_title must be callable")
        object.__setattr__(self, "backoff", Backoff.parse(self.backoff))
        validate_attempts(self.attempts)
        validate_timeout(self.timeout)
        validate_priority(self.priority)
        if not isinstance(self.exclusive, bool):
            raise InvalidOptionError(f"exclusive must be True or False, got {self.exclusive!r}")
        if self.exclusive:
            if self.max_active not in (None, 1):
                raise InvalidOptionError(
                    f"exclusive=True means max_active=1; drop max_active={self.max_active!r}"
                )
            object.__setattr__(self, "max_active", 1)
        if self.max_active is not None and (
            isinstance(self.max_active, bool)
            or not isinstance(self.max_active, int)
            or self.max_active < 1
        ):
            raise InvalidOptionError(
                f"max_active must be an int >= 1 or None, got {self.max_active!r}"
            )

    @property
    def handle(self) -> Callable[..., Any]:
        return getattr(self.handler, "handle", self.handler)  # type: ignore[no-any-return]

    @functools.cached_property
    def is_async(self) -> bool:
        """Whether ``handle`` is an ``async def`` (worked out once: it is asked per job)."""
        handle = self.handle
        return inspect.iscoroutinefunction(handle) or inspect.iscoroutinefunction(
            type(handle).__call__
        )

    def title_for(self, data: JSON) -> str | None:
        """The job's title from the handler's ``get_title(data)``, if it has one. A
        ``get_title`` that raises means the data is not what this worker expects."""
        get_title = getattr(self.handler, "get_title", None)
        if get_title is None:
            return None
        try:
            return str(get_title(data))
        except Exception as exc:
            raise InvalidJobDataError(
                f"worker {self.name!r} cannot use this job data: its get_title(data) raised "
                f"{type(exc).__name__}: {exc}; submit the fields that worker expects"
            ) from exc


def validate_attempts(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise InvalidOptionError(f"attempts must be an int from 1 to 1000, got {value!r}")
    return value


def validate_timeout(value: object) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= MAX_TIMEOUT_SECONDS
    ):
        raise InvalidOptionError(
            f"timeout must be a positive number of seconds, at most {MAX_TIMEOUT_SECONDS:.0f} "
            f"(30 days), or None, got {value!r}"
        )
    return float(value)


def validate_priority(value: object) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not -MAX_PRIORITY <= value <= MAX_PRIORITY
    ):
        raise InvalidOptionError(
            f"priority must be an int from {-MAX_PRIORITY} to {MAX_PRIORITY}, got {value!r}"
        )
    return value
