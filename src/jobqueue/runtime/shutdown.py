"""Shutdown: the supervisor that waits for the slots, the grace period, abandoning running
jobs, the signal handlers, and a process's last act.

* ``stop()`` (the first SIGTERM/SIGINT under ``install_signal_handlers``) stops claiming;
  running jobs get ``grace_seconds`` to finish, then their handlers are interrupted. A job
  goes back to waiting (attempt not counted) only once its handler has stopped, so no job
  runs twice at once because of a shutdown.
* A process that installed our signal handlers does not wait for ever on a handler stuck in
  a C call: after a short wait it gives the jobs of such handlers back as its very last act
  and exits at once (``os._exit``); the second SIGINT does the same right away, within 2 s.
* The signal handler only writes a byte to a socket; a watcher thread acts on it.
* **faulthandler** is on in worker processes, so that a handler that crashes the
  interpreter (a segfault in a C extension) leaves its thread's traceback on stderr.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

from jobqueue.runtime.ending import Ending
from jobqueue.runtime.interrupt import HandlerTimeout
from jobqueue.runtime.leases import LeaseBook
from jobqueue.runtime.recorder import Recorder
from jobqueue.runtime.retrying import describe_failure
from jobqueue.runtime.runs import Runs

logger = logging.getLogger(__name__)

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


def enable_faulthandler() -> None:
    """Dump every thread's traceback to stderr on a fatal signal (SIGSEGV, SIGABRT, ...);
    left as it is when already on (``python -X faulthandler``, pytest)."""
    if faulthandler.is_enabled():
        return
    # A stderr without a file descriptor (replaced by the host) cannot take the dump.
    with contextlib.suppress(AttributeError, OSError, ValueError, RuntimeError):
        faulthandler.enable(file=sys.stderr, all_threads=True)


class Supervisor:
    """Carries out the shutdown of one dispatcher, in the thread that called ``run``."""

    def __init__(self, ending: Ending, runs: Runs, leases: LeaseBook, recorder: Recorder) -> None:
        self._ending = ending
        self._runs = runs
        self._leases = leases
        self._recorder = recorder
        self._lock = threading.Lock()
        self._slots_left = 0
        self._owns_process = False  # install_signal_handlers: may exit the process itself
        # Set once this thread handles Ctrl-C (or the run ended): slots start only then, so a
        # job that presses Ctrl-C at once cannot interrupt ``run`` before it is supervising.
        self.slots_may_start = threading.Event()

    def slots_started(self, count: int) -> None:
        self.slots_may_start.clear()
        with self._lock:
            self._slots_left = count

    def slot_ended(self) -> None:
        with self._lock:
            self._slots_left -= 1
        self._ending.wakeup.set()

    def abandon_running(self) -> None:
        """Interrupt every running handler now (the second SIGINT); see ``Dispatcher``."""
        self._ending.stop()
        self._ending.abandoning = True
        self._runs.interrupt_all()
        self._ending.wakeup.set()

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
                    self._on_signal(received.pop(0))

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

    def _on_signal(self, signum: int) -> None:
        ending = self._ending
        ending.stop_signal = ending.stop_signal or signum
        if ending.stopping.is_set() and signum == signal.SIGINT:
            self.abandon_running()
        else:
            ending.stop()

    def supervise_until_done(self) -> None:
        """Without our signal handlers, Ctrl-C raises KeyboardInterrupt here (handlers run in
        slot threads): the first one stops gracefully, the second interrupts running jobs, a
        third gives up on them (their leases expire and they are recovered)."""
        presses = 0
        while True:
            try:
                self.slots_may_start.set()
                self._supervise()
                return
            except KeyboardInterrupt:
                presses += 1
                self._ending.stop_signal = self._ending.stop_signal or signal.SIGINT
                if presses == 1:
                    self._ending.stop()
                elif presses == 2:
                    self.abandon_running()
                else:
                    raise

    def _supervise(self) -> None:
        """Wait for the slots to end; past the grace period interrupt running handlers and,
        in a process we own, exit once interrupted handlers had their time to stop."""
        ending = self._ending
        interrupted_at: float | None = None  # when running handlers were interrupted
        abandoned = False  # whether by the second SIGINT (a shorter wait before exiting)
        while True:
            ending.wakeup.clear()  # before looking, so that no wake-up is missed
            with self._lock:
                if self._slots_left == 0:
                    return
            now = time.monotonic()
            timeout: float | None = None
            if ending.abandoning and not abandoned:
                interrupted_at, abandoned = now, True  # abandon_running interrupted them
            elif ending.stopping.is_set() and interrupted_at is None:
                if now >= ending.grace_deadline:
                    interrupted_at = now
                else:
                    timeout = ending.grace_deadline - now
            if interrupted_at is not None:
                self._runs.interrupt_all()  # again: a job may have started meanwhile
                if self._owns_process:
                    wait = ABANDON_WAIT if abandoned else min(ending.grace_seconds, STOP_WAIT_MAX)
                    left = interrupted_at + wait - now
                    if left <= 0:
                        self._exit_process()
                    timeout = left
            # Bounded: Python runs signal handlers only in the main thread, once it wakes.
            ending.wakeup.wait(SUPERVISE_TICK if timeout is None else min(timeout, SUPERVISE_TICK))

    def _exit_process(self) -> NoReturn:
        """Give back every job still held and exit at once: the very last act of the process,
        after which no code of ours runs a handler. Jobs a stuck slot had claimed ahead or run
        without recording yet (``prefetch``) go back too, and run again: at-least-once."""
        leases = self._leases.all()
        # Stuck past their own timeout (in a C call): their attempt fails, or they would
        # come back and hang again after every restart.
        timed_out = self._runs.timed_out()
        status = self._ending.exit_status()
        logger.warning(
            "exiting with %d job(s) whose handler did not stop: giving them back to waiting",
            len(leases),
        )

        def release_all() -> None:
            for lease in leases:
                if lease in timed_out:
                    self._recorder.fail_attempt(
                        lease, describe_failure(HandlerTimeout(), lease.job)
                    )
                else:
                    self._recorder.release(lease)

        # In a thread with a bound: an unreachable backend must not keep the process alive.
        releaser = threading.Thread(target=release_all, name="jobqueue-exit", daemon=True)
        releaser.start()
        releaser.join(EXIT_RELEASE_WAIT)
        logging.shutdown()  # os._exit skips it: flush the log lines first
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)
