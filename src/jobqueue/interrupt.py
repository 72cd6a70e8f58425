"""Interrupting a synchronous handler: for timeouts and for shutdown past the grace period.

Python cannot kill a thread, but it can raise an exception inside one:

* in the main thread, a ``SIGALRM`` whose handler raises, which also breaks ``time.sleep`` and
  blocking socket calls;
* in any other thread, ``PyThreadState_SetAsyncExc``, which lands at the next bytecode (a
  blocking C call is interrupted only when it returns).

An ``Interrupter`` is armed only while a handler runs, so a late timer can never raise in
the dispatcher's own code.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from types import FrameType, TracebackType


class ShutdownInterrupt(BaseException):
    """Raised inside a handler still running when the shutdown grace period ends.

    A ``BaseException`` so that a handler's ``except Exception`` does not swallow it."""


class Interrupter:
    """Raise an exception in the thread that created this object, while armed."""

    def __init__(self) -> None:
        self._thread_id = threading.get_ident()
        self._use_signal = (
            threading.current_thread() is threading.main_thread()
            and hasattr(signal, "SIGALRM")
            and hasattr(signal, "pthread_kill")
        )
        self._lock = threading.Lock()
        self._armed = False
        self._pending: type[BaseException] | BaseException | None = None
        self._fired: BaseException | type[BaseException] | None = None
        self._timer: threading.Timer | None = None
        self._previous: object = None

    def __enter__(self) -> Interrupter:
        if self._use_signal:
            self._previous = signal.signal(signal.SIGALRM, self._on_alarm)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disarm()
        if self._use_signal:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)  # type: ignore[arg-type]

    def arm(self, timeout: float | None, error: BaseException) -> None:
        """Start guarding a handler call; after ``timeout`` seconds raise ``error`` in it."""
        with self._lock:
            self._armed = True
            self._fired = None
            self._pending = error
        if timeout is None:
            return
        if self._use_signal:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        else:
            self._timer = threading.Timer(timeout, self.fire, args=(error,))
            self._timer.daemon = True
            self._timer.start()

    def fire(self, error: BaseException) -> bool:
        """Raise ``error`` in the guarded thread now, if a handler is running there."""
        with self._lock:
            if not self._armed or self._fired is not None:
                return False
            self._pending = error
            if self._use_signal:
                signal.pthread_kill(self._thread_id, signal.SIGALRM)
                return True
            self._fired = error
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._thread_id), ctypes.py_object(type(error))
            )
            return True

    def disarm(self) -> None:
        """Stop guarding. If an asynchronous exception was scheduled but has not landed yet,
        cancel it and raise it here instead, so it never escapes into dispatcher code later."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._use_signal:
            signal.setitimer(signal.ITIMER_REAL, 0)
        with self._lock:
            was_armed, self._armed = self._armed, False
            fired, self._fired = self._fired, None
        if was_armed and fired is not None and not self._use_signal:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), None)
            raise fired if isinstance(fired, BaseException) else fired()

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        with self._lock:
            if not self._armed or self._pending is None:
                return
            error, self._armed = self._pending, False
        raise error
