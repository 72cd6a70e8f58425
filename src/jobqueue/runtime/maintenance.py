"""Maintenance, as the heartbeat runs it: one ``backend.maintain`` call about every second
(promoting due jobs, recovering expired leases, retention, forgetting dead dispatchers), and
the stalls it reports.

A job recovered from an expired lease fires ``jobqueue_job_stalled``, in the process whose
maintenance recovered it (``maintain`` returns exactly those; claims recover nothing). A
failing call is logged and never stops the heartbeat.
"""

from __future__ import annotations

import logging
import time

import pluggy

from jobqueue.engine import Engine
from jobqueue.errors import JobQueueError
from jobqueue.hooks import emit
from jobqueue.job import Job

logger = logging.getLogger(__name__)

MAINTAIN_EVERY = 1.0
"""Seconds between maintenance steps of one dispatcher."""


class Maintenance:
    """The maintenance of one dispatcher (called from its heartbeat's worker threads)."""

    def __init__(self, backend: Engine, hooks: pluggy.HookRelay) -> None:
        self._backend = backend
        self._hooks = hooks
        self._last = 0.0

    def step(self) -> None:
        """Maintain, unless the last step was less than ``MAINTAIN_EVERY`` ago."""
        now = time.monotonic()
        if now - self._last >= MAINTAIN_EVERY:
            self._last = now
            self.run()

    def run(self) -> None:
        """Maintain now; report the stalls recovered."""
        try:
            recovered = self._backend.maintain()
        except JobQueueError as exc:
            logger.warning("maintenance failed: %s", exc)
            return
        except Exception:  # a bug: logged, and the renewals still count
            logger.exception("maintenance failed unexpectedly")
            return
        for job in recovered:
            self._stalled(job)

    def _stalled(self, job: Job) -> None:
        logger.info("job %s stalled (stall %d): its lease expired", job.id, job.stalls)
        emit(self._hooks, "jobqueue_job_stalled", job=job)
