"""The handlers running now, one per slot at most, and interrupting them.

Two things interrupt a running handler: shutdown, past its grace period
(``ShutdownInterrupt``), and a cancel request brought by the heartbeat (``JobCancelled``).
A synchronous handler gets the exception from the watchdog, in its own thread; an async one
has its task cancelled in its loop, remembering why. Each handler is interrupted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field

from jobqueue.job import JSON
from jobqueue.runtime.interrupt import (
    Guard,
    HandlerTimeout,
    JobCancelled,
    ShutdownInterrupt,
    Watchdog,
)
from jobqueue.runtime.leases import Lease

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Run:
    """The job a slot is running right now, and how to interrupt it (under the registry's
    lock: ``interrupted`` is set by shutdown, ``guard``/``task`` by the slot)."""

    lease: Lease
    interrupted: bool = False
    cancelling: bool = False
    guard: Guard | None = None
    task: asyncio.Task[JSON] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    cancelled_with: type[BaseException] | None = None
    started: float = field(default_factory=time.monotonic)

    def past_timeout(self) -> bool:
        timeout = self.lease.job.timeout
        return timeout is not None and time.monotonic() - self.started > timeout


class Runs:
    """The running handlers of one dispatcher, by slot thread."""

    def __init__(self, watchdog: Watchdog) -> None:
        self.watchdog = watchdog
        self._lock = threading.Lock()
        self._running: dict[int, Run] = {}  # slot thread id -> its run

    def start(self, lease: Lease) -> Run:
        """Register the run of ``lease``'s handler in this (slot) thread."""
        run = Run(lease)
        with self._lock:
            self._running[threading.get_ident()] = run
        return run

    def end(self, run: Run) -> None:
        with self._lock:
            self._running.pop(threading.get_ident(), None)

    def arm(self, run: Run, guard: Guard | None) -> bool:
        """Note (or clear) the watchdog guard of a sync handler's call. Returns whether
        the run was interrupted already: an interrupt that came first is not lost."""
        with self._lock:
            run.guard = guard
            return run.interrupted

    def attach(
        self, run: Run, task: asyncio.Task[JSON] | None, loop: asyncio.AbstractEventLoop
    ) -> bool:
        """Note (or clear) an async handler's task, as ``arm`` does a guard."""
        with self._lock:
            run.task, run.loop = task, loop
            return run.interrupted

    def timed_out(self) -> set[Lease]:
        """The leases of handlers running past their own timeout."""
        with self._lock:
            return {run.lease for run in self._running.values() if run.past_timeout()}

    def interrupt_all(self) -> None:
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
            self._raise_in(run, ShutdownInterrupt)

    def cancel(self, lease: Lease) -> None:
        """Interrupt the handler running ``lease``'s job with ``JobCancelled``; a job not
        started yet is never started (its lease is marked cancelled)."""
        with self._lock:
            run = next((r for r in self._running.values() if r.lease is lease), None)
            if run is None or run.interrupted or run.cancelling:
                return
            run.cancelling = True
        logger.info("job %s was cancelled: interrupting its handler", lease.job.id)
        self._raise_in(run, JobCancelled)

    def _raise_in(self, run: Run, why: type[BaseException]) -> None:
        with self._lock:
            guard, task, loop = run.guard, run.task, run.loop
        if guard is not None:
            self.watchdog.interrupt(guard, why)
        elif task is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # loop closed: the handler has ended
                loop.call_soon_threadsafe(cancel_task, run, task, why)


def cancel_task(
    run: Run, task: asyncio.Task[JSON], why: type[BaseException] = HandlerTimeout
) -> None:
    """Cancel an async handler's task (in its loop), remembering why."""
    if not task.done() and run.cancelled_with is None:
        run.cancelled_with = why
        task.cancel()
