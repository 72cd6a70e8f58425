"""The dispatcher: claim a job, run its handler, record the outcome, repeat.

Read this file top to bottom to see the whole engine.

* **One at a time.** A dispatcher runs ``concurrency`` slots (default 1); a slot runs one job
  at a time, so by default a process never runs two handlers at once.
* **One round trip per job.** Recording a job's outcome and claiming the next are one backend
  call. With ``prefetch=N`` a slot claims up to N jobs ahead and records their outcomes in
  batches (still running them one at a time), for fewer than one round trip per job.
* **Leases.** A heartbeat thread renews every lease the dispatcher holds, every third of the
  lease. A job whose lease is lost belongs to someone else: its outcome is discarded.
* **Policy lives here, once.** Timeouts and retries with backoff are decided here; backends
  only apply decisions atomically.
* **Shutdown.** ``stop()`` (SIGTERM/SIGINT under ``run_worker``) stops claiming; the running
  job gets ``grace_seconds`` to finish, then is interrupted and released back to waiting.
* **Never dies of a job.** A handler's exception, a plugin's, or a lost connection is logged
  and handled; only ``stop()`` ends the loop (or an empty queue with ``burst``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import signal
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

from jobqueue.backend import Backend, BatchBackend, Claim, Clock, Outcome, WorkSpec
from jobqueue.errors import (
    BackendError,
    InvalidSettingError,
    JobQueueError,
    JobTimeoutError,
    LeaseLostError,
    NotSerializableError,
)
from jobqueue.interrupt import Interrupter, ShutdownInterrupt
from jobqueue.job import JSON, Job, JobError, JobState, check_json
from jobqueue.registry import Registry
from jobqueue.running import RunningJob
from jobqueue.worker import Worker

logger = logging.getLogger("jobqueue.dispatcher")

T = TypeVar("T")

FLUSH_AFTER = 0.05
"""With prefetch, outcomes wait at most about this long (seconds) before being recorded."""

CAPPED_BACKOFF_MIN, CAPPED_BACKOFF_MAX = 0.002, 0.1
"""Back-off (seconds) of a slot whose ready work is held back by ``max_active`` elsewhere."""


@dataclass(eq=False)
class _Lease:
    """A job this dispatcher holds: claimed ahead, running, or finished but not recorded."""

    claim: Claim
    deadline: float = field(init=False)
    lost: bool = False

    def __post_init__(self) -> None:
        self.deadline = self.claim.lease_expires_at

    @property
    def job(self) -> Job:
        return self.claim.job


@dataclass(eq=False)
class _Running:
    """The job a slot is running right now, and how to interrupt it."""

    lease: _Lease
    interrupter: Interrupter
    started: float = field(default_factory=time.monotonic)
    abandoned: bool = False
    task: asyncio.Task[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None


@dataclass(eq=False)
class _Finished:
    """A job that ran, with the outcome still to record."""

    lease: _Lease
    outcome: Outcome
    since: float = field(default_factory=time.monotonic)


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
        prefetch: int = 1,
        lease_seconds: float = 30.0,
        grace_seconds: float = 30.0,
        idle_timeout: float = 1.0,
        clock: Clock = time.time,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidSettingError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or not 1 <= prefetch <= 1000:
            raise InvalidSettingError(f"prefetch must be an int from 1 to 1000, got {prefetch!r}")
        if lease_seconds <= 0:
            raise InvalidSettingError(f"lease_seconds must be > 0, got {lease_seconds}")
        self.backend = backend
        self.registry = registry
        self.hooks = hooks
        self.concurrency = concurrency
        self.prefetch = prefetch
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
        self._batching = isinstance(backend, BatchBackend)
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._leases: dict[str, _Lease] = {}  # token -> every lease held, for the heartbeat
        self._running: dict[int, _Running] = {}  # slot thread id -> its running job
        self._grace_timer: threading.Timer | None = None
        self.processed = 0
        """Attempts started by the last ``run`` (a job retried twice counts three)."""
        self.outcomes: dict[str, int] = {}
        """What the last ``run``'s recorded attempts ended as: ``completed``, ``failed``,
        ``retrying`` (failed, to run again) and ``lost`` (lease lost, outcome discarded)."""
        self.stop_signal: int | None = None
        """The signal that stopped the last ``run_worker``-style run, if one did."""

    # -- the public surface -------------------------------------------------------------------

    def run(self, *, burst: bool = False, max_jobs: int | None = None) -> int:
        """Process jobs until ``stop`` (or, with ``burst``, until none is ready).
        Returns how many attempts ran (a job retried twice counts three); ``outcomes`` says
        how they ended."""
        if not self.spec.names:
            logger.warning("no workers registered: nothing to dispatch")
            return 0
        self._stopping.clear()
        self._finished.clear()
        self.processed = 0
        self.outcomes = dict.fromkeys(("completed", "failed", "retrying", "lost"), 0)
        self.stop_signal = None
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
        with self._lock:
            running = list(self._running.values())
        for run in running:
            run.abandoned = True
            job_id = run.lease.job.id
            logger.warning("job %s did not finish in time: releasing it", job_id)
            self._release(run.lease)
            if run.task is not None and run.loop is not None:
                run.loop.call_soon_threadsafe(run.task.cancel)
            else:
                run.interrupter.fire(ShutdownInterrupt("shutdown grace period is over"))

    def install_signal_handlers(self) -> Callable[[], None]:
        """SIGTERM/SIGINT stop gracefully; a second SIGINT abandons running jobs at once.
        Returns a function that restores the previous handlers.

        The handlers only note the signal and write one byte to a socket: a watcher thread
        acts on it. A handler runs between two bytecodes of the main thread, which may hold
        any lock at that moment (logging's, a backend's, threading's own), so taking one
        there could deadlock the process."""
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        received: list[int] = []

        def on_signal(signum: int, frame: FrameType | None) -> None:
            received.append(signum)
            with contextlib.suppress(OSError):  # full or closed: a wake-up is already due
                writer.send(b"!")

        def watch() -> None:
            while reader.recv(64):
                while received:
                    signum = received.pop(0)
                    self.stop_signal = self.stop_signal or signum
                    if self._stopping.is_set() and signum == signal.SIGINT:
                        self.abandon_running()
                    else:
                        self.stop()

        watcher = threading.Thread(target=watch, name="jobqueue-signals", daemon=True)
        watcher.start()
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            writer.close()  # the watcher reads end-of-file and returns
            watcher.join()
            reader.close()

        return restore

    # -- one slot: claim, run, record, repeat -------------------------------------------------

    def _slot(self, burst: bool, max_jobs: int | None) -> None:
        loop = asyncio.new_event_loop()
        ahead: deque[_Lease] = deque()  # claimed, not started yet
        finished: list[_Finished] = []  # ran, outcome not recorded yet
        # Woken for work that the next claim still did not get (max_active elsewhere)?
        capped, capped_delay = False, CAPPED_BACKOFF_MIN
        try:
            with Interrupter() as interrupter:
                while True:
                    if finished and (not ahead or _overdue(finished)):
                        ahead.extend(self._record(finished, self._wanted(len(ahead), max_jobs)))
                        finished = []
                    if not ahead:
                        want = self._wanted(0, max_jobs)
                        if want == 0:
                            break
                        ahead.extend(self._claim(want))
                        if not ahead:
                            if burst:
                                break
                            if capped:
                                # Ready work we cannot claim: its worker is at max_active in
                                # other slots or processes. Back off instead of spinning.
                                self._stopping.wait(capped_delay)
                                capped_delay = min(capped_delay * 2, CAPPED_BACKOFF_MAX)
                            capped = self._call_backend(
                                lambda: self.backend.wait_for_work(
                                    self.spec.names, self.idle_timeout
                                )
                            )
                            continue
                        capped, capped_delay = False, CAPPED_BACKOFF_MIN
                    lease = ahead.popleft()
                    if lease.lost:
                        self._forget(lease)
                        continue
                    if not self._count_one(max_jobs):
                        ahead.appendleft(lease)
                        break
                    done = self._execute(lease, interrupter, loop)
                    if done is not None:
                        finished.append(done)
        except BackendError as exc:
            logger.warning("slot stopping with the backend unreachable: %s", exc)
        finally:
            try:
                if finished:
                    self._record(finished, 0)
            finally:
                for lease in ahead:  # claimed ahead but never started: give them back
                    self._release(lease)
                loop.close()

    def _wanted(self, have: int, max_jobs: int | None) -> int:
        """How many more jobs this slot should claim now."""
        if self._stopping.is_set():
            return 0
        want = self.prefetch - have
        if max_jobs is not None:
            with self._lock:
                want = min(want, max_jobs - self.processed - have)
        return max(want, 0)

    def _count_one(self, max_jobs: int | None) -> bool:
        with self._lock:
            if self._stopping.is_set() or (max_jobs is not None and self.processed >= max_jobs):
                return False
            self.processed += 1
            return True

    def _claim(self, want: int) -> list[_Lease]:
        if want > 1 and self._batching:
            claims = self._call_backend(
                lambda: self.backend.claim_many(self.spec, want)  # type: ignore[attr-defined]
            )
        else:
            claim = self._call_backend(lambda: self.backend.claim(self.spec))
            claims = [claim] if claim is not None else []
        return self._hold(claims)

    # -- running one job ----------------------------------------------------------------------

    def _execute(
        self, lease: _Lease, interrupter: Interrupter, loop: asyncio.AbstractEventLoop
    ) -> _Finished | None:
        """Run the handler; return the outcome to record, or ``None`` if the job was given back
        (shutdown past the grace period)."""
        job = lease.job
        run = _Running(lease, interrupter)
        slot = threading.get_ident()
        with self._lock:
            self._running[slot] = run
        try:
            self._emit("jobqueue_job_started", job=job)
            try:
                result = self._run_handler(self.registry.get(job.name), run, loop)
                check_json(result)
                return _Finished(lease, Outcome(job.id, lease.claim.token, result=result))
            except ShutdownInterrupt:
                return None
            except BaseException as exc:  # the handler's fault is the job's, never ours
                if run.abandoned:
                    return None
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    self.stop()
                error = _describe_failure(exc, run)
                error = JobError(error.type, error.message, traceback.format_exc())
                will_retry = job.attempts_made < job.attempts
                retry_at = (
                    self.clock() + job.backoff.delay_for(job.attempts_made) if will_retry else None
                )
                logger.log(
                    logging.INFO if will_retry else logging.WARNING,
                    "job %s (%s) attempt %d/%d failed: %s",
                    job.id,
                    job.name,
                    job.attempts_made,
                    job.attempts,
                    error,
                )
                outcome = Outcome(job.id, lease.claim.token, error=error, retry_at=retry_at)
                return _Finished(lease, outcome)
        finally:
            with self._lock:
                self._running.pop(slot, None)

    def _run_handler(self, worker: Worker, run: _Running, loop: asyncio.AbstractEventLoop) -> JSON:
        running = RunningJob(run.lease.job, self.backend, run.lease.claim.token)
        timeout = run.lease.job.timeout
        if worker.is_async:
            return self._run_coroutine(worker.handle(running), timeout, run, loop)
        run.interrupter.arm(timeout, JobTimeoutError(f"timed out after {timeout}s"))
        try:
            result = worker.handle(running)
        finally:
            run.interrupter.disarm()
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            return self._run_coroutine(result, timeout, run, loop)
        return result

    @staticmethod
    def _run_coroutine(
        awaitable: Any, timeout: float | None, run: _Running, loop: asyncio.AbstractEventLoop
    ) -> JSON:
        task = loop.create_task(asyncio.wait_for(_await(awaitable), timeout))
        run.task, run.loop = task, loop
        return loop.run_until_complete(task)

    # -- recording outcomes -------------------------------------------------------------------

    def _record(self, finished: Sequence[_Finished], want: int) -> list[_Lease]:
        """Record outcomes and claim up to ``want`` more jobs, in one call where possible.
        Returns the newly claimed jobs."""
        next_spec = self.spec if want > 0 else None
        states: list[JobState | None]
        claims: list[Claim] = []
        claimed = False  # whether the recording call also looked for the next jobs
        try:
            if len(finished) == 1 and want <= 1:
                state, claims = self._record_one(finished[0], next_spec)
                states = [state]
                claimed = next_spec is not None and finished[0].outcome.error is None
            elif self._batching:
                outcomes = [done.outcome for done in finished]
                states, claims = self._call_backend(
                    lambda: self.backend.finish_many(  # type: ignore[attr-defined]
                        outcomes, next_spec, want
                    ),
                    give_up=lambda: all(self._lease_gone(done.lease) for done in finished),
                )
                claimed = next_spec is not None
            else:
                states = [self._record_one(done, None)[0] for done in finished]
        except (LeaseLostError, BackendError) as exc:
            logger.warning("outcomes of %d job(s) were not stored: %s", len(finished), exc)
            states = [None] * len(finished)
        for done, state in zip(finished, states, strict=True):
            self._forget(done.lease)
            self._announce(done, state)
        held = self._hold(claims)
        if not claimed and want > 0:
            held += self._claim(want)
        return held

    def _record_one(
        self, done: _Finished, next_spec: WorkSpec | None
    ) -> tuple[JobState | None, list[Claim]]:
        outcome, error = done.outcome, done.outcome.error
        try:
            if error is None:
                claim = self._call_backend(
                    lambda: self.backend.complete(
                        outcome.job_id, outcome.token, outcome.result, next_spec
                    ),
                    give_up=lambda: self._lease_gone(done.lease),
                )
                return JobState.COMPLETED, [claim] if claim is not None else []
            state = self._call_backend(
                lambda: self.backend.fail(outcome.job_id, outcome.token, error, outcome.retry_at),
                give_up=lambda: self._lease_gone(done.lease),
            )
            return state, []
        except (LeaseLostError, BackendError) as exc:
            logger.warning("outcome of job %s was not stored: %s", outcome.job_id, exc)
            return None, []

    def _announce(self, done: _Finished, state: JobState | None) -> None:
        """Tell the plugins what happened to a recorded job (nothing if the write was refused)."""
        job, outcome = done.lease.job, done.outcome
        if state is None:
            self._tally("lost")
            logger.warning("job %s: outcome discarded, its lease was lost", job.id)
            return
        self._tally(state.value if state in (JobState.COMPLETED, JobState.FAILED) else "retrying")
        job.state = state
        if outcome.error is None:
            job.result = outcome.result
            self._emit("jobqueue_job_completed", job=job)
        else:
            job.error = outcome.error
            self._emit(
                "jobqueue_job_failed",
                job=job,
                error=outcome.error,
                will_retry=outcome.retry_at is not None,
            )

    # -- leases: held, renewed by the heartbeat, released ------------------------------------

    def _hold(self, claims: Iterable[Claim]) -> list[_Lease]:
        leases = [_Lease(claim) for claim in claims]
        with self._lock:
            for lease in leases:
                self._leases[lease.claim.token] = lease
        return leases

    def _forget(self, lease: _Lease) -> None:
        with self._lock:
            self._leases.pop(lease.claim.token, None)

    def _release(self, lease: _Lease) -> None:
        self._forget(lease)
        try:
            self.backend.release(lease.job.id, lease.claim.token)
        except JobQueueError as exc:  # the lease will expire and the job be recovered
            logger.warning("could not release job %s: %s", lease.job.id, exc)

    def _lease_gone(self, lease: _Lease) -> bool:
        return lease.lost or self.clock() > lease.deadline

    def _heartbeat(self) -> None:
        while not self._finished.wait(self.lease_seconds / 3):
            with self._lock:
                leases = [lease for lease in self._leases.values() if not lease.lost]
            for lease in leases:
                job_id, token = lease.job.id, lease.claim.token
                try:
                    renewed = self.backend.renew(job_id, token, self.lease_seconds)
                except JobQueueError as exc:
                    logger.warning("could not renew the lease of job %s: %s", job_id, exc)
                    continue
                if renewed:
                    lease.deadline = self.clock() + self.lease_seconds
                elif token in self._leases:
                    lease.lost = True
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

    def _tally(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def _emit(self, hook_name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook; a plugin's exception is logged, never fatal."""
        hook = getattr(self.hooks, hook_name)
        if not hook.get_hookimpls():  # nobody listens: skip pluggy's call machinery per job
            return
        try:
            hook(**kwargs)
        except Exception:
            logger.exception("plugin hook %s raised", hook_name)


def _overdue(finished: Sequence[_Finished]) -> bool:
    return time.monotonic() - finished[0].since > FLUSH_AFTER


def _describe_failure(exc: BaseException, run: _Running) -> JobError:
    timeout = run.lease.job.timeout
    timed_out = timeout is not None and time.monotonic() - run.started >= timeout * 0.99
    if isinstance(exc, JobTimeoutError) or (isinstance(exc, TimeoutError) and timed_out):
        return JobError("JobTimeoutError", f"handler ran longer than its timeout of {timeout}s")
    if isinstance(exc, NotSerializableError):
        return JobError("NotSerializableError", f"handler returned a value that is not JSON: {exc}")
    return JobError.from_exception(exc)


async def _await(awaitable: Any) -> Any:
    return await awaitable
