"""The Engine's maintenance: the store's housekeeping, then every expired lease ended as
``lifecycle.on_stall`` decides, fenced by the expired lease's token."""

from __future__ import annotations

import logging

from jobqueue import lifecycle
from jobqueue.backend import Backend, BackendOptions
from jobqueue.changes import Change
from jobqueue.engine.flows import Flows
from jobqueue.engine.steering import PAGE
from jobqueue.job import Job, JobState

logger = logging.getLogger("jobqueue.engine")


class Recovery(Flows):
    """Maintenance (a part of ``Engine``)."""

    store: Backend
    options: BackendOptions

    def maintain(self) -> list[Job]:
        """Promote due jobs, apply retention, forget dead dispatchers (the store's
        ``housekeep``), then recover expired leases; returns the recovered jobs."""
        self.store.housekeep()
        recovered = self.recover_expired()
        self.sweep_blocked()
        return recovered

    def recover_expired(self) -> list[Job]:
        """Each expired lease ended as ``lifecycle.on_stall`` decides (a stall; failed past
        ``max_stalls``; cancelled after a cancel request). Returns the recovered jobs as
        they now are, in recovery order."""
        recovered: list[Job] = []
        while expired := self.store.expired(PAGE):
            now = self.options.clock()
            changes = [
                lifecycle.on_stall(c.job, self.options.max_stalls, now, c.token) for c in expired
            ]
            conflicts, _ = self.store.apply(changes)
            written = [
                (claim, change)
                for claim, change, conflict in zip(expired, changes, conflicts, strict=True)
                if not conflict
            ]
            for claim, change in written:
                _log_stall(change)
                if claim.job.dependents and change.to in (JobState.FAILED, JobState.CANCELLED):
                    self.ended(change.job_id, claim.job.dependents)
                job = self.store.get(change.job_id)
                if job is not None:
                    recovered.append(job)
            if len(expired) < PAGE or not written:
                break
        return recovered


def _log_stall(change: Change) -> None:
    stalls = change.set.get("stalls")
    if change.to is JobState.WAITING:
        logger.info("job %s: lease expired, back to waiting (stall %s)", change.job_id, stalls)
    elif change.to is JobState.FAILED:
        logger.warning("job %s stalled %s times: failing it", change.job_id, stalls)
    else:
        logger.info("job %s: lease expired after a cancel request: cancelled", change.job_id)
