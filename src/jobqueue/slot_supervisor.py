"""A worker never dies quietly: slot crashes, a handler's exit request, exit statuses.

* **Slot crashes.** A slot ends only when the dispatcher stops. An unexpected exception in
  one (a bug in jobqueue, a plugin or a backend: a handler's own errors fail its job and
  never get here) is logged with its traceback; the jobs the slot held are dealt with (one
  whose handler had started fails that attempt, retried per its ``attempts``, so a job that
  crashes its slot every time ends by the attempts rule; the others go back to waiting), and
  the slot restarts after a back-off (``SLOT_RESTART_MIN`` doubling to ``SLOT_RESTART_MAX``).
  A slot that crashes ``SLOT_CRASH_LIMIT`` times within ``SLOT_CRASH_WINDOW`` seconds gives
  up: the dispatcher stops gracefully and ``run`` raises ``DispatcherCrashedError``
  (``jobqueue worker`` exits with status ``EXIT_CRASHED``).
* **A handler's SystemExit / KeyboardInterrupt** is a request to stop the process: the
  job's attempt fails (retried per its ``attempts``), the dispatcher stops gracefully, and
  ``run`` raises it again once every slot has ended (``SystemExit(n)``: status ``n``;
  ``KeyboardInterrupt``: 130).
* **Exit statuses** (``exit_status``): 0 only for a requested stop (SIGTERM, ``--burst``
  done, a handler's ``SystemExit(0)``); 130 after SIGINT; ``n`` after a handler's
  ``SystemExit(n)``; 70 when slots kept crashing.
* **faulthandler** is on in worker processes, so that a handler that crashes the
  interpreter (a segfault in a C extension) leaves its thread's traceback on stderr.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobqueue.errors import DispatcherCrashedError, JobQueueError
from jobqueue.job import Job, JobError

if TYPE_CHECKING:
    from jobqueue.dispatcher import Dispatcher, _Lease

logger = logging.getLogger("jobqueue.dispatcher")

SLOT_RESTART_MIN, SLOT_RESTART_MAX = 0.1, 5.0
"""Back-off (seconds) before a crashed slot restarts: doubles with each recent crash."""

SLOT_CRASH_LIMIT, SLOT_CRASH_WINDOW = 5, 60.0
"""A slot that crashes this many times within this many seconds gives up."""

EXIT_CRASHED = 70
"""``jobqueue worker``'s exit status when slots kept crashing (``EX_SOFTWARE``)."""


def enable_faulthandler() -> None:
    """Dump every thread's traceback to stderr on a fatal signal (SIGSEGV, SIGABRT, ...);
    left as it is when already on (``python -X faulthandler``, pytest)."""
    if faulthandler.is_enabled():
        return
    # A stderr without a file descriptor (replaced by the host) cannot take the dump.
    with contextlib.suppress(AttributeError, OSError, ValueError, RuntimeError):
        faulthandler.enable(file=sys.stderr, all_threads=True)


def exit_code(exc: BaseException) -> int:
    """The process exit status a handler's ``SystemExit`` / ``KeyboardInterrupt`` asks for,
    as the interpreter would turn it into one."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    code = exc.code if isinstance(exc, SystemExit) else 1
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def exit_status(dispatcher: Dispatcher) -> int:
    """The status a process ending its last ``run`` should exit with (see the docstring)."""
    if dispatcher.crashed is not None:
        return EXIT_CRASHED
    if dispatcher.handler_exit is not None:
        return exit_code(dispatcher.handler_exit)
    return 130 if dispatcher.stop_signal == signal.SIGINT else 0


def raise_if_ended_badly(dispatcher: Dispatcher) -> None:
    """At the end of ``run``: raise what ended it, unless that was a requested stop."""
    if dispatcher.crashed is not None:
        raise dispatcher.crashed
    handler_exit = dispatcher.handler_exit
    if isinstance(handler_exit, KeyboardInterrupt):
        raise KeyboardInterrupt
    if isinstance(handler_exit, SystemExit):
        raise SystemExit(handler_exit.code)


def supervise_slot(dispatcher: Dispatcher, body: Callable[[], None]) -> None:
    """Run a slot's ``body`` in this thread, restarting it after a crash (see the module
    docstring) until it returns, the dispatcher stops, or it crashed too often."""
    crashes: deque[float] = deque()
    while True:
        try:
            body()
            return
        except BaseException as exc:
            now = time.monotonic()
            crashes.append(now)
            while crashes[0] < now - SLOT_CRASH_WINDOW:
                crashes.popleft()
            logger.error(
                "dispatcher slot %s crashed (%d time(s) in %.0fs)",
                threading.current_thread().name,
                len(crashes),
                SLOT_CRASH_WINDOW,
                exc_info=exc,
            )
            settle_slot_leases(dispatcher, exc)
            if dispatcher._stopping.is_set():
                return
            if len(crashes) >= SLOT_CRASH_LIMIT:
                give_up(
                    dispatcher,
                    DispatcherCrashedError(
                        f"a dispatcher slot crashed {len(crashes)} times within "
                        f"{SLOT_CRASH_WINDOW:.0f}s, last with {type(exc).__name__}: "
                        f"{exception_text(exc)}; the worker stopped (tracebacks in the log)"
                    ),
                )
                return
            delay = min(SLOT_RESTART_MIN * 2 ** (len(crashes) - 1), SLOT_RESTART_MAX)
            logger.warning("restarting the slot in %.1fs", delay)
            if dispatcher._stopping.wait(delay):  # stop() ends the back-off at once
                return


def give_up(dispatcher: Dispatcher, error: DispatcherCrashedError) -> None:
    """Slots keep crashing: stop gracefully; ``run`` raises ``error`` at the end."""
    logger.error("%s", error)
    with dispatcher._lock:
        dispatcher.crashed = dispatcher.crashed or error
    dispatcher.stop()


def handler_exited(dispatcher: Dispatcher, job: Job, exc: BaseException) -> None:
    """A handler raised ``SystemExit``/``KeyboardInterrupt`` (its attempt fails as usual):
    the first one is kept for ``run`` to raise again, and the dispatcher stops."""
    with dispatcher._lock:
        first = dispatcher.handler_exit is None
        if first:
            dispatcher.handler_exit = exc
    if first:
        logger.warning(
            "job %s: its handler raised %r: stopping the worker (exit status %d)",
            job.id,
            exc,
            exit_status(dispatcher),
        )
    dispatcher.stop()


def settle_slot_leases(dispatcher: Dispatcher, exc: BaseException) -> None:
    """The jobs a crashed slot still held: a started one fails this attempt (retried per its
    ``attempts``), the others go back to waiting. Never raises."""
    me = threading.get_ident()
    with dispatcher._lock:
        held = [lease for lease in dispatcher._leases.values() if lease.owner == me]
    for lease in held:
        try:
            if lease.started:
                error = JobError(
                    "DispatcherCrashedError",
                    f"the dispatcher slot running this job crashed: {type(exc).__name__}: "
                    f"{exception_text(exc)}",
                )
                fail_attempt(dispatcher, lease, error)
            else:
                dispatcher._release(lease)
        except Exception:
            logger.exception("could not settle job %s of the crashed slot", lease.job.id)


def fail_attempt(dispatcher: Dispatcher, lease: _Lease, error: JobError) -> None:
    """Record ``error`` as this attempt's failure (retried per the job's ``attempts`` and
    backoff) without running the handler's outcome path: for a slot that crashed or a
    handler that is still stuck as the process exits."""
    job = lease.job
    dispatcher._forget(lease)
    will_retry = job.attempts_made < job.attempts
    retry_at = dispatcher.clock() + job.backoff.delay_for(job.attempts_made) if will_retry else None
    try:
        dispatcher.backend.fail(job.id, lease.claim.token, error, retry_at)
    except JobQueueError as exc:  # its lease expires: the stall rule ends it then
        logger.warning("could not record the failure of job %s: %s", job.id, exc)
        return
    dispatcher._tally("retrying" if will_retry else "failed")
    logger.warning(
        "job %s (%s) attempt %d/%d failed: %s: %s",
        job.id,
        job.name,
        job.attempts_made,
        job.attempts,
        error.type,
        error.message,
    )


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, even for an exception whose ``__str__`` raises."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose str() raised>"
