"""The application of the partition test's dispatcher processes
(``python -m jobqueue --app tests.reliability.partition_app:queue worker``).

Settings from the environment: ``JQ_REL_URL``, ``JQ_REL_NAMESPACE``, ``JQ_REL_LEASE``;
``JQ_PART_HOOKS`` a file where this process appends one line per hook call
(``<hook> <job id> <stalls> <state> <pid>``); ``JQ_PART_RELEASE`` a file whose existence lets
the first attempt of a ``hold`` job return (later attempts return at once).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from jobqueue import JobQueue, hookimpl
from jobqueue.job import Job

HOLD_AT_MOST = 60.0
"""Seconds a first attempt waits for the release file before it returns anyway."""


class HookLog:
    """Appends a line per hook call; one ``write`` per line on an O_APPEND file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _line(self, hook: str, job: Job) -> None:
        self._write(f"{hook} {job.id} {job.stalls} {job.state.value} {os.getpid()}\n")

    def _write(self, text: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def returned(self, job_id: str) -> None:
        """Not a hook: the handler's last act, so the test knows the outcome is on its way."""
        self._write(f"returned {job_id} - - {os.getpid()}\n")

    @hookimpl
    def jobqueue_job_started(self, job: Job) -> None:
        self._line("started", job)

    @hookimpl
    def jobqueue_job_completed(self, job: Job) -> None:
        self._line("completed", job)

    @hookimpl
    def jobqueue_lease_lost(self, job: Job) -> None:
        self._line("lease_lost", job)

    @hookimpl
    def jobqueue_job_stalled(self, job: Job) -> None:
        self._line("stalled", job)


def queue() -> JobQueue:
    jobs = JobQueue(
        os.environ["JQ_REL_URL"],
        namespace=os.environ["JQ_REL_NAMESPACE"],
        lease_seconds=float(os.environ.get("JQ_REL_LEASE", "2")),
        load_entrypoints=False,
    )
    hook_log = HookLog(os.environ["JQ_PART_HOOKS"])
    jobs.plugins.register(hook_log)
    release = Path(os.environ["JQ_PART_RELEASE"])

    @jobs.worker("hold")
    def hold(job: Any) -> dict[str, int]:
        """The first attempt runs until the release file exists (past its lease, while the
        test cuts this process off); a later one returns at once."""
        if job.attempts_made == 1:
            until = time.monotonic() + HOLD_AT_MOST
            while not release.exists() and time.monotonic() < until:
                time.sleep(0.02)
        hook_log.returned(job.id)
        return {"pid": os.getpid(), "attempt": job.attempts_made}

    return jobs
