"""The job a handler receives: the stored values plus ``progress()`` and ``log()``."""

from __future__ import annotations

import logging
import math

from jobqueue.backend import Backend
from jobqueue.errors import InvalidOptionError
from jobqueue.job import JSON, Job

logger = logging.getLogger("jobqueue.running")


class RunningJob:
    """A claimed job as its handler sees it.

    Reading attributes never touches the backend. ``progress`` and ``log`` write through the
    backend under the job's lease, so ``get_job_by_id`` in any process sees them. A write
    after the lease was lost is dropped (and logged): the job belongs to someone else now.
    """

    __slots__ = ("_backend", "_token", "job")

    def __init__(self, job: Job, backend: Backend, token: str) -> None:
        self.job = job
        self._backend = backend
        self._token = token

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
        if self._backend.set_progress(self.id, self._token, float(value), message):
            self.job.progress = float(value)
            self.job.progress_message = message
        else:
            logger.warning("job %s: progress dropped, lease lost", self.id)

    def log(self, message: str) -> None:
        """Append a timestamped line to the job's log (the newest 100 are kept)."""
        if not isinstance(message, str):
            raise InvalidOptionError(f"log message must be a str, got {message!r}")
        if not self._backend.add_log(self.id, self._token, message):
            logger.warning("job %s: log line dropped, lease lost", self.id)

    def __repr__(self) -> str:
        return f"<RunningJob {self.name}#{self.id} attempt {self.attempts_made}/{self.attempts}>"
