"""The dispatcher: claim a job, run its handler, record the outcome, repeat.

Read this file top to bottom to see the whole engine.

* **One at a time.** A dispatcher runs ``concurrency`` slots (default 1), each in its own
  thread; a slot runs one job at a time, so by default a process never runs two handlers at
  once. The thread that called ``run`` supervises: it waits for the slots and carries out
  shutdown.
* **One round trip per job.** Recording a job's outcome and claiming the next are one backend
  call. A slot that holds several jobs claimed ahead records their outcomes in batches (still
  running them one at a time), for fewer than one round trip per job. How many it claims at
  once is its prefetch policy's (``jobqueue.prefetch``): by default adaptive, claiming ahead
  only short jobs from a deep backlog; ``prefetch=N`` fixes the depth.
* **Idle.** A slot with nothing to run blocks until work comes (at most ``idle_timeout``, so
  ``stop()`` is seen). A backend that can (``HandoffBackend``, e.g. Redis) hands the next
  job straight to the idle slot, already claimed under the slot's lease: submit to start is
  two hops. Others wake the slot, which then claims.
* **Heartbeat.** A heartbeat thread beats about every second (``jobqueue.heartbeat``): one
  backend call renews every lease the dispatcher holds, keeps its record among the live
  dispatchers, and brings back cancel requests; maintenance rides along. The beat waits for
  the call at most a sixth of the lease, so a hung call cannot stall the dispatcher. A job
  whose lease is lost belongs to someone else: its outcome is discarded
  (``jobqueue_lease_lost``, once, whether the heartbeat or the refused outcome tells). The
  jobs maintenance reports recovered from expired leases fire ``jobqueue_job_stalled``.
* **Cancel.** A running job whose cancel the heartbeat reports has its handler interrupted
  (``JobCancelled``; an async one is cancelled) and ends CANCELLED, not retried; a job claimed
  ahead is not started. A handler that finishes first keeps its result.
* **Policy lives here, once.** Timeouts and retries with backoff are decided here; backends
  only apply decisions atomically.
* **Timeouts and interrupts** come from one watchdog thread that raises an exception in the
  handler's thread (``jobqueue.interrupt``), never from SIGALRM: the host's own timers are
  left alone. It lands at the handler's next Python bytecode; a handler blocked in a long C
  call is interrupted when that call returns. Async handlers are cancelled in their loop.
* **Hooks.** ``jobqueue_job_started``, a ``jobqueue_run_job`` wrapper around each handler
  call, then ``jobqueue_job_completed`` / ``jobqueue_job_failed`` once the outcome is stored.
  A hook nobody implements costs nothing per job.
* **Shutdown.** ``stop()`` (the first SIGTERM/SIGINT under ``install_signal_handlers``)
  stops claiming; running jobs get ``grace_seconds`` to finish, then their handlers are
  interrupted. A job goes back to waiting (attempt not counted) only once its handler has
  stopped, so no job runs twice at once because of a shutdown. A process that installed our
  signal handlers does not wait for ever on a handler stuck in a C call: after a short wait
  it gives the jobs of such handlers back as its very last act and exits at once
  (``os._exit``); the second SIGINT does the same right away, within 2 seconds.
* **Never dies of a job.** A handler's exception, a plugin's, or a lost connection is logged
  and handled; only ``stop()`` ends the loop (or an empty queue with ``burst``).
* **Never dies quietly** (``jobqueue.slot_supervisor``). A slot that crashes anyway (a bug)
  is logged with its traceback and restarted, boundedly: past the cap ``run`` raises
  ``DispatcherCrashedError``. A handler's ``SystemExit``/``KeyboardInterrupt`` fails its
  attempt, stops the dispatcher gracefully, and ``run`` raises it again at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import random
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, NoReturn, TypeVar, cast

from jobqueue import lifecycle
from jobqueue.backend import (
    Backend,
    BatchBackend,
    Claim,
    Clock,
    DispatcherInfo,
    HandoffBackend,
    LeaseStatus,
    Outcome,
    WorkSpec,
)
from jobqueue.errors import (
    BackendError,
    DispatcherCrashedError,
    InvalidSettingError,
    JobQueueError,
    LeaseLostError,
    NotSerializableError,
)
from jobqueue.heartbeat import Heartbeat
from jobqueue.interrupt import Guard, HandlerTimeout, JobCancelled, ShutdownInterrupt, Watchdog
from jobqueue.job import JSON, Job, JobError, JobState, check_json
from jobqueue.limits import MAX_LEASE_SECONDS, validate_seconds
from jobqueue.prefetch import PrefetchPolicy, make_policy
from jobqueue.registry import Registry
from jobqueue.running import RunningJob
from jobqueue.slot_supervisor import (
    enable_faulthandler,
    exception_text,
    exit_status,
    fail_attempt,
    handler_exited,
    raise_if_ended_badly,
    supervise_slot,
)
from jobqueue.worker import Worker

logger = logging.getLogger("jobqueue.dispatcher")

T = TypeVar("T")

FLUSH_AFTER = 0.05
"""With prefetch, outcomes wait at most about this long (seconds) before being recorded."""

CAPPED_BACKOFF_MIN, CAPPED_BACKOFF_MAX = 0.002, 0.1
"""Back-off (seconds) of a slot whose ready work is held back by ``max_active`` elsewhere."""

OUTAGE_BACKOFF_MIN, OUTAGE_BACKOFF_MAX = 0.05, 5.0
"""Back-off (seconds) between retries of a backend call while the backend is unreachable."""

ABANDON_WAIT = 1.0
"""After the second SIGINT, how long (seconds) interrupted handlers get to stop before the
process gives their jobs back and exits: with ``EXIT_RELEASE_WAIT``, well within 2 s."""

STOP_WAIT_MAX = 5.0
"""After the grace period, interrupted handlers get ``grace_seconds`` (at most this) to stop
before a process that installed our signal handlers gives their jobs back and exits."""

SUPERVISE_TICK = 1.0
"""The supervisor wakes at least this often (seconds), so that a signal delivered to another
thread is still handled promptly in the main thread."""

EXIT_RELEASE_WAIT = 0.5
"""How long an exiting process waits for the backend to take its jobs back; past it, their
leases expire and the jobs are recovered."""


@dataclass(eq=False)
class _Lease:
    """A job this dispatcher holds: claimed ahead, running, or finished but not recorded."""

    claim: Claim
    deadline: float = field(init=False)
    lost: bool = False
    cancelled: bool = False  # the heartbeat brought a cancel request for it
    started: bool = False  # its handler was called
    owner: int = field(default_factory=threading.get_ident)  # the slot thread holding it

    def __post_init__(self) -> None:
        self.deadline = self.claim.lease_expires_at

    @property
    def job(self) -> Job:
        return self.claim.job


@dataclass(eq=False)
class _Running:
    """The job a slot is running right now, and how to interrupt it (under the dispatcher's
    lock: ``interrupted`` is set by shutdown, ``guard``/``task`` by the slot)."""

    lease: _Lease
    interrupted: bool = False
    cancelling: bool = False
    guard: Guard | None = None
    task: asyncio.Task[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    cancelled_with: type[BaseException] | None = None
    started: float = field(default_factory=time.monotonic)

    def past_timeout(self) -> bool:
        timeout = self.lease.job.timeout
        return timeout is not None and time.monotonic() - self.started > timeout


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
        prefetch: int | None = None,
        lease_seconds: float = 30.0,
        grace_seconds: float = 30.0,
        idle_timeout: float = 1.0,
        clock: Clock = time.time,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidSettingError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if prefetch is not None and (
            isinstance(prefetch, bool) or not isinstance(prefetch, int) or not 1 <= prefetch <= 1000
        ):
            raise InvalidSettingError(
                f"prefetch must be None (adaptive) or an int from 1 to 1000, got {prefetch!r}"
            )
        lease_seconds = validate_seconds("lease_seconds", lease_seconds, MAX_LEASE_SECONDS)
        self.backend = backend
        self.registry = registry
        self.hooks = hooks
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.new_prefetch_policy: Callable[[], PrefetchPolicy] = lambda: make_policy(prefetch)
        """Makes each slot's own prefetch policy when the slot starts."""
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        # An idle slot blocks in the backend's wait_for_work (woken by submits) for at most
        # this long, so that stop() is honoured within it.
        self.idle_timeout = idle_timeout
        self.clock = clock
        chosen = tuple(names) if names is not None else registry.names()
        self.id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        """This dispatcher's id among the live ones (``jobqueue workers``)."""
        self.spec = WorkSpec(
            names=chosen,
            lease_seconds=lease_seconds,
            max_active={
                w.name: w.max_active for w in registry if w.max_active and w.name in chosen
            },
            dispatcher=self.id,
        )
        self._batching = isinstance(backend, BatchBackend)
        self._handoff = isinstance(backend, HandoffBackend)
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._wakeup = threading.Event()  # the supervisor has something to look at
        self._lock = threading.Lock()
        self._leases: dict[str, _Lease] = {}  # token -> every lease held, for the heartbeat
        self._running: dict[int, _Running] = {}  # slot thread id -> its running job
        self._slots_left = 0
        self._grace_deadline = 0.0
        self._abandoning = False
        self._owns_process = False  # install_signal_handlers: may exit the process itself
        self._watchdog = Watchdog()
        self.processed = 0
        """Attempts started by the last ``run`` (a job retried twice counts three)."""
        self.outcomes: dict[str, int] = {}
        """What the last ``run``'s recorded attempts ended as: ``completed``, ``failed``,
        ``retrying`` (failed, to run again), ``cancelled`` and ``lost`` (lease lost,
        outcome discarded)."""
        self.stop_signal: int | None = None
        """The signal that stopped the last ``run_worker``-style run, if one did."""
        self.crashed: DispatcherCrashedError | None = None
        """Set when slots kept crashing and the last ``run`` gave up (it raises this)."""
        self.handler_exit: BaseException | None = None
        """The first ``SystemExit``/``KeyboardInterrupt`` a handler raised in the last
        ``run`` (which stopped and raises it again)."""

    # -- the public surface -------------------------------------------------------------------

    def run(self, *, burst: bool = False, max_jobs: int | None = None) -> int:
        """Process jobs until ``stop`` (or, with ``burst``, until none is ready).
        Returns how many attempts ran (a job retried twice counts three); ``outcomes`` says
        how they ended. A ``stop`` that came before ``run`` is honoured: nothing is claimed.
        Raises ``DispatcherCrashedError`` if slots kept crashing, and a handler's
        ``SystemExit``/``KeyboardInterrupt`` again once every slot has ended."""
        if not self.spec.names:
            logger.warning("no workers registered: nothing to dispatch")
            return 0
        if not self._stopping.is_set():  # else stopped before we began: keep its signal
            self.stop_signal = None
        self._finished.clear()
        self.processed = 0
        self.crashed = self.handler_exit = None
        self.outcomes = dict.fromkeys(("completed", "failed", "retrying", "cancelled", "lost"), 0)
        self._watchdog.start()
        slots = [
            threading.Thread(
                target=self._slot, args=(burst, max_jobs), name=f"jobqueue-slot-{n}", daemon=True
            )
            for n in range(1, self.concurrency + 1)
        ]
        self._slots_left = len(slots)
        # The heartbeat starts the slots: Thread.start waits, and a KeyboardInterrupt landing
        # in that wait (a job may press Ctrl-C at once) would leave us not knowing whether the
        # slot started. This thread only ever waits in _supervise, which handles it.
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(slots,), name="jobqueue-heartbeat", daemon=True
        )
        try:
            heartbeat.start()
            self._supervise_until_done()
            for thread in slots:
                thread.join()
        finally:
            self._finished.set()
            with contextlib.suppress(RuntimeError):  # interrupted before it started
                heartbeat.join()
            self._watchdog.close()
            # This run consumed the stop; a later stop() is for a later run.
            self._stopping.clear()
            self._abandoning = False
        raise_if_ended_badly(self)
        return self.processed

    def stop(self, grace_seconds: float | None = None) -> None:
        """Stop claiming; give running jobs ``grace_seconds`` to finish, then interrupt them;
        each goes back to waiting once its handler stopped. Safe to call from any thread."""
        with self._lock:
            if self._stopping.is_set():
                return
            grace = self.grace_seconds if grace_seconds is None else grace_seconds
            self._grace_deadline = time.monotonic() + grace
            self._stopping.set()
        logger.info("stopping: no new claims, %.1fs grace for running jobs", grace)
        self._wakeup.set()

    def abandon_running(self) -> None:
        """Interrupt every running handler now (the second SIGINT); each job goes back to
        waiting once its handler stopped. In a process that installed our signal handlers,
        handlers still running after ``ABANDON_WAIT`` have their jobs given back as the
        process's last act, and it exits."""
        self.stop()
        self._abandoning = True
        self._interrupt_running()
        self._wakeup.set()

    def install_signal_handlers(self) -> Callable[[], None]:
        """SIGTERM/SIGINT stop gracefully; a second SIGINT abandons running jobs at once and
        exits the process. Returns a function that restores the previous handlers.

        The handlers only note the signal and write one byte to a socket: a watcher thread
        acts on it. A handler runs between two bytecodes of the main thread, which may hold
        any lock at that moment (logging's, a backend's, threading's own), so taking one
        there could deadlock the process."""
        enable_faulthandler()  # this process runs handlers: a segfault leaves a traceback
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
        self._owns_process = True

        def restore() -> None:
            self._owns_process = False
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            writer.close()  # the watcher reads end-of-file and returns
            watcher.join()
            reader.close()

        return restore

    # -- shutdown: the supervisor -------------------------------------------------------------

    def _supervise_until_done(self) -> None:
        """Without our signal handlers, Ctrl-C raises KeyboardInterrupt here (handlers run in
        slot threads): the first one stops gracefully, the second interrupts running jobs, a
        third gives up on them (their leases expire and they are recovered)."""
        presses = 0
        while True:
            try:
                self._supervise()
                return
            except KeyboardInterrupt:
                presses += 1
                self.stop_signal = self.stop_signal or signal.SIGINT
                if presses == 1:
                    self.stop()
                elif presses == 2:
                    self.abandon_running()
                else:
                    raise

    def _supervise(self) -> None:
        """Wait for the slots to end; past the grace period interrupt running handlers and,
        in a process we own, exit once interrupted handlers had their time to stop."""
        interrupted_at: float | None = None  # when running handlers were interrupted
        abandoned = False  # whether by the second SIGINT (a shorter wait before exiting)
        while True:
            self._wakeup.clear()  # before looking, so that no wake-up is missed
            with self._lock:
                if self._slots_left == 0:
                    return
            now = time.monotonic()
            timeout: float | None = None
            if self._abandoning and not abandoned:
                interrupted_at, abandoned = now, True  # abandon_running interrupted them
            elif self._stopping.is_set() and interrupted_at is None:
                if now >= self._grace_deadline:
                    interrupted_at = now
                else:
                    timeout = self._grace_deadline - now
            if interrupted_at is not None:
                self._interrupt_running()  # again: a job may have started meanwhile
                if self._owns_process:
                    wait = ABANDON_WAIT if abandoned else min(self.grace_seconds, STOP_WAIT_MAX)
                    left = interrupted_at + wait - now
                    if left <= 0:
                        self._exit_process()
                    timeout = left
            # Bounded: Python runs signal handlers only in the main thread, once it wakes.
            self._wakeup.wait(SUPERVISE_TICK if timeout is None else min(timeout, SUPERVISE_TICK))

    def _interrupt_running(self) -> None:
        """Raise ``ShutdownInterrupt`` in every running handler (once each). The job is not
        released here: its slot does that once the handler has stopped."""
        with self._lock:
            runs = [run for run in self._running.values() if not run.interrupted]
            for run in runs:
                run.interrupted = True
        for run in runs:
            logger.warning(
                "job %s did not finish in time: interrupting it, it goes back to waiting "
                "once its handler stopped",
                run.lease.job.id,
            )
            self._interrupt(run)

    def _interrupt(self, run: _Running) -> None:
        # The slot sets guard/task under the lock and checks `interrupted` when it does, so
        # an interrupt that comes before the handler started is not lost.
        with self._lock:
            guard, task, loop = run.guard, run.task, run.loop
        if guard is not None:
            self._watchdog.interrupt(guard, ShutdownInterrupt)
        elif task is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # loop closed: the handler has ended
                loop.call_soon_threadsafe(_cancel, run, task, ShutdownInterrupt)

    def _exit_process(self) -> NoReturn:
        """Give back every job still held and exit at once: the very last act of the process,
        after which no code of ours runs a handler. Jobs a stuck slot had claimed ahead or run
        without recording yet (``prefetch``) go back too, and run again: at-least-once."""
        with self._lock:
            leases = list(self._leases.values())
            # Stuck past their own timeout (in a C call): their attempt fails, or they would
            # come back and hang again after every restart.
            timed_out = {r.lease for r in self._running.values() if r.past_timeout()}
        status = exit_status(self)
        logger.warning(
            "exiting with %d job(s) whose handler did not stop: giving them back to waiting",
            len(leases),
        )

        def release_all() -> None:
            for lease in leases:
                if lease in timed_out:
                    fail_attempt(self, lease, _describe_failure(HandlerTimeout(), lease.job))
                else:
                    self._release(lease)

        # In a thread with a bound: an unreachable backend must not keep the process alive.
        releaser = threading.Thread(target=release_all, name="jobqueue-exit", daemon=True)
        releaser.start()
        releaser.join(EXIT_RELEASE_WAIT)
        logging.shutdown()  # os._exit skips it: flush the log lines first
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)

    # -- one slot: claim, run, record, repeat -------------------------------------------------

    def _slot(self, burst: bool, max_jobs: int | None) -> None:
        try:
            supervise_slot(self, lambda: self._run_slot(burst, max_jobs))
        finally:
            with self._lock:
                self._slots_left -= 1
            self._wakeup.set()

    def _run_slot(self, burst: bool, max_jobs: int | None) -> None:
        loop = asyncio.new_event_loop()
        policy = self.new_prefetch_policy()
        ahead: deque[_Lease] = deque()  # claimed, not started yet
        finished: list[_Finished] = []  # ran, outcome not recorded yet
        # Woken for work that the next claim still did not get (max_active elsewhere)?
        capped, capped_delay = False, CAPPED_BACKOFF_MIN
        try:
            while True:
                if finished and (not ahead or _overdue(finished)):
                    want = self._wanted(policy.depth(), len(ahead), max_jobs)
                    claimed = self._record(finished, want)
                    policy.claimed(want, (lease.job.name for lease in claimed))
                    ahead.extend(claimed)
                    finished = []
                if not ahead:
                    want = self._wanted(policy.depth(), 0, max_jobs)
                    if want == 0:
                        break
                    ahead.extend(self._claim(want))
                    policy.claimed(want, (lease.job.name for lease in ahead))
                    if not ahead:
                        if burst:
                            break
                        if capped:
                            # Ready work we cannot claim: its worker is at max_active in
                            # other slots or processes. Back off instead of spinning.
                            self._stopping.wait(capped_delay)
                            capped_delay = min(capped_delay * 2, CAPPED_BACKOFF_MAX)
                        waited = self._wait_idle()
                        if isinstance(waited, Claim):
                            ahead.extend(self._hold([waited]))
                            policy.claimed(1, [waited.job.name])
                            waited = False
                        capped = waited
                        continue
                    capped, capped_delay = False, CAPPED_BACKOFF_MIN
                lease = ahead.popleft()
                if lease.lost:
                    self._forget(lease)
                    continue
                if lease.cancelled:  # cancelled while claimed ahead: never started
                    self._finish_cancelled(lease, None)
                    continue
                if not self._count_one(max_jobs):
                    ahead.appendleft(lease)
                    break
                started = time.monotonic()
                done = self._execute(lease, loop)
                policy.ran(lease.job.name, time.monotonic() - started)
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

    def _wanted(self, depth: int, have: int, max_jobs: int | None) -> int:
        """How many more jobs this slot should claim now, holding ``have`` of ``depth``."""
        if self._stopping.is_set():
            return 0
        want = depth - have
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

    def _wait_idle(self) -> Claim | bool:
        """Block until work comes (at most ``idle_timeout``): a job handed over by a backend
        that can (``HandoffBackend``), else ``True`` when woken for work to claim."""
        if self._handoff:
            backend = cast(HandoffBackend, self.backend)
            return self._call_backend(lambda: backend.wait_for_claim(self.spec, self.idle_timeout))
        return self._call_backend(
            lambda: self.backend.wait_for_work(self.spec.names, self.idle_timeout)
        )

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

    def _execute(self, lease: _Lease, loop: asyncio.AbstractEventLoop) -> _Finished | None:
        """Run the handler; return the outcome to record, or ``None`` if the job was given back
        (interrupted by shutdown: released here, now that its handler has stopped)."""
        job = lease.job
        run = _Running(lease)
        slot = threading.get_ident()
        with self._lock:
            self._running[slot] = run
        lease.started = True
        try:
            self._emit("jobqueue_job_started", job=job)
            try:
                result = self._run_hooked(self.registry.get(job.name), run, loop)
                check_json(result)
                return _Finished(lease, Outcome(job.id, lease.claim.token, result=result))
            except BaseException as exc:  # the handler's fault is the job's, never ours
                if isinstance(exc, JobCancelled) and not run.interrupted:
                    logger.info("job %s: handler stopped after its cancel", job.id)
                    self._finish_cancelled(lease, None)
                    return None
                # A handler past its timeout fails that attempt even during a shutdown:
                # given back, it would hang again after every restart.
                if run.interrupted and (isinstance(exc, HandlerTimeout) or run.past_timeout()):
                    exc = HandlerTimeout()
                elif run.interrupted:
                    # Whatever the handler made of our interrupt, it has stopped now: only
                    # now may the job go back to waiting, for another dispatcher to run.
                    logger.warning("job %s: handler stopped, releasing it", job.id)
                    self._release(lease)
                    return None
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    handler_exited(self, job, exc)
                error = _describe_failure(exc, job)
                error = JobError(error.type, error.message, traceback.format_exc())
                retry_at = lifecycle.retry_at(job, self.clock())  # None: no attempt left
                will_retry = retry_at is not None
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

    def _run_hooked(self, worker: Worker, run: _Running, loop: asyncio.AbstractEventLoop) -> JSON:
        """The handler call, inside the plugins' ``jobqueue_run_job`` wrappers if any."""
        hook = self.hooks.jobqueue_run_job
        if not hook.get_hookimpls():  # nobody listens: skip pluggy's call machinery per job
            return self._run_handler(worker, run, loop)

        def handler_call(job: Job) -> JSON:
            return self._run_handler(worker, run, loop)

        result: JSON = hook.call_extra([handler_call], {"job": run.lease.job})
        return result

    def _run_handler(self, worker: Worker, run: _Running, loop: asyncio.AbstractEventLoop) -> JSON:
        running = RunningJob(run.lease.job, self.backend, run.lease.claim.token)
        timeout = run.lease.job.timeout
        if worker.is_async:
            return self._run_coroutine(worker.handle(running), timeout, run, loop)
        guard = self._watchdog.arm(timeout)
        try:
            with self._lock:
                run.guard = guard
                interrupted = run.interrupted
            if interrupted:  # shutdown came between claim and call: do not start it
                raise ShutdownInterrupt
            result = worker.handle(running)
        finally:
            # An exception fired but not landed yet is cancelled here; one that lands while
            # we get here is raised within this try, so it never reaches dispatcher code.
            self._watchdog.disarm(guard)
            with self._lock:
                run.guard = None
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            return self._run_coroutine(result, timeout, run, loop)
        return result

    def _run_coroutine(
        self,
        awaitable: Any,
        timeout: float | None,
        run: _Running,
        loop: asyncio.AbstractEventLoop,
    ) -> JSON:
        task = loop.create_task(_await(awaitable))
        with self._lock:
            run.task, run.loop = task, loop
            interrupted = run.interrupted
        if interrupted:
            _cancel(run, task, ShutdownInterrupt)
        # Our own deadline rather than asyncio.wait_for: a TimeoutError the handler raises
        # itself must not be mistaken for ours.
        timer = None if timeout is None else loop.call_later(timeout, _cancel, run, task)
        try:
            return loop.run_until_complete(task)
        except asyncio.CancelledError:
            if run.cancelled_with is not None:
                raise run.cancelled_with from None
            raise
        finally:
            if timer is not None:
                timer.cancel()
            with self._lock:
                run.task = None

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
            self._lease_lost(done.lease, held=False)
            return
        finished = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)
        self._tally(state.value if state in finished else "retrying")
        job.state = state
        if state in finished:
            # The backend stamped its own time; ours is within a round trip of it.
            job.finished_at = self.clock()
        if state is JobState.CANCELLED:  # it failed after a cancel: not retried
            job.error = outcome.error
            self._emit("jobqueue_job_cancelled", job=job)
        elif outcome.error is None:
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
            released = self.backend.release(lease.job.id, lease.claim.token)
        except JobQueueError as exc:  # the lease will expire and the job be recovered
            logger.warning("could not release job %s: %s", lease.job.id, exc)
            return
        if not released:
            self._lease_lost(lease, held=False)

    def _lease_gone(self, lease: _Lease) -> bool:
        return lease.lost or self.clock() > lease.deadline

    def _heartbeat(self, slots: Sequence[threading.Thread]) -> None:
        """Register this dispatcher and start the slots; then beat until the run ends, and
        remove the record on the way out."""
        info = DispatcherInfo(
            id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            names=self.spec.names,
            concurrency=self.concurrency,
            started_at=self.clock(),
        )
        beats = Heartbeat(self.backend, info, self.lease_seconds, self._stalled)
        try:
            self._beat(beats)  # registered before the first claim
            for thread in slots:
                if self._finished.is_set():
                    break
                thread.start()
            while not self._finished.wait(beats.every):
                self._beat(beats)
            beats.leave()
        finally:
            beats.close()

    def _beat(self, beats: Heartbeat) -> None:
        with self._lock:
            held = {lease.claim.token: lease for lease in self._leases.values() if not lease.lost}
        answers = beats.beat([(lease.job.id, token) for token, lease in held.items()])
        for (_, token), status in answers or ():
            lease = held.get(token)
            if lease is None:
                continue
            if status is LeaseStatus.LOST:
                self._lease_lost(lease)
                continue
            lease.deadline = self.clock() + self.lease_seconds
            if status is LeaseStatus.CANCEL and not lease.cancelled:
                self._deliver_cancel(lease)

    def _deliver_cancel(self, lease: _Lease) -> None:
        """Interrupt the handler running the lease's job; a job not started yet is marked
        and never starts."""
        lease.cancelled = True
        with self._lock:
            run = next((r for r in self._running.values() if r.lease is lease), None)
            if run is None or run.interrupted or run.cancelling:
                return
            run.cancelling = True
            guard, task, loop = run.guard, run.task, run.loop
        logger.info("job %s was cancelled: interrupting its handler", lease.job.id)
        if guard is not None:
            self._watchdog.interrupt(guard, JobCancelled)
        elif task is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # loop closed: the handler has ended
                loop.call_soon_threadsafe(_cancel, run, task, JobCancelled)

    def _finish_cancelled(self, lease: _Lease, error: JobError | None) -> None:
        self._forget(lease)
        try:
            done = self.backend.finish_cancelled(lease.job.id, lease.claim.token, error)
        except JobQueueError as exc:  # the lease expires; recovery ends it cancelled
            logger.warning("could not record the cancel of job %s: %s", lease.job.id, exc)
            return
        if not done:
            self._tally("lost")
            self._lease_lost(lease, held=False)
            return
        self._tally("cancelled")
        job = lease.job
        job.state, job.finished_at = JobState.CANCELLED, self.clock()
        self._emit("jobqueue_job_cancelled", job=job)

    def _lease_lost(self, lease: _Lease, *, held: bool = True) -> None:
        """Mark the lease lost and fire ``jobqueue_lease_lost`` -- once per lease, whether
        the heartbeat noticed or an outcome was refused. ``held``: only while the lease is
        still held (a heartbeat's answer may come after the outcome was recorded)."""
        with self._lock:
            if lease.lost or (held and lease.claim.token not in self._leases):
                return
            lease.lost = True
        logger.warning(
            "lost the lease of job %s: another dispatcher may run it; "
            "this attempt's outcome will be discarded",
            lease.job.id,
        )
        self._emit("jobqueue_lease_lost", job=lease.job)

    def _stalled(self, jobs: list[Job]) -> None:
        """Jobs this process's maintenance reports recovered from an expired lease."""
        for job in jobs:
            logger.info("job %s stalled (stall %d): its lease expired", job.id, job.stalls)
            self._emit("jobqueue_job_stalled", job=job)

    # -- helpers ------------------------------------------------------------------------------

    def _call_backend(
        self, operation: Callable[[], T], give_up: Callable[[], bool] | None = None
    ) -> T:
        """Run a backend call, riding out outages with capped exponential back-off until
        ``give_up()`` (default: the dispatcher is stopping) says to re-raise the error."""
        until_stop = give_up is None  # then stop() ends the back-off: the retry re-raises
        give_up = give_up or self._stopping.is_set
        delay = OUTAGE_BACKOFF_MIN
        while True:
            try:
                return operation()
            except LeaseLostError:
                raise
            except BackendError as exc:
                if give_up():
                    raise
                logger.warning("backend error, retrying in about %.2fs: %s", delay, exc)
            pause = delay * random.uniform(0.5, 1.0)
            if until_stop or not self._stopping.is_set():
                self._stopping.wait(pause)  # stop() ends the back-off at once
            else:
                time.sleep(pause)  # stopping, yet told to retry (an outcome to save)
            delay = min(delay * 2, OUTAGE_BACKOFF_MAX)

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


def _cancel(
    run: _Running, task: asyncio.Task[Any], why: type[BaseException] = HandlerTimeout
) -> None:
    """Cancel an async handler's task (in its loop), remembering why."""
    if not task.done() and run.cancelled_with is None:
        run.cancelled_with = why
        task.cancel()


def _overdue(finished: Sequence[_Finished]) -> bool:
    return time.monotonic() - finished[0].since > FLUSH_AFTER


def _describe_failure(exc: BaseException, job: Job) -> JobError:
    # Only the watchdog's own exception is a timeout: a TimeoutError the handler raised
    # (an upstream API's) is the handler's error, however close to the deadline.
    if isinstance(exc, HandlerTimeout):
        return JobError(
            "JobTimeoutError",
            f"handler ran longer than its timeout of {job.timeout}s; it was interrupted at "
            "its next Python instruction (a handler blocked in one long C call, such as "
            "time.sleep or a socket read, stops only when that call returns)",
        )
    if isinstance(exc, NotSerializableError):
        return JobError("NotSerializableError", f"handler returned a value that is not JSON: {exc}")
    return JobError(type(exc).__name__, exception_text(exc))


async def _await(awaitable: Any) -> Any:
    return await awaitable
