"""Turning ``submit_job`` arguments into a Job value, refusing bad input before storage."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from jobqueue.errors import InvalidOptionError, PayloadTooLargeError
from jobqueue.job import JSON, MAX_DELAY_SECONDS, Backoff, Job, check_json, is_unicode
from jobqueue.worker import Worker, validate_attempts, validate_priority, validate_timeout

DEFAULT_MAX_DATA_BYTES = 1024 * 1024
"""Job data larger than this (as UTF-8 JSON) is refused at submit."""

MAX_UNIQUE_KEY = 512


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    """Per-job overrides of a worker's defaults; ``None`` keeps the worker's value."""

    priority: int | None = None
    delay: float | timedelta | None = None
    run_at: datetime | float | None = None
    attempts: int | None = None
    backoff: object = None
    timeout: float | None = None
    unique_key: str | None = None


def build_job(
    worker: Worker,
    data: JSON,
    options: SubmitOptions,
    *,
    now: float,
    max_data_bytes: int,
    title_for: Callable[[JSON], str | None] | None = None,
) -> Job:
    """Validate everything and return an unsaved Job (``id`` empty)."""
    encoded = check_json(data)
    size = len(encoded) if encoded.isascii() else len(encoded.encode("utf-8"))
    if size > max_data_bytes:
        raise PayloadTooLargeError(
            f"job data is {size} bytes of JSON, over the limit of {max_data_bytes}; store "
            "large content elsewhere (a file, a database row) and submit a reference to it"
        )
    unique_key = options.unique_key
    if unique_key is not None and (
        not isinstance(unique_key, str)
        or not unique_key
        or len(unique_key) > MAX_UNIQUE_KEY
        or not is_unicode(unique_key)
    ):
        raise InvalidOptionError(
            f"unique_key must be a non-empty str of valid Unicode, at most {MAX_UNIQUE_KEY} "
            f"characters, got {unique_key!r}"
        )
    priority = validate_priority(worker.priority if options.priority is None else options.priority)
    attempts = validate_attempts(worker.attempts if options.attempts is None else options.attempts)
    timeout = validate_timeout(worker.timeout if options.timeout is None else options.timeout)
    backoff = worker.backoff if options.backoff is None else Backoff.parse(options.backoff)
    run_at = due_time(options.delay, options.run_at, now)
    # Last: the handler's own code runs only on input that passed every check above.
    title = (title_for or worker.title_for)(data)
    job = Job(
        id="",
        name=worker.name,
        data=data,
        title=title,
        priority=priority,
        attempts=attempts,
        backoff=backoff,
        timeout=timeout,
        unique_key=unique_key,
        created_at=now,
        run_at=run_at,
    )
    if title is None and title_for is None:
        # No handler code saw the data after it was checked (a get_title's title is never
        # None), so the checked text is still its JSON: the backend need not encode it again.
        job._submit_json = (data, encoded)  # type: ignore[misc]  # a slot of its base class
    return job


SUBMIT_OPTIONS = tuple(SubmitOptions.__dataclass_fields__)
_KNOWN_OPTIONS = frozenset(SUBMIT_OPTIONS)
_NO_OPTIONS = SubmitOptions()


def submit_options(options: dict[str, object]) -> SubmitOptions:
    """``SubmitOptions`` from keyword arguments, refusing unknown names with the known ones."""
    # The common submit sets none: the shared default value (the options are frozen).
    if options.keys() <= _KNOWN_OPTIONS and all(value is None for value in options.values()):
        return _NO_OPTIONS
    unknown = sorted(set(options) - set(SUBMIT_OPTIONS))
    if unknown:
        hint = (
            " (retries are counted in attempts: attempts=4 is 3 retries)"
            if ("retries" in unknown)
            else ""
        )
        raise InvalidOptionError(
            f"unknown submit option(s) {', '.join(unknown)}; known: "
            f"{', '.join(SUBMIT_OPTIONS)}{hint}"
        )
    return SubmitOptions(**options)  # type: ignore[arg-type]


def due_time(delay: object, run_at: object, now: float) -> float:
    """When the job may first run: ``now`` unless ``delay`` or ``run_at`` says later."""
    if delay is not None and run_at is not None:
        raise InvalidOptionError("pass either delay or run_at, not both")
    if delay is not None:
        if isinstance(delay, timedelta):
            seconds = delay.total_seconds()
        elif isinstance(delay, (int, float)) and not isinstance(delay, bool):
            seconds = float(delay)
        else:
            raise InvalidOptionError(
                f"delay must be seconds (int/float) or a timedelta, got {delay!r}"
            )
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DELAY_SECONDS:
            raise InvalidOptionError(
                f"delay must be from 0 to {MAX_DELAY_SECONDS:.0f} seconds (about 100 years), "
                f"got {delay!r}"
            )
        return now + seconds
    if run_at is not None:
        if isinstance(run_at, datetime):
            if run_at.tzinfo is None:
                raise InvalidOptionError(
                    "run_at must be timezone-aware (e.g. datetime.now(timezone.utc)); "
                    "a naive datetime is ambiguous"
                )
            return _due(run_at.astimezone(timezone.utc).timestamp(), run_at, now)
        if isinstance(run_at, (int, float)) and not isinstance(run_at, bool):
            return _due(run_at, run_at, now)
        raise InvalidOptionError(
            f"run_at must be an aware datetime or a UNIX timestamp, got {run_at!r}"
        )
    return now


def _due(timestamp: float, run_at: object, now: float) -> float:
    """``run_at`` as a due time: from 1970 (timestamp 0) to ``MAX_DELAY_SECONDS`` from now,
    so that every stored time is a date any reader can show."""
    if not math.isfinite(timestamp) or not 0 <= timestamp <= now + MAX_DELAY_SECONDS:
        raise InvalidOptionError(
            "run_at must be a time from 1970-01-01 (UNIX timestamp 0) to about 100 years "
            f"from now ({MAX_DELAY_SECONDS:.0f} seconds), got {run_at!r}"
        )
    return float(timestamp)
