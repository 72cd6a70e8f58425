"""The dispatcher: claim a job, run its handler, record the outcome, repeat.

A dispatcher runs ``concurrency`` slots (default 1), each in its own thread running one job
at a time (``slot``), so by default a process never runs two handlers at once. A heartbeat
thread renews the leases it holds (``leases``, ``heartbeat``) and runs maintenance
(``maintenance``). The thread that called ``run`` supervises: it waits for the slots and
carries out shutdown (``shutdown``). The rest of the engine, part by part:

* **One round trip per job** (``recorder``): recording an outcome and claiming the next job
  are one backend call; outcomes of jobs claimed ahead are recorded in batches.
* **Running a handler** (``executor``): hooks, the watchdog's timeouts (``interrupt``), the
  async loop. A handler's exception, a plugin's, or a lost connection is logged and handled:
  only ``stop()`` ends the loop (or an empty queue with ``burst``).
* **Lost leases and cancels** (``leases``, ``runs``): a job whose lease is lost belongs to
  someone else and its outcome is discarded (``jobqueue_lease_lost``, once); a running job
  whose cancel the heartbeat brings has its handler interrupted (``JobCancelled``) and ends
  CANCELLED, not retried. A handler that finishes first keeps its result.
* **Shutdown** (``shutdown``): stop claiming, give running jobs ``grace_seconds``, then
  interrupt them; a job goes back to waiting only once its handler has stopped.
* **Never dies quietly** (``slot``, ``ending``): a slot that crashes is logged and restarted,
  boundedly: past the cap ``run`` raises ``DispatcherCrashedError``. A handler's
  ``SystemExit``/``KeyboardInterrupt`` fails its attempt, stops the dispatcher gracefully,
  and ``run`` raises it again at the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import pluggy

from jobqueue.backend import Clock, DispatcherInfo, WorkSpec
from jobqueue.engine import Engine
from jobqueue.errors import DispatcherCrashedError, InvalidSettingError
from jobqueue.limits import MAX_LEASE_SECONDS, validate_seconds
from jobqueue.registry import Registry
from jobqueue.runtime.ending import Ending
from jobqueue.runtime.executor import Executor
from jobqueue.runtime.heartbeat import Heartbeat
from jobqueue.runtime.interrupt import Watchdog
from jobqueue.runtime.leases import LeaseBook
from jobqueue.runtime.maintenance import Maintenance
from jobqueue.runtime.outage import Outages
from jobqueue.runtime.prefetch import PrefetchPolicy, make_policy
from jobqueue.runtime.recorder import Recorder
from jobqueue.runtime.runs import Runs
from jobqueue.runtime.shutdown import Supervisor
from jobqueue.runtime.slot import Slot
from jobqueue.runtime.tally import Tally

logger = logging.getLogger(__name__)


class Dispatcher:
    """Runs jobs of the registered workers from one backend. See the module docstring."""

    def __init__(
        self,
        backend: Engine,
        registry: Registry,
        hooks: pluggy.HookRelay,
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
        self._build_parts()

    def _build_parts(self) -> None:
        self._ending = Ending(self.grace_seconds)
        self._tally = Tally()
        self._leases = LeaseBook(self.hooks, self.clock, self.lease_seconds)
        self._runs = Runs(Watchdog())
        self._outages = Outages(self._ending.stopping)
        self._recorder = Recorder(
            self.backend,
            self.spec,
            self._leases,
            self._tally,
            self.hooks,
            self.clock,
            self._outages,
        )
        self._executor = Executor(
            self.backend, self.registry, self.hooks, self._runs, self._ending, self.clock
        )
        self._supervisor = Supervisor(self._ending, self._runs, self._leases, self._recorder)
        self._maintenance = Maintenance(self.backend, self.hooks)
        self._finished = threading.Event()

    # -- what the last run did ----------------------------------------------------------------

    @property
    def processed(self) -> int:
        """Attempts started by the last ``run`` (a job retried twice counts three)."""
        return self._tally.processed

    @property
    def outcomes(self) -> dict[str, int]:
        """What the last ``run``'s recorded attempts ended as: ``completed``, ``failed``,
        ``retrying`` (failed, to run again), ``snoozed`` (put back by the handler's
        ``job.retry_in``), ``cancelled`` and ``lost`` (lease lost, outcome discarded)."""
        return self._tally.outcomes

    @property
    def stop_signal(self) -> int | None:
        """The signal that stopped the last ``run_worker``-style run, if one did."""
        return self._ending.stop_signal

    @property
    def crashed(self) -> DispatcherCrashedError | None:
        """Set when slots kept crashing and the last ``run`` gave up (it raises this)."""
        return self._ending.crashed

    @property
    def handler_exit(self) -> BaseException | None:
        """The first ``SystemExit``/``KeyboardInterrupt`` a handler raised in the last
        ``run`` (which stopped and raises it again)."""
        return self._ending.handler_exit

    def exit_status(self) -> int:
        """The status a process ending its last ``run`` should exit with: 0 for a requested
        stop, 130 after SIGINT, ``n`` after a handler's ``SystemExit(n)``, 70 when slots
        kept crashing."""
        return self._ending.exit_status()

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
        self._ending.begin()
        self._finished.clear()
        self._tally.reset()
        self._runs.watchdog.start()
        slots = [
            threading.Thread(
                target=self._slot, args=(burst, max_jobs), name=f"jobqueue-slot-{n}", daemon=True
            )
            for n in range(1, self.concurrency + 1)
        ]
        self._supervisor.slots_started(len(slots))
        # The heartbeat starts the slots, once the supervisor handles Ctrl-C: Thread.start
        # waits, and a KeyboardInterrupt landing in that wait (a job may press Ctrl-C at once)
        # would leave us not knowing whether the slot started.
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(slots,), name="jobqueue-heartbeat", daemon=True
        )
        try:
            heartbeat.start()
            self._supervisor.supervise_until_done()
            for thread in slots:
                thread.join()
        finally:
            self._finished.set()
            self._supervisor.slots_may_start.set()  # Ctrl-C before supervising: none start
            with contextlib.suppress(RuntimeError):  # interrupted before it started
                heartbeat.join()
            self._runs.watchdog.close()
            self._ending.end()
        self._ending.raise_if_ended_badly()
        return self.processed

    def stop(self, grace_seconds: float | None = None) -> None:
        """Stop claiming; give running jobs ``grace_seconds`` to finish, then interrupt them;
        each goes back to waiting once its handler stopped. Safe to call from any thread."""
        self._ending.stop(grace_seconds)

    def abandon_running(self) -> None:
        """Interrupt every running handler now (the second SIGINT); each job goes back to
        waiting once its handler stopped. In a process that installed our signal handlers,
        handlers still running after ``ABANDON_WAIT`` have their jobs given back as the
        process's last act, and it exits."""
        self._supervisor.abandon_running()

    def install_signal_handlers(self) -> Callable[[], None]:
        """SIGTERM/SIGINT stop gracefully; a second SIGINT abandons running jobs at once and
        exits the process. Returns a function that restores the previous handlers."""
        return self._supervisor.install_signal_handlers()

    # -- the threads ----------------------------------------------------------------------------

    def _slot(self, burst: bool, max_jobs: int | None) -> None:
        slot = Slot(
            self.backend,
            self.spec,
            self.idle_timeout,
            self.new_prefetch_policy,
            executor=self._executor,
            recorder=self._recorder,
            leases=self._leases,
            tally=self._tally,
            outages=self._outages,
            ending=self._ending,
        )
        try:
            slot.run(burst, max_jobs)
        finally:
            self._supervisor.slot_ended()

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
        beats = Heartbeat(self.backend, info, self.lease_seconds, self._maintenance)
        try:
            self._beat(beats)  # registered before the first claim
            self._supervisor.slots_may_start.wait()
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
        for lease in self._leases.renew(beats):
            self._runs.cancel(lease)
