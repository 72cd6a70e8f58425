"""JobQueue: the facade applications use — register workers, submit jobs, look them up, work.

What a client does (submit, read, steer, declare) is ``QueueClient``'s; this class adds
what works the jobs: dispatchers, the scheduler, and the asyncio face of the queue."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from jobqueue.aio import AsyncJobQueue
from jobqueue.client import DEFAULT_URL, QueueClient
from jobqueue.runtime.dispatcher import Dispatcher
from jobqueue.scheduler import Scheduler

__all__ = ["DEFAULT_URL", "JobQueue"]


class JobQueue(QueueClient):
    """One queue: a backend chosen by URL, the registered workers, and dispatchers.

    ``JobQueue("memory://")``, ``JobQueue("sqlite:///jobs.db")``, ``JobQueue("redis://…")``;
    ``JobQueue()`` reads ``JOBQUEUE_URL`` and falls back to ``redis://localhost:6379/0``.
    ``namespace`` (Redis) defaults to ``$JOBQUEUE_NAMESPACE``, else ``jobqueue``. A malformed URL
    or a setting out of range raises a ``ConfigurationError`` here, before any job is sent.
    ``replicas`` (Redis) makes each submit and outcome wait until that many replicas hold it,
    for at most ``replica_timeout`` seconds (see docs/deploying.md, failover).
    Submitting, reading and steering are ``QueueClient``'s methods.
    """

    @functools.cached_property
    def aio(self) -> AsyncJobQueue:
        """This queue to ``await`` from asyncio code (see ``jobqueue.aio``); one per queue.
        Close it with ``await queue.aio.close()`` before the loop ends; it leaves this
        queue open."""
        return AsyncJobQueue(queue=self)

    # -- working ------------------------------------------------------------------------------

    def dispatcher(
        self,
        *,
        names: Sequence[str] | None = None,
        concurrency: int = 1,
        prefetch: int | None = None,
        idle_timeout: float = 1.0,
    ) -> Dispatcher:
        """A dispatcher for this queue's workers (all of them, or ``names``). Each slot claims
        jobs ahead and records their outcomes in batches — still one job running at a time per
        slot — while recent jobs are short and the backlog deep, one at a time otherwise
        (``prefetch=None``, adaptive: see ``jobqueue.runtime.prefetch``); ``prefetch=N``
        always claims up to N ahead."""
        return Dispatcher(
            self.backend,
            self.registry,
            self.plugins.hook,
            names=names,
            concurrency=concurrency,
            prefetch=prefetch,
            lease_seconds=self.lease_seconds,
            grace_seconds=self.grace_seconds,
            idle_timeout=idle_timeout,
            clock=self.clock,
        )

    def work(
        self,
        *,
        burst: bool = True,
        max_jobs: int | None = None,
        concurrency: int = 1,
        prefetch: int | None = None,
        names: Sequence[str] | None = None,
    ) -> int:
        """Run a dispatcher in this thread. With ``burst`` (the default) return once nothing
        is ready. Returns how many attempts ran (a job retried twice counts three). Raises
        ``DispatcherCrashedError`` if its slots kept crashing, and a handler's ``SystemExit``
        / ``KeyboardInterrupt`` again after stopping gracefully (``Dispatcher.run``)."""
        dispatcher = self.dispatcher(names=names, concurrency=concurrency, prefetch=prefetch)
        return dispatcher.run(burst=burst, max_jobs=max_jobs)

    def run_worker(
        self,
        *,
        concurrency: int = 1,
        prefetch: int | None = None,
        names: Sequence[str] | None = None,
        scheduler: bool = True,
    ) -> int:
        """Run a long-lived dispatcher until SIGTERM/SIGINT (graceful, see ``grace_seconds``).
        A handler still running after the grace period is interrupted; if it does not stop
        soon after, or on a second SIGINT, its job is given back and the process exits
        (status 0 after SIGTERM, 130 after SIGINT): see the shutdown section of the docs.
        With ``scheduler`` (the default) and schedules declared, a scheduler runs beside it
        (one job per tick however many processes run one). It never returns quietly after a
        failure: slots that kept crashing raise ``DispatcherCrashedError``, a handler's
        ``SystemExit(n)`` / ``KeyboardInterrupt`` is raised again once stopped; faulthandler
        is enabled so that a segfaulting handler leaves its traceback on stderr."""
        dispatcher = self.dispatcher(names=names, concurrency=concurrency, prefetch=prefetch)
        ticking = self.scheduler() if scheduler and len(self.schedule_book) else None
        thread = ticking.start_thread() if ticking else None
        restore = dispatcher.install_signal_handlers()
        try:
            return dispatcher.run()
        finally:
            restore()
            if ticking is not None and thread is not None:
                ticking.stop()
                thread.join()

    def scheduler(self) -> Scheduler:
        """A scheduler for this queue's declared schedules (``run()`` it, or
        ``start_thread()``)."""
        return Scheduler(self, self.schedule_book)
