"""Running one handler, and how it ended: a result or an error to record, or a job to give
back (interrupted by shutdown), to snooze (its handler's ``job.retry_in``) or to end
cancelled.

* **Hooks.** ``jobqueue_job_started``, then the handler call inside the plugins'
  ``jobqueue_run_job`` wrappers. A hook nobody implements costs nothing per job.
* **Timeouts and interrupts** come from the watchdog (``interrupt``), raising in the
  handler's thread, never from SIGALRM. Async handlers run in the slot's own event loop and
  are cancelled there, with jobqueue's own flag, so that a ``TimeoutError`` the handler
  raises itself is never mistaken for its timeout.
* **Never dies of a job.** Whatever the handler raises is the job's failure; a handler's
  ``SystemExit``/``KeyboardInterrupt`` also asks the dispatcher to stop (``Ending``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
from collections.abc import Awaitable
from dataclasses import dataclass, field

import pluggy

from jobqueue.backend import Clock, Outcome
from jobqueue.engine import Engine
from jobqueue.hooks import emit
from jobqueue.job import JSON, Job, JobError, JobState, check_json
from jobqueue.registry import Registry
from jobqueue.runtime.ending import Ending
from jobqueue.runtime.interrupt import HandlerTimeout, JobCancelled, ShutdownInterrupt, Snooze
from jobqueue.runtime.leases import Lease
from jobqueue.runtime.retrying import describe_failure, retry_at
from jobqueue.runtime.running import RunningJob
from jobqueue.runtime.runs import Run, Runs, cancel_task
from jobqueue.worker import Worker

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Finished:
    """A job that ran, with the outcome still to record."""

    lease: Lease
    outcome: Outcome
    since: float = field(default_factory=time.monotonic)
    recorded: JobState | None = None
    """Already stored, by the handler's ``job.transaction()``: only announced, not written."""


@dataclass(frozen=True, eq=False)
class GiveBack:
    """Interrupted by shutdown, its handler now stopped: the job goes back to waiting."""

    lease: Lease


@dataclass(frozen=True, eq=False)
class Cancelled:
    """Its handler stopped after the job's cancel: the job ends cancelled."""

    lease: Lease


@dataclass(frozen=True, eq=False)
class Snoozed:
    """Its handler put it back (``job.retry_in``): the job runs again in ``delay`` seconds."""

    lease: Lease
    delay: float


Ended = Finished | GiveBack | Cancelled | Snoozed


class Executor:
    """Runs handlers for the slots of one dispatcher (each slot in its own thread)."""

    def __init__(
        self,
        backend: Engine,
        registry: Registry,
        hooks: pluggy.HookRelay,
        runs: Runs,
        ending: Ending,
        clock: Clock,
    ) -> None:
        self._backend = backend
        self._registry = registry
        self._hooks = hooks
        self._runs = runs
        self._ending = ending
        self._clock = clock

    def execute(self, lease: Lease, loop: asyncio.AbstractEventLoop) -> Ended:
        """Run the job's handler (``loop``: the slot's, for async handlers)."""
        job = lease.job
        run = self._runs.start(lease)
        lease.started = True
        running = RunningJob(job, self._backend, lease.claim.token, lease)
        try:
            emit(self._hooks, "jobqueue_job_started", job=job)
            result = self._run_hooked(self._registry.get(job.name), run, running, loop)
            if running.committed is None:
                check_json(result)
                return Finished(
                    lease,
                    Outcome(job.id, lease.claim.token, result=result, dependents=job.dependents),
                )
        except BaseException as exc:  # the handler's fault is the job's, never ours
            if running.committed is None:
                return self._failed(run, exc)
            logger.warning(
                "job %s: handler raised after job.transaction() committed its completion; "
                "the job stays completed: %r",
                job.id,
                exc,
            )
        finally:
            self._runs.end(run)
        (committed,) = running.committed
        outcome = Outcome(job.id, lease.claim.token, result=committed)
        return Finished(lease, outcome, recorded=JobState.COMPLETED)

    def _failed(self, run: Run, exc: BaseException) -> Ended:
        lease, job = run.lease, run.lease.job
        if isinstance(exc, JobCancelled) and not run.interrupted:
            logger.info("job %s: handler stopped after its cancel", job.id)
            return Cancelled(lease)
        # A handler past its timeout fails that attempt even during a shutdown: given
        # back, it would hang again after every restart.
        if isinstance(exc, Snooze):
            logger.info("job %s: snoozed by its handler for %gs", job.id, exc.seconds)
            return Snoozed(lease, exc.seconds)
        if run.interrupted and (isinstance(exc, HandlerTimeout) or run.past_timeout()):
            exc = HandlerTimeout()
        elif run.interrupted:
            # Whatever the handler made of our interrupt, it has stopped now: only now may
            # the job go back to waiting, for another dispatcher to run.
            logger.warning("job %s: handler stopped, releasing it", job.id)
            return GiveBack(lease)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            self._ending.handler_exited(job, exc)
        error = describe_failure(exc, job)
        error = JobError(error.type, error.message, traceback.format_exc())
        when = retry_at(job, self._clock())
        logger.log(
            logging.INFO if when is not None else logging.WARNING,
            "job %s (%s) attempt %d/%d failed: %s",
            job.id,
            job.name,
            job.attempts_made,
            job.attempts,
            error,
        )
        return Finished(
            lease,
            Outcome(
                job.id, lease.claim.token, error=error, retry_at=when, dependents=job.dependents
            ),
        )

    def _run_hooked(
        self, worker: Worker, run: Run, running: RunningJob, loop: asyncio.AbstractEventLoop
    ) -> JSON:
        """The handler call, inside the plugins' ``jobqueue_run_job`` wrappers if any."""
        hook = self._hooks.jobqueue_run_job
        if not hook.get_hookimpls():  # nobody listens: skip pluggy's call machinery per job
            return self._run_handler(worker, run, running, loop)

        def handler_call(job: Job) -> JSON:
            return self._run_handler(worker, run, running, loop)

        result: JSON = hook.call_extra([handler_call], {"job": run.lease.job})
        return result

    def _run_handler(
        self, worker: Worker, run: Run, running: RunningJob, loop: asyncio.AbstractEventLoop
    ) -> JSON:
        timeout = run.lease.job.timeout
        if worker.is_async:
            return self._run_coroutine(worker.handle(running), timeout, run, loop)
        watchdog = self._runs.watchdog
        guard = watchdog.arm(timeout)
        try:
            if self._runs.arm(run, guard):  # shutdown came between claim and call
                raise ShutdownInterrupt
            result = worker.handle(running)
        finally:
            # An exception fired but not landed yet is cancelled here; one that lands while
            # we get here is raised within this try, so it never reaches dispatcher code.
            watchdog.disarm(guard)
            self._runs.arm(run, None)
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            return self._run_coroutine(result, timeout, run, loop)
        return result

    def _run_coroutine(
        self,
        awaitable: Awaitable[JSON],
        timeout: float | None,
        run: Run,
        loop: asyncio.AbstractEventLoop,
    ) -> JSON:
        task = loop.create_task(_await(awaitable))
        if self._runs.attach(run, task, loop):
            cancel_task(run, task, ShutdownInterrupt)
        # Our own deadline rather than asyncio.wait_for: a TimeoutError the handler raises
        # itself must not be mistaken for ours.
        timer = None if timeout is None else loop.call_later(timeout, cancel_task, run, task)
        try:
            return loop.run_until_complete(task)
        except asyncio.CancelledError:
            if run.cancelled_with is not None:
                raise run.cancelled_with from None
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._runs.attach(run, None, loop)


async def _await(awaitable: Awaitable[JSON]) -> JSON:
    return await awaitable
