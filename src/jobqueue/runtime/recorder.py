"""Recording outcomes: the completer, and the plugins told what became of each job.

* **One round trip per job.** Recording a job's outcome and claiming the next are one
  backend call (``complete`` with the next ``WorkSpec``, one ``apply``). A slot holding
  several finished jobs records them in one call too (``finish_many``: the ``Batch``
  completer, which records a single outcome as ``Inline`` does).
* **Fenced.** Every write carries the lease's token. A write the backend refuses, or one
  given up once the lease ran out, means the lease was lost: the outcome is discarded and
  ``jobqueue_lease_lost`` fires (``leases``).
* **Hooks** ``jobqueue_job_completed`` / ``jobqueue_job_failed`` / ``jobqueue_job_cancelled``
  fire once the outcome is stored.
* **Recorded once.** A job whose handler completed it in its own transaction
  (``job.transaction()``: ``Finished.recorded``) is only announced, never written again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import pluggy

from jobqueue.backend import Claim, Clock, WorkSpec
from jobqueue.engine import Engine
from jobqueue.errors import BackendError, JobQueueError, LeaseLostError
from jobqueue.hooks import emit
from jobqueue.job import JobError, JobState
from jobqueue.runtime.executor import Finished
from jobqueue.runtime.leases import Lease, LeaseBook
from jobqueue.runtime.outage import Outages
from jobqueue.runtime.retrying import retry_at
from jobqueue.runtime.tally import Tally

logger = logging.getLogger(__name__)

ENDED = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


Written = tuple[list[JobState | None], list[Claim]]
"""What a completer stored: each outcome's new state (``None``: refused, the lease was lost),
and the jobs claimed in the same call. A plain tuple: it is made once per job."""


class Completer(Protocol):
    def write_one(self, done: Finished, next_spec: WorkSpec | None) -> Written:
        """Store one outcome; with ``next_spec``, a completed job's call also claims the next
        job."""
        ...

    def write_many(
        self, finished: Sequence[Finished], next_spec: WorkSpec | None, want: int
    ) -> tuple[list[JobState | None], list[Claim], bool]:
        """Store the outcomes and, with ``next_spec``, claim up to ``want`` more jobs if
        the same call can. Also returns whether it looked for them (found or not)."""
        ...


class Inline:
    """One call per outcome."""

    def __init__(self, backend: Engine, leases: LeaseBook, outages: Outages) -> None:
        self._backend = backend
        self._leases = leases
        self._outages = outages

    def write_one(self, done: Finished, next_spec: WorkSpec | None) -> Written:
        outcome, error = done.outcome, done.outcome.error
        backend = self._backend
        try:
            if error is None:
                claim = self._outages.call(
                    lambda: backend.complete(
                        outcome.job_id, outcome.token, outcome.result, next_spec, outcome.dependents
                    ),
                    give_up=lambda: self._leases.gone(done.lease),
                )
                return [JobState.COMPLETED], [claim] if claim is not None else []
            state = self._outages.call(
                lambda: backend.fail(
                    outcome.job_id, outcome.token, error, outcome.retry_at, outcome.dependents
                ),
                give_up=lambda: self._leases.gone(done.lease),
            )
            return [state], []
        except (LeaseLostError, BackendError) as exc:
            logger.warning("outcome of job %s was not stored: %s", outcome.job_id, exc)
            return [None], []

    def write_many(
        self, finished: Sequence[Finished], next_spec: WorkSpec | None, want: int
    ) -> tuple[list[JobState | None], list[Claim], bool]:
        states: list[JobState | None] = []
        for done in finished:
            states += self.write_one(done, None)[0]
        return states, [], False


class Batch(Inline):
    """Several outcomes, and the next claims, in one ``finish_many`` call (one outcome as
    ``Inline`` does: ``complete`` claims the next job too)."""

    def __init__(self, backend: Engine, leases: LeaseBook, outages: Outages) -> None:
        super().__init__(backend, leases, outages)
        self._batch = backend

    def write_many(
        self, finished: Sequence[Finished], next_spec: WorkSpec | None, want: int
    ) -> tuple[list[JobState | None], list[Claim], bool]:
        outcomes = [done.outcome for done in finished]
        try:
            states, claims = self._outages.call(
                lambda: self._batch.finish_many(outcomes, next_spec, want),
                give_up=lambda: all(self._leases.gone(done.lease) for done in finished),
            )
        except (LeaseLostError, BackendError) as exc:
            logger.warning("outcomes of %d job(s) were not stored: %s", len(finished), exc)
            return [None] * len(finished), [], False
        return states, claims, next_spec is not None


class Recorder:
    """Every write that ends an attempt, for the slots of one dispatcher."""

    def __init__(
        self,
        backend: Engine,
        spec: WorkSpec,
        leases: LeaseBook,
        tally: Tally,
        hooks: pluggy.HookRelay,
        clock: Clock,
        outages: Outages,
    ) -> None:
        self._backend = backend
        self._spec = spec
        self._leases = leases
        self._tally = tally
        self._hooks = hooks
        self._clock = clock
        self._completer: Completer = Batch(backend, leases, outages)

    def record(self, finished: Sequence[Finished], want: int) -> tuple[list[Lease], bool]:
        """Record outcomes and claim up to ``want`` more jobs in the same call where the
        backend can. Returns the newly held jobs, and whether the call looked for them (if
        not, the caller claims)."""
        if any(done.recorded is not None for done in finished):
            finished = self._recorded_already(finished)
            if not finished:
                return [], False
        next_spec = self._spec if want > 0 else None
        for done in finished:  # from now on a heartbeat's "lost" may just mean "written"
            done.lease.recording = True
        if len(finished) == 1 and want <= 1:
            # The common case (prefetch 1): one call stores the outcome and, for a completed
            # job, claims the next one.
            done = finished[0]
            states, claims = self._completer.write_one(done, next_spec)
            looked = next_spec is not None and done.outcome.error is None
        else:
            states, claims, looked = self._completer.write_many(finished, next_spec, want)
        for done, state in zip(finished, states, strict=True):
            self._leases.forget(done.lease)
            self._announce(done, state)
        return self._leases.hold(claims), looked

    def _recorded_already(self, finished: Sequence[Finished]) -> list[Finished]:
        """Announce the outcomes a handler's ``job.transaction()`` stored (never written
        again: the outcome is recorded once); the others, still to write."""
        rest = []
        for done in finished:
            if done.recorded is None:
                rest.append(done)
                continue
            self._leases.forget(done.lease)
            self._announce(done, done.recorded)
        return rest

    def _announce(self, done: Finished, state: JobState | None) -> None:
        """Tell the plugins what happened to a recorded job (nothing if the write was refused)."""
        job, outcome = done.lease.job, done.outcome
        if state is None:
            self._tally.add("lost")
            logger.warning("job %s: outcome discarded, its lease was lost", job.id)
            self._leases.lost(done.lease, held=False)
            return
        self._tally.add(state.value if state in ENDED else "retrying")
        job.state = state
        if state in ENDED:
            # The backend stamped its own time; ours is within a round trip of it.
            job.finished_at = self._clock()
        if state is JobState.CANCELLED:  # it failed after a cancel: not retried
            job.error = outcome.error
            emit(self._hooks, "jobqueue_job_cancelled", job=job)
        elif outcome.error is None:
            job.result = outcome.result
            emit(self._hooks, "jobqueue_job_completed", job=job)
        else:
            job.error = outcome.error
            will_retry = outcome.retry_at is not None
            emit(
                self._hooks,
                "jobqueue_job_failed",
                job=job,
                error=outcome.error,
                will_retry=will_retry,
            )

    def release(self, lease: Lease) -> None:
        """Give the job back to waiting (this attempt not counted)."""
        self._leases.forget(lease)
        try:
            released = self._backend.release(lease.job.id, lease.claim.token)
        except JobQueueError as exc:  # the lease will expire and the job be recovered
            logger.warning("could not release job %s: %s", lease.job.id, exc)
            return
        if not released:
            self._leases.lost(lease, held=False)

    def snooze(self, lease: Lease, delay: float) -> None:
        """Put the job back to run in ``delay`` seconds (its handler's ``job.retry_in``)."""
        self._leases.forget(lease)
        try:
            state = self._backend.snooze(lease.job.id, lease.claim.token, delay)
        except JobQueueError as exc:  # the lease expires and the job is recovered
            logger.warning("could not snooze job %s: %s", lease.job.id, exc)
            return
        if state is None:
            self._tally.add("lost")
            self._leases.lost(lease, held=False)
            return
        self._tally.add("snoozed")
        if state is JobState.CANCELLED:  # a cancel came first
            job = lease.job
            job.state, job.finished_at = JobState.CANCELLED, self._clock()
            emit(self._hooks, "jobqueue_job_cancelled", job=job)

    def finish_cancelled(self, lease: Lease, error: JobError | None = None) -> None:
        """End the job cancelled: its handler stopped after the cancel, or never started."""
        self._leases.forget(lease)
        try:
            done = self._backend.finish_cancelled(
                lease.job.id, lease.claim.token, error, lease.job.dependents
            )
        except JobQueueError as exc:  # the lease expires; recovery ends it cancelled
            logger.warning("could not record the cancel of job %s: %s", lease.job.id, exc)
            return
        if not done:
            self._tally.add("lost")
            self._leases.lost(lease, held=False)
            return
        self._tally.add("cancelled")
        job = lease.job
        job.state, job.finished_at = JobState.CANCELLED, self._clock()
        emit(self._hooks, "jobqueue_job_cancelled", job=job)

    def fail_attempt(self, lease: Lease, error: JobError) -> None:
        """Record ``error`` as this attempt's failure (retried per the job's ``attempts`` and
        backoff) without a handler's outcome: for a slot that crashed or a handler that is
        still stuck as the process exits."""
        job = lease.job
        self._leases.forget(lease)
        when = retry_at(job, self._clock())
        try:
            self._backend.fail(job.id, lease.claim.token, error, when, job.dependents)
        except JobQueueError as exc:  # its lease expires: the stall rule ends it then
            logger.warning("could not record the failure of job %s: %s", job.id, exc)
            return
        self._tally.add("retrying" if when is not None else "failed")
        logger.warning(
            "job %s (%s) attempt %d/%d failed: %s: %s",
            job.id,
            job.name,
            job.attempts_made,
            job.attempts,
            error.type,
            error.message,
        )
