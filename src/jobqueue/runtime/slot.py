"""One slot: claim, run, record, repeat -- the producer of a dispatcher.

* **One at a time.** A slot runs one job at a time, in its own thread. It may hold several
  claimed ahead: how many is its prefetch policy's (``prefetch``): by default adaptive,
  claiming ahead only short jobs from a deep backlog; ``prefetch=N`` fixes the depth. Their
  outcomes wait at most ``FLUSH_AFTER`` before being recorded in one call (``recorder``).
* **Idle.** A slot with nothing to run blocks until work comes (at most ``idle_timeout``, so
  ``stop()`` is seen). A backend that can (``HandoffBackend``, e.g. Redis) hands the next
  job straight to the idle slot, already claimed under the slot's lease: submit to start is
  two hops. Others wake the slot, which then claims. Ready work held back by ``max_active``
  elsewhere is waited for with a back-off, not a spin.
* **Cancel.** A job claimed ahead whose cancel the heartbeat brought is not started.
* **Never dies quietly.** A slot that crashes anyway (a bug in jobqueue, a plugin or a
  backend: a handler's own errors fail its job and never get here) is logged with its
  traceback; the jobs it held are dealt with (one whose handler had started fails that
  attempt, retried per its ``attempts``; the others go back to waiting), and it restarts
  after a back-off (``SLOT_RESTART_MIN`` doubling to ``SLOT_RESTART_MAX``). One that crashes
  ``SLOT_CRASH_LIMIT`` times within ``SLOT_CRASH_WINDOW`` seconds gives up: the dispatcher
  stops gracefully and ``run`` raises ``DispatcherCrashedError``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from jobqueue.backend import Claim, WorkSpec
from jobqueue.engine import Engine
from jobqueue.errors import BackendError, DispatcherCrashedError
from jobqueue.job import JobError
from jobqueue.runtime.ending import Ending
from jobqueue.runtime.executor import Executor, Finished, GiveBack, Snoozed
from jobqueue.runtime.leases import Lease, LeaseBook
from jobqueue.runtime.outage import Outages
from jobqueue.runtime.prefetch import PrefetchPolicy
from jobqueue.runtime.recorder import Recorder
from jobqueue.runtime.retrying import exception_text
from jobqueue.runtime.tally import Tally

logger = logging.getLogger(__name__)

FLUSH_AFTER = 0.05
"""With prefetch, outcomes wait at most about this long (seconds) before being recorded."""

CAPPED_BACKOFF_MIN, CAPPED_BACKOFF_MAX = 0.002, 0.1
"""Back-off (seconds) of a slot whose ready work is held back by ``max_active`` elsewhere."""

SLOT_RESTART_MIN, SLOT_RESTART_MAX = 0.1, 5.0
"""Back-off (seconds) before a crashed slot restarts: doubles with each recent crash."""

SLOT_CRASH_LIMIT, SLOT_CRASH_WINDOW = 5, 60.0
"""A slot that crashes this many times within this many seconds gives up."""


class Slot:
    """One slot thread's loop. The parts it is given are shared by the dispatcher's slots."""

    def __init__(
        self,
        backend: Engine,
        spec: WorkSpec,
        idle_timeout: float,
        new_policy: Callable[[], PrefetchPolicy],
        *,
        executor: Executor,
        recorder: Recorder,
        leases: LeaseBook,
        tally: Tally,
        outages: Outages,
        ending: Ending,
    ) -> None:
        self._backend = backend
        self._spec = spec
        self._idle_timeout = idle_timeout
        self._new_policy = new_policy
        self._executor = executor
        self._recorder = recorder
        self._leases = leases
        self._tally = tally
        self._outages = outages
        self._ending = ending
        self._stopping = ending.stopping
        # The optional hand-off of the backend (``HandoffBackend``): be handed work when idle.
        self._handoff = backend.handoff

    def run(self, burst: bool, max_jobs: int | None) -> None:
        """Run the slot's loop in this thread, restarting it after a crash (see the module
        docstring) until it returns, the dispatcher stops, or it crashed too often."""
        crashes: deque[float] = deque()
        while True:
            try:
                self.work(burst, max_jobs)
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
                self._settle_leases(exc)
                if self._stopping.is_set() or self._gave_up(exc, len(crashes)):
                    return
                delay = min(SLOT_RESTART_MIN * 2 ** (len(crashes) - 1), SLOT_RESTART_MAX)
                logger.warning("restarting the slot in %.1fs", delay)
                if self._stopping.wait(delay):  # stop() ends the back-off at once
                    return

    def _gave_up(self, exc: BaseException, crashes: int) -> bool:
        if crashes < SLOT_CRASH_LIMIT:
            return False
        self._ending.give_up(
            DispatcherCrashedError(
                f"a dispatcher slot crashed {crashes} times within "
                f"{SLOT_CRASH_WINDOW:.0f}s, last with {type(exc).__name__}: "
                f"{exception_text(exc)}; the worker stopped (tracebacks in the log)"
            )
        )
        return True

    def _settle_leases(self, exc: BaseException) -> None:
        """The jobs a crashed slot still held: a started one fails this attempt (retried per
        its ``attempts``), the others go back to waiting. Never raises."""
        for lease in self._leases.owned_by(threading.get_ident()):
            try:
                if lease.started:
                    error = JobError(
                        DispatcherCrashedError.__name__,
                        f"the dispatcher slot running this job crashed: {type(exc).__name__}: "
                        f"{exception_text(exc)}",
                    )
                    self._recorder.fail_attempt(lease, error)
                else:
                    self._recorder.release(lease)
            except Exception:
                logger.exception("could not settle job %s of the crashed slot", lease.job.id)

    def work(self, burst: bool, max_jobs: int | None) -> None:
        """Claim, run, record, repeat, until stopped (or out of work with ``burst``, or at
        ``max_jobs``)."""
        loop = asyncio.new_event_loop()
        policy = self._new_policy()  # a restarted slot learns afresh
        ahead: deque[Lease] = deque()  # claimed, not started yet
        finished: list[Finished] = []  # ran, outcome not recorded yet
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
                        capped = self._wait_idle(ahead, policy)
                        continue
                    capped, capped_delay = False, CAPPED_BACKOFF_MIN
                lease = ahead.popleft()
                if lease.lost or lease.cancelled:
                    self._drop(lease)
                    continue
                if not self._tally.start_one(max_jobs, self._stopping):
                    ahead.appendleft(lease)
                    break
                done = self._run(lease, loop, policy)
                if done is not None:
                    finished.append(done)
        except BackendError as exc:
            logger.warning("slot stopping with the backend unreachable: %s", exc)
        finally:
            try:
                if finished:
                    self._recorder.record(finished, 0)
            finally:
                for lease in ahead:  # claimed ahead but never started: give them back
                    self._recorder.release(lease)
                loop.close()

    def _wanted(self, depth: int, have: int, max_jobs: int | None) -> int:
        """How many more jobs this slot should claim now, holding ``have`` of ``depth``."""
        if self._stopping.is_set():
            return 0
        want = depth - have
        if max_jobs is not None:
            want = min(want, self._tally.left(max_jobs) - have)
        return max(want, 0)

    def _claim(self, want: int) -> list[Lease]:
        backend, spec = self._backend, self._spec
        return self._leases.hold(self._outages.call(lambda: backend.claim_many(spec, want)))

    def _record(self, finished: Sequence[Finished], want: int) -> list[Lease]:
        """Record outcomes and claim up to ``want`` more jobs, in one call where possible."""
        held, looked = self._recorder.record(finished, want)
        if not looked and want > 0:
            held += self._claim(want)
        return held

    def _wait_idle(self, ahead: deque[Lease], policy: PrefetchPolicy) -> bool:
        """Block until work comes (at most ``idle_timeout``). A job handed over by a backend
        that can (``HandoffBackend``) goes into ``ahead``; returns whether woken for work
        that is still to be claimed."""
        handoff, spec, timeout = self._handoff, self._spec, self._idle_timeout
        if handoff is None:
            return self._outages.call(lambda: self._backend.wait_for_work(spec.names, timeout))
        waited = self._outages.call(lambda: handoff.wait_for_claim(spec, timeout))
        if not isinstance(waited, Claim):
            return waited
        ahead.extend(self._leases.hold([waited]))
        policy.claimed(1, [waited.job.name])
        return False

    def _drop(self, lease: Lease) -> None:
        """A job claimed ahead that will not start: its lease was lost meanwhile, or it was
        cancelled (it ends cancelled, never started)."""
        if lease.lost:
            self._leases.forget(lease)
        else:
            self._recorder.finish_cancelled(lease)

    def _run(
        self, lease: Lease, loop: asyncio.AbstractEventLoop, policy: PrefetchPolicy
    ) -> Finished | None:
        """Run the job; its outcome to record, or ``None`` once it was given back or ended
        cancelled (now that its handler has stopped)."""
        started = time.monotonic()
        ended = self._executor.execute(lease, loop)
        policy.ran(lease.job.name, time.monotonic() - started)
        if isinstance(ended, Finished):
            return ended
        if isinstance(ended, GiveBack):
            self._recorder.release(lease)
        elif isinstance(ended, Snoozed):
            self._recorder.snooze(lease, ended.delay)
        else:  # Cancelled
            self._recorder.finish_cancelled(lease)
        return None


def _overdue(finished: Sequence[Finished]) -> bool:
    return time.monotonic() - finished[0].since > FLUSH_AFTER
