"""The job a handler receives: the stored values plus ``progress()``, ``log()``,
``transaction()`` and ``retry_in()``."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, Protocol

from jobqueue.engine import Engine
from jobqueue.errors import BackendError, InvalidOptionError, JobStateError
from jobqueue.job import JSON, Job, JobError, check_json
from jobqueue.runtime.interrupt import Snooze

logger = logging.getLogger(__name__)

WRITE_RETRY_FOR = 2.0
"""Seconds a ``progress``/``log`` write is retried through backend errors before it is
dropped: a log line is never worth failing the job whose work is done."""

WRITE_RETRY_MIN = 0.05
"""First pause (seconds) between those retries; it doubles."""


class Recording(Protocol):
    """The lease of a running job, as ``transaction()`` marks it (``leases.Lease``)."""

    recording: bool


class RunningJob:
    """A claimed job as its handler sees it.

    Reading attributes never touches the backend. ``progress`` and ``log`` write through the
    backend under the job's lease, so ``get_job_by_id`` in any process sees them. A write
    after the lease was lost is dropped (and logged): the job belongs to someone else now.
    A write the backend fails (``BackendError``: unreachable, full, ...) is retried for
    ``WRITE_RETRY_FOR`` seconds, then dropped with a warning: it never fails the job.
    """

    __slots__ = ("_backend", "_lease", "_token", "committed", "job")

    def __init__(
        self, job: Job, backend: Engine, token: str, lease: Recording | None = None
    ) -> None:
        self.job = job
        self._backend = backend
        self._token = token
        self._lease = lease
        self.committed: tuple[JSON] | None = None
        """``(result,)`` once ``transaction()`` committed the job's completion."""

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def data(self) -> JSON:
        return self.job.data

    @property
    def title(self) -> str | None:
        return self.job.title

    @property
    def attempts(self) -> int:
        return self.job.attempts

    @property
    def attempts_made(self) -> int:
        return self.job.attempts_made

    @property
    def priority(self) -> int:
        return self.job.priority

    @property
    def created_at(self) -> float:
        return self.job.created_at

    @property
    def flow_id(self) -> str | None:
        return self.job.flow_id

    def dependency_results(self) -> dict[str, JSON]:
        """In a flow: the results of this job's dependencies that completed, by job id
        (delivered with the job: reading them never touches the backend)."""
        return self.job.dependency_results()

    def dependency_errors(self) -> dict[str, JobError | None]:
        """In a flow: the dependencies that failed or were cancelled, by job id, when this
        job's rule for them was ``ignore``."""
        return self.job.dependency_errors()

    def progress(self, value: float, message: str | None = None) -> None:
        """Report progress from 0 to 100, with an optional message."""
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not 0 <= value <= 100
        ):
            raise InvalidOptionError(f"progress must be a number from 0 to 100, got {value!r}")
        if message is not None and not isinstance(message, str):
            raise InvalidOptionError(f"progress message must be a str, got {message!r}")
        stored = self._write(
            "progress",
            lambda: self._backend.set_progress(self.id, self._token, float(value), message),
        )
        if stored:
            self.job.progress = float(value)
            self.job.progress_message = message
        elif stored is not None:
            logger.warning("job %s: progress dropped, lease lost", self.id)

    def log(self, message: str) -> None:
        """Append a timestamped line to the job's log (the newest 100 are kept). A backend
        error is retried briefly, then the line is dropped: it never fails the job."""
        if not isinstance(message, str):
            raise InvalidOptionError(f"log message must be a str, got {message!r}")
        stored = self._write(
            "log line", lambda: self._backend.add_log(self.id, self._token, message)
        )
        if stored is False:
            logger.warning("job %s: log line dropped, lease lost", self.id)

    @contextmanager
    def transaction(self, result: JSON = None) -> Iterator[Any]:
        """``with job.transaction() as conn:`` -- a connection in a transaction on the
        queue's database (psycopg on PostgreSQL, sqlite3 on SQLite) for the handler's own
        rows; at the block's end the job's completion (with ``result``) is written in the
        same transaction, fenced by the lease, and it all commits: the effect and the
        completion together or neither. A lost lease rolls it back and raises
        ``LeaseLostError``; an exception from the block rolls it back and propagates (the
        attempt fails as usual). Once committed the job is completed: what the handler
        returns or raises afterwards changes nothing. Redis and memory raise
        ``TransactionsUnsupportedError``."""
        if self.committed is not None:
            raise JobStateError(f"job {self.id} was completed by an earlier transaction()")
        check_json(result)
        manager = self._backend.complete_in_transaction(self.id, self._token, result)
        lease = self._lease
        try:
            with manager as conn:
                yield conn
                if lease is not None:  # the commit ends the lease: a beat may find it gone
                    lease.recording = True
        except BaseException:
            if lease is not None:
                lease.recording = False
            raise
        self.committed = (result,)

    def retry_in(self, seconds: float) -> NoReturn:
        """Put the job back to run again in ``seconds`` (0: as soon as a dispatcher is free)
        and stop the handler here: raises ``Snooze``, which the dispatcher records once the
        handler has returned. Not a failure: the attempt is not counted, ``attempts`` and
        the backoff are left alone, and the job's history shows it as ``snoozed``. A cancel
        requested meanwhile ends the job cancelled instead."""
        raise Snooze(seconds)

    def _write(self, what: str, write: Callable[[], bool]) -> bool | None:
        """``write()``, retried through backend errors for ``WRITE_RETRY_FOR`` seconds;
        ``None`` when it was dropped. ``LeaseLostError`` is not a ``BackendError``: it stops
        the write at once, as the lease-lost ``False`` does."""
        deadline = time.monotonic() + WRITE_RETRY_FOR
        pause = WRITE_RETRY_MIN
        while True:
            try:
                return write()
            except BackendError as exc:
                if time.monotonic() + pause > deadline:
                    logger.warning(
                        "job %s: %s dropped, the backend kept failing it: %s", self.id, what, exc
                    )
                    return None
                logger.info("job %s: %s not stored yet, retrying: %s", self.id, what, exc)
            time.sleep(pause)  # in the handler's thread: its own time, no one else's
            pause *= 2

    def __repr__(self) -> str:
        return f"<RunningJob {self.name}#{self.id} attempt {self.attempts_made}/{self.attempts}>"
