"""Interrupting a synchronous handler, for timeouts and for shutdown: one watchdog thread.

Python cannot kill a thread, but it can ask the interpreter to raise an exception in one,
``PyThreadState_SetAsyncExc`` (Dramatiq's way). A :class:`Watchdog` is one thread per
dispatcher that does this at each guarded call's deadline, and on request (shutdown).

* **No signals.** ``SIGALRM`` and ``setitimer`` belong to the host application (an
  application's own interval timer, pytest-timeout's): a job timeout never touches them.
* **At the next bytecode.** The exception lands when the thread next runs Python code. A
  handler blocked in one long C call (``time.sleep``, a socket ``recv``, a lock) is
  interrupted only when that call returns; a handler in Python code is interrupted at once.
* **Never in dispatcher code.** A call is guarded only between :meth:`Watchdog.arm` and
  :meth:`Watchdog.disarm`; ``disarm`` cancels an exception that was scheduled but has not
  landed yet, and a guard fires at most once, so nothing raises after ``disarm`` returns.
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
from dataclasses import dataclass, field

from jobqueue.errors import InvalidOptionError
from jobqueue.job import MAX_DELAY_SECONDS


class ShutdownInterrupt(BaseException):
    """Raised inside a handler still running when the shutdown grace period ends.

    A ``BaseException`` so that a handler's ``except Exception`` does not swallow it."""


class JobCancelled(BaseException):
    """Raised inside a handler whose job an operator cancelled while it ran.

    A ``BaseException`` so that a handler's ``except Exception`` does not swallow it."""


class Snooze(BaseException):
    """Raised by a handler (``job.retry_in(seconds)``, or ``raise Snooze(seconds)``) to put
    its job back to run again in ``seconds``: not a failure, and not counted as an attempt.

    A ``BaseException`` so that a handler's ``except Exception`` does not swallow it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = check_snooze(seconds)


def check_snooze(seconds: object) -> float:
    """``seconds`` as a snooze's delay, or ``InvalidOptionError``."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or not 0 <= seconds <= MAX_DELAY_SECONDS
    ):
        raise InvalidOptionError(
            f"retry_in takes seconds from 0 to {MAX_DELAY_SECONDS:.0f}, got {seconds!r}"
        )
    return float(seconds)


class HandlerTimeout(BaseException):
    """Raised inside a handler that outlived its ``timeout``; the job fails with
    ``JobTimeoutError``. A ``BaseException`` for the same reason as ``ShutdownInterrupt``."""


@dataclass(eq=False)
class Guard:
    """One guarded call: the thread it runs in, and its deadline (``time.monotonic``)."""

    thread_id: int
    deadline: float | None
    fired: type[BaseException] | None = None
    armed: bool = field(default=True)


class Watchdog:
    """Raises an exception in a guarded thread at its deadline, or when asked to."""

    def __init__(self) -> None:
        self._wake = threading.Condition(threading.Lock())
        self._guards: set[Guard] = set()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._wake:
            self._closed = False
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="jobqueue-watchdog", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            thread, self._thread = self._thread, None
            self._wake.notify_all()
        if thread is not None:
            thread.join()

    def arm(self, timeout: float | None) -> Guard:
        """Guard a call about to run in this thread; raise ``HandlerTimeout`` in it after
        ``timeout`` seconds (never, if ``None``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        guard = Guard(threading.get_ident(), deadline)
        with self._wake:
            self._guards.add(guard)
            if deadline is not None:
                self._wake.notify_all()
        return guard

    def interrupt(self, guard: Guard, error: type[BaseException]) -> bool:
        """Raise ``error`` in the guarded call now, unless it ended or was already fired."""
        with self._wake:
            return self._fire(guard, error)

    def disarm(self, guard: Guard) -> type[BaseException] | None:
        """Stop guarding. Returns what was fired at the call, if anything was; an exception
        fired but not landed yet is cancelled, so it can never land in the caller's code."""
        with self._wake:
            guard.armed = False
            self._guards.discard(guard)
            if guard.fired is not None:
                # Under the lock, so that no new exception is scheduled after the cancel.
                _set_async_exc(guard.thread_id, None)
            return guard.fired

    def _fire(self, guard: Guard, error: type[BaseException]) -> bool:
        if not guard.armed or guard.fired is not None:
            return False
        guard.fired = error
        self._guards.discard(guard)  # fires once: a second exception could land in cleanup
        _set_async_exc(guard.thread_id, error)
        return True

    def _watch(self) -> None:
        with self._wake:
            while not self._closed:
                now = time.monotonic()
                due = [g for g in self._guards if g.deadline is not None and g.deadline <= now]
                for guard in due:
                    self._fire(guard, HandlerTimeout)
                deadlines = [g.deadline for g in self._guards if g.deadline is not None]
                self._wake.wait(min(deadlines) - now if deadlines else None)


def _set_async_exc(thread_id: int, error: type[BaseException] | None) -> None:
    # pythonapi holds the GIL across the call: the thread cannot run in between.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), None if error is None else ctypes.py_object(error)
    )
