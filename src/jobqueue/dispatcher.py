"""The dispatcher: claim a job, run its handler, record the outcome, repeat.

Read this file top to bottom to see the whole engine.

* **One at a time.** Each dispatcher runs ``concurrency`` slots (default 1); a slot runs one
  job at a time, so by default a process never runs two handlers at once.
* **One round trip per job.** Completing a job and claiming the next are one backend call.
* **Leases.** A heartbeat thread renews the lease of every running job every third of the
  lease. A job whose lease is lost belongs to someone else: its outcome is discarded.
* **Policy lives here, once.** Timeouts, retries with backoff, and the stall limit's effects
  are decided here; backends only apply decisions atomically.
* **Shutdown.** ``stop()`` (SIGTERM/SIGINT under ``run_worker``) stops claiming; running jobs
  get ``grace_seconds`` to finish, then are interrupted and released back to waiting.
* **Never dies of a job.** A handler's exception, a corrupt record or a lost connection is
  logged and handled; only ``stop()`` ends the loop (or an empty queue with ``burst``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

from jobqueue.backend import Backend, Claim, Clock, WorkSpec
from jobqueue.errors import (
    BackendError,
    JobQueueError,
    JobTimeoutError,
    LeaseLostError,
    NotSerializableError,
)
from jobqueue.interrupt import Interrupter, ShutdownInterrupt
from jobqueue.job import JSON, JobError, JobState, check_json
from jobqueue.registry import Registry
from jobqueue.running import RunningJob
from jobqueue.worker import Worker

logger = logging.getLogger("jobqueue.dispatcher")

T = TypeVar("T")


@dataclass(eq=False)
class _Running:
    """One job a slot is running: its lease, and what the heartbeat found out."""

    claim: Claim
    interrupter: Interrupter
    lease_lost: bool = False
    abandoned: bool = False
    task: asyncio.Task[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    token: str = field(init=False)
    lease_deadline: float = field(init=False)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.token = self.claim.token
        self.lease_deadline = self.claim.lease_expires_at


class Dispatcher:
    """Runs jobs of the registered workers from one backend. See the module docstring."""

    def __init__(
        self,
        backend: Backend,
        registry: Registry,
        hooks: Any,
        *,
        names: Iterable[str] | None = None,
        concurrency: int = 1,
        lease_seconds: float = 30.0,
        grace_seconds: float = 30.0,
        idle_timeout: float = 1.0,
        clock: Clock = time.time,
    ) -> None:
        if concurrency < 1:
            raise JobQueueError(f"concurrency must be >= 1, got {concurrency}")
        if lease_seconds <= 0:
            raise JobQueueError(f"lease_seconds must be > 0, got {lease_seconds}")
        self.backend = backend
        self.registry = registry
        self.hooks = hooks
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        # An idle slot blocks in the backend's wait_for_work (woken by submits) for at most
        # this long, so that stop() is honoured within it.
        self.idle_timeout = idle_timeout
        self.clock = clock
        chosen = tuple(names) if names is not None else registry.names()
        self.spec = WorkSpec(
            names=chosen,
            lease_seconds=lease_seconds,
            max_active={
                w.name: w.max_active for w in registry if w.max_active and w.name in chosen
            },
        )
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._running: dict[int, _Running] = {}
        self._running_lock = threading.Lock()
        self._grace_timer: threading.Timer | None = None
        self.processed = 0

    # -- the public surface -------------------------------------------------------------------

    def run(self, *, burst: bool = False, max_jobs: int | None = None) -> int:
        """Process jobs until :meth:`stop` (or, with ``burst``, until none is ready).
        Returns how many jobs were processed (completed, failed or retried)."""
        if not self.spec.names:
            logger.warning("no workers registered: nothing to dispatch")
            return 0
        self._stopping.clear()
        self._finished.clear()
        self.processed = 0
        heartbeat = threading.Thread(target=self._heartbeat, name="jobqueue-heartbeat", daemon=True)
        heartbeat.start()
        slots = [
            threading.Thread(
                target=self._slot, args=(burst, max_jobs), name=f"jobqueue-slot-{n}", daemon=True
            )
            for n in range(1, self.concurrency)
        ]
        for thread in slots:
            thread.start()
        try:
            self._slot(burst, max_jobs)
        finally:
            for thread in slots:
                thread.join()
            self._stopping.set()
            self._finished.set()
            heartbeat.join()
            if self._grace_timer is not None:
                self._grace_timer.cancel()
        return self.processed

    def stop(self, grace_seconds: float | None = None) -> None:
        """Stop claiming; give running jobs ``grace_seconds`` to finish, then interrupt them and
        release them back to waiting. Safe to call from signal handlers and other threads."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        logger.info("stopping: no new claims, %.1fs grace for running jobs", grace)
        self._grace_timer = threading.Timer(grace, self.abandon_running)
        self._grace_timer.daemon = True
        self._grace_timer.start()

    def abandon_running(self) -> None:
        """Interrupt every running handler and give its job back to the queue."""
        with self._running_lock:
            running = list(self._running.values())
        for run in running:
            run.abandoned = True
            logger.warning("job %s did not finish in time: releasing it", run.claim.job.id)
            try:
                self.backend.release(run.claim.job.id, run.token)
            except JobQueueError as exc:  # the lease will expire and the job be recovered
                logger.warning("could not release job %s: %s", run.claim.job.id, exc)
            if run.task is not None and run.loop is not None:
                run.loop.call_soon_threadsafe(run.task.cancel)
            else:
                run.interrupter.fire(ShutdownInterrupt("shutdown grace period is over"))

    def install_signal_handlers(self) -> Callable[[], None]:
        """SIGTERM/SIGINT stop gracefully; a second SIGINT abandons running jobs at once.
        Returns a function that restores the previous handlers."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self._stopping.is_set() and signum == signal.SIGINT:
                self.abandon_running()
            else:
                self.stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    # -- one slot: claim, run, record, repeat -------------------------------------------------

    def _slot(self, burst: bool, max_jobs: int | None) -> None:
        loop = asyncio.new_event_loop()
        claim: Claim | None = None
        try:
            with Interrupter() as interrupter:
                while not self._stopping.is_set():
                    if claim is None:
                        claim = self._call_backend(lambda: self.backend.claim(self.spec))
                        if claim is None:
                            if burst:
                                return
                            self._call_backend(
                                lambda: self.backend.wait_for_work(
                                    self.spec.names, self.idle_timeout
                                )
                            )
                            continue
                    if not self._reserve_slot(max_jobs):
                        break
                    claim = self._process(claim, interrupter, loop, max_jobs)
            if claim is not None:  # claimed ahead, but we are stopping: give it back
                self.backend.release(claim.job.id, claim.token)
        except BackendError as exc:
            logger.warning("stopping with the backend unreachable: %s", exc)
        finally:
            loop.close()

    def _reserve_slot(self, max_jobs: int | None) -> bool:
        with self._running_lock:
            if max_jobs is not None and self.processed >= max_jobs:
                return False
            self.processed += 1
            return True

    def _process(
        self,
        claim: Claim,
        interrupter: Interrupter,
        loop: asyncio.AbstractEventLoop,
        max_jobs: int | None,
    ) -> Claim | None:
        """Run one claimed job and record its outcome. Returns the next claimed job when the
        backend claimed one while completing this one."""
        job = claim.job
        run = _Running(claim, interrupter)
        with self._running_lock:
            self._running[id(run)] = run
        try:
            self._emit("jobqueue_job_started", job=job)
            error: JobError | None = None
            result: JSON = None
            traceback_text = ""
            try:
                result = self._run_handler(self.registry.get(job.name), run, loop)
                check_json(result)
            except ShutdownInterrupt:
                return None
            except BaseException as exc:  # the handler's fault is the job's, never ours
                if run.abandoned:
                    return None
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    self.stop()
                error = _describe_failure(exc, run, result)
                traceback_text = traceback.format_exc()
            if run.abandoned:
                return None
            if error is None:
                return self._record_success(run, result, max_jobs)
            self._record_failure(run, JobError(error.type, error.message, traceback_text))
            return None
        finally:
            with self._running_lock:
                self._running.pop(id(run), None)

    def _run_handler(self, worker: Worker, run: _Running, loop: asyncio.AbstractEventLoop) -> JSON:
        running = RunningJob(run.claim.job, self.backend, run.token)
        timeout = run.claim.job.timeout
        if worker.is_async:
            coroutine = worker.handle(running)
            task = loop.create_task(asyncio.wait_for(coroutine, timeout))
            run.task, run.loop = task, loop
            return loop.run_until_complete(task)
        run.interrupter.arm(timeout, JobTimeoutError(f"timed out after {timeout}s"))
        try:
            result = worker.handle(running)
        finally:
            run.interrupter.disarm()
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            task = loop.create_task(asyncio.wait_for(_await(result), timeout))
            run.task, run.loop = task, loop
            return loop.run_until_complete(task)
        return result

    def _record_success(self, run: _Running, result: JSON, max_jobs: int | None) -> Claim | None:
        job = run.claim.job
        want_next = not self._stopping.is_set() and (max_jobs is None or self.processed < max_jobs)
        try:
            next_claim = self._call_backend(
                lambda: self.backend.complete(
                    job.id, run.token, result, self.spec if want_next else None
                ),
                give_up=lambda: self._lease_gone(run),
            )
        except (LeaseLostError, BackendError) as exc:
            logger.warning("job %s finished but its result was not stored: %s", job.id, exc)
            return None
        job.state, job.result = JobState.COMPLETED, result
        self._emit("jobqueue_job_completed", job=job)
        return next_claim

    def _record_failure(self, run: _Running, error: JobError) -> None:
        job = run.claim.job
        will_retry = job.attempts_made < job.attempts
        retry_at = self.clock() + job.backoff.delay_for(job.attempts_made) if will_retry else None
        logger.log(
            logging.INFO if will_retry else logging.WARNING,
            "job %s (%s) attempt %d/%d failed: %s",
            job.id,
            job.name,
            job.attempts_made,
            job.attempts,
            error,
        )
        try:
            job.state = self._call_backend(
                lambda: self.backend.fail(job.id, run.token, error, retry_at),
                give_up=lambda: self._lease_gone(run),
            )
        except (LeaseLostError, BackendError) as exc:
            logger.warning("job %s failed but the failure was not stored: %s", job.id, exc)
            return
        job.error = error
        self._emit("jobqueue_job_failed", job=job, error=error, will_retry=will_retry)

    def _lease_gone(self, run: _Running) -> bool:
        return run.lease_lost or self.clock() > run.lease_deadline

    # -- the heartbeat: renew every running job's lease ---------------------------------------

    def _heartbeat(self) -> None:
        while not self._finished.wait(self.lease_seconds / 3):
            with self._running_lock:
                running = list(self._running.values())
            for run in running:
                if run.lease_lost or run.abandoned:
                    continue
                job_id = run.claim.job.id
                try:
                    renewed = self.backend.renew(job_id, run.token, self.lease_seconds)
                except JobQueueError as exc:
                    logger.warning("could not renew the lease of job %s: %s", job_id, exc)
                    continue
                if renewed:
                    run.lease_deadline = self.clock() + self.lease_seconds
                else:
                    run.lease_lost = True
                    logger.warning(
                        "lost the lease of job %s: another dispatcher may run it; "
                        "this attempt's outcome will be discarded",
                        job_id,
                    )

    # -- helpers ------------------------------------------------------------------------------

    def _call_backend(
        self, operation: Callable[[], T], give_up: Callable[[], bool] | None = None
    ) -> T:
        """Run a backend call, riding out outages with capped exponential back-off until
        ``give_up()`` (default: the dispatcher is stopping) says to re-raise the error."""
        give_up = give_up or self._stopping.is_set
        delay = 0.05
        while True:
            try:
                return operation()
            except LeaseLostError:
                raise
            except BackendError as exc:
                if give_up():
                    raise
                logger.warning("backend error, retrying in about %.2fs: %s", delay, exc)
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 5.0)

    def _emit(self, hook_name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook; a plugin's exception is logged, never fatal."""
        try:
            getattr(self.hooks, hook_name)(**kwargs)
        except Exception:
            logger.exception("plugin hook %s raised", hook_name)


def _describe_failure(exc: BaseException, run: _Running, result: JSON) -> JobError:
    timeout = run.claim.job.timeout
    timed_out = timeout is not None and time.monotonic() - run.started >= timeout * 0.99
    if isinstance(exc, JobTimeoutError) or (isinstance(exc, TimeoutError) and timed_out):
        return JobError("JobTimeoutError", f"handler ran longer than its timeout of {timeout}s")
    if isinstance(exc, NotSerializableError):
        return JobError(
            "NotSerializableError",
            f"handler returned a value that is not JSON ({type(result).__name__}): {exc}",
        )
    return JobError.from_exception(exc)


async def _await(awaitable: Any) -> Any:
    return await awaitable
