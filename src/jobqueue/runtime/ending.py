"""How a run ends: a stop request and its grace period, slots that kept crashing, a handler's
exit request, and the process exit status that follows.

* **Exit statuses** (``Ending.exit_status``): 0 only for a requested stop (SIGTERM,
  ``--burst`` done, a handler's ``SystemExit(0)``); 130 after SIGINT; ``n`` after a handler's
  ``SystemExit(n)``; ``EXIT_CRASHED`` (70) when slots kept crashing.
* **A handler's SystemExit / KeyboardInterrupt** is a request to stop the process: the job's
  attempt fails (retried per its ``attempts``), the dispatcher stops gracefully, and ``run``
  raises it again once every slot has ended (``SystemExit(n)``: status ``n``;
  ``KeyboardInterrupt``: 130).
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from jobqueue.errors import DispatcherCrashedError
from jobqueue.job import Job

logger = logging.getLogger(__name__)

EXIT_CRASHED = 70
"""``jobqueue worker``'s exit status when slots kept crashing (``EX_SOFTWARE``)."""


class Ending:
    """Shared by every part of one dispatcher: whether it is stopping, and why."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.stopping = threading.Event()
        self.wakeup = threading.Event()  # the supervisor has something to look at
        self.grace_deadline = 0.0
        self.abandoning = False
        self.stop_signal: int | None = None
        self.crashed: DispatcherCrashedError | None = None
        self.handler_exit: BaseException | None = None
        self._lock = threading.Lock()

    def begin(self) -> None:
        """A run starts. A stop that came before it is honoured (and keeps its signal)."""
        if not self.stopping.is_set():
            self.stop_signal = None
        self.crashed = self.handler_exit = None

    def end(self) -> None:
        """This run consumed the stop; a later stop() is for a later run."""
        self.stopping.clear()
        self.abandoning = False

    def stop(self, grace_seconds: float | None = None) -> None:
        with self._lock:
            if self.stopping.is_set():
                return
            grace = self.grace_seconds if grace_seconds is None else grace_seconds
            self.grace_deadline = time.monotonic() + grace
            self.stopping.set()
        logger.info("stopping: no new claims, %.1fs grace for running jobs", grace)
        self.wakeup.set()

    def give_up(self, error: DispatcherCrashedError) -> None:
        """Slots keep crashing: stop gracefully; ``run`` raises ``error`` at the end."""
        logger.error("%s", error)
        with self._lock:
            self.crashed = self.crashed or error
        self.stop()

    def handler_exited(self, job: Job, exc: BaseException) -> None:
        """A handler raised ``SystemExit``/``KeyboardInterrupt`` (its attempt fails as usual):
        the first one is kept for ``run`` to raise again, and the dispatcher stops."""
        with self._lock:
            first = self.handler_exit is None
            if first:
                self.handler_exit = exc
        if first:
            logger.warning(
                "job %s: its handler raised %r: stopping the worker (exit status %d)",
                job.id,
                exc,
                self.exit_status(),
            )
        self.stop()

    def exit_status(self) -> int:
        """The status a process ending its last ``run`` should exit with."""
        if self.crashed is not None:
            return EXIT_CRASHED
        if self.handler_exit is not None:
            return exit_code(self.handler_exit)
        return 130 if self.stop_signal == signal.SIGINT else 0

    def raise_if_ended_badly(self) -> None:
        """At the end of ``run``: raise what ended it, unless that was a requested stop."""
        if self.crashed is not None:
            raise self.crashed
        if isinstance(self.handler_exit, KeyboardInterrupt):
            raise KeyboardInterrupt
        if isinstance(self.handler_exit, SystemExit):
            raise SystemExit(self.handler_exit.code)


def exit_code(exc: BaseException) -> int:
    """The process exit status a handler's ``SystemExit`` / ``KeyboardInterrupt`` asks for,
    as the interpreter would turn it into one."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    code = exc.code if isinstance(exc, SystemExit) else 1
    if code is None:
        return 0
    return code if isinstance(code, int) else 1
