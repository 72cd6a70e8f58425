"""The asyncio facade: submit, read and wait on jobs from async code without blocking the loop.

``AsyncJobQueue`` is a thin async face on a sync queue (a :class:`~jobqueue.JobQueue`, or
the ``QueueClient`` it is built on), which stays the owner of the workers, plugins and
validation: jobs are built and checked by the same code and the same hooks fire. Only the
backend calls differ, behind a small seam, ``AsyncBackend``:

- Redis speaks asyncio natively (``redis.asyncio``, the same Lua scripts, see
  :mod:`jobqueue.backends.redis.aio`), offered by its plugin;
- every other backend -- SQLite, memory, third-party ones -- is run in worker threads by
  :class:`ThreadedAsyncBackend`, so the loop only ever awaits (see :mod:`jobqueue.aio_backend`).

Dispatchers stay synchronous (they run handlers one at a time, in their own threads or
processes); this facade is for the web-request side.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from jobqueue.aio_backend import AsyncBackend, ThreadedAsyncBackend, async_backend_for
from jobqueue.arguments import check_id, check_state
from jobqueue.backend import DispatcherInfo, ThroughputBucket
from jobqueue.client import QueueClient
from jobqueue.errors import ConfigurationError, JobNotFoundError
from jobqueue.flows import Flow
from jobqueue.hooks import emit
from jobqueue.job import JSON, Job, JobState

__all__ = ["AsyncBackend", "AsyncJobQueue", "ThreadedAsyncBackend"]


class AsyncJobQueue:
    """A queue to ``await``: ``AsyncJobQueue("sqlite:///jobs.db")`` takes the same arguments as
    ``JobQueue`` and opens its submitting side (``self.queue``, a ``QueueClient``: a
    ``JobQueue`` without dispatchers); ``AsyncJobQueue(queue=q)`` (or simply ``q.aio``) wraps
    an existing queue.

    ``backend`` replaces the async backend chosen for the queue's backend (any object with
    the ``AsyncBackend`` methods).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        queue: QueueClient | None = None,
        backend: AsyncBackend | None = None,
        **options: Any,
    ) -> None:
        if queue is not None and (url is not None or options):
            raise ConfigurationError(
                "pass either queue=JobQueue(...) or the URL and options to open one, not both"
            )
        self._owns_queue = queue is None
        self.queue: QueueClient = QueueClient(url, **options) if queue is None else queue
        self.backend: AsyncBackend = backend or async_backend_for(
            self.queue.backend, self.queue.plugins.hook
        )

    # -- submitting and reading ---------------------------------------------------------------

    async def submit_job(
        self,
        name: str,
        data: JSON = None,
        *,
        priority: int | None = None,
        delay: float | timedelta | None = None,
        run_at: datetime | float | None = None,
        attempts: int | None = None,
        backoff: object = None,
        timeout: float | None = None,
        unique_key: str | None = None,
        connection: object = None,
        **unknown: object,
    ) -> Job:
        """As ``JobQueue.submit_job``: store a job for worker ``name`` and return it. Bad input
        raises an ``InvalidJobError`` subclass and stores nothing. ``connection``: inside that
        connection's open transaction (psycopg ``AsyncConnection``, SQLAlchemy
        ``AsyncConnection``/``AsyncSession``, or their sync forms), as ``JobQueue.submit_job``."""
        options = dict(
            priority=priority,
            delay=delay,
            run_at=run_at,
            attempts=attempts,
            backoff=backoff,
            timeout=timeout,
            unique_key=unique_key,
            **unknown,
        )
        (job,) = self.queue.new_jobs(name, [data], options)
        if connection is not None:
            (stored,) = await self.queue.backend.submit_in_async(connection, [job])
        else:
            stored = await self.backend.submit(job)
        emit(self.queue.plugins.hook, "jobqueue_job_submitted", job=stored)
        return stored

    async def submit_jobs(
        self, name: str, datas: Iterable[JSON], *, connection: object = None, **options: object
    ) -> list[Job]:
        """As ``JobQueue.submit_jobs``: every item is validated first; if any is refused, none
        is stored. ``connection``: as ``submit_job``."""
        jobs = self.queue.new_jobs(name, datas, options)
        if connection is not None:
            stored = await self.queue.backend.submit_in_async(connection, jobs)
        else:
            stored = await self.backend.submit_many(jobs) if jobs else []
        for job in stored:
            emit(self.queue.plugins.hook, "jobqueue_job_submitted", job=job)
        return stored

    async def submit_flow(self, flow: Flow, *, connection: object = None) -> list[Job]:
        """As ``JobQueue.submit_flow``: every job of ``flow`` in one atomic step. (Without
        ``connection`` the store's own call runs in a worker thread.)"""
        jobs = flow.jobs(self.queue.new_jobs)
        if connection is not None:
            stored = await self.queue.backend.submit_in_async(connection, jobs)
        else:
            stored = await asyncio.to_thread(self.queue.backend.submit_flow, jobs)
        for job in stored:
            emit(self.queue.plugins.hook, "jobqueue_job_submitted", job=job)
        return stored

    async def flow_jobs(self, flow_id: str) -> list[Job]:
        """As ``JobQueue.flow_jobs`` (in a worker thread)."""
        return await asyncio.to_thread(self.queue.flow_jobs, flow_id)

    async def get_job_by_id(self, job_id: str) -> Job | None:
        """The job as stored now, or ``None`` if there is none with that id."""
        return await self.backend.get(check_id(job_id))

    async def wait_for(self, job_id: str, timeout: float = 60.0) -> Job | None:
        """Wait (without blocking the loop) until the job completes or fails and return it;
        ``None`` on timeout. Raises ``JobNotFoundError`` if there is no job with that id (or it
        is removed while waited for) — the semantics of ``JobQueue.wait_for``."""
        job_id = check_id(job_id)
        if await self.backend.get(job_id) is None:
            raise JobNotFoundError(f"no job with id {job_id!r}: nothing to wait for")
        finished = await self.backend.wait_for_finish(job_id, timeout)
        if finished is None and await self.backend.get(job_id) is None:
            raise JobNotFoundError(f"job {job_id!r} was removed while waited for")
        return finished

    async def list_jobs(
        self,
        state: JobState | str | None = None,
        offset: int = 0,
        limit: int = 100,
        *,
        name: str | None = None,
    ) -> list[Job]:
        """``JobQueue.list_jobs`` without blocking the loop: one state, or (``state=None``)
        the most recently touched jobs of every state; ``name`` keeps one worker's jobs."""
        if state is not None and name is None:
            return await self.backend.list_jobs(check_state(state), offset, limit)
        # Merging states or filtering by name takes several reads: run them off the loop.
        return await asyncio.to_thread(self.queue.list_jobs, state, offset, limit, name=name)

    async def count_by_state(self) -> dict[JobState, int]:
        return await self.backend.count_by_state()

    async def count_by_name(self) -> dict[str, dict[JobState, int]]:
        """See ``JobQueue.count_by_name`` (run in a thread: the async backends lack it)."""
        return await asyncio.to_thread(self.queue.count_by_name)

    async def throughput(
        self, period: str = "minute", span: int | None = None
    ) -> list[ThroughputBucket]:
        """``JobQueue.throughput`` without blocking the loop."""
        return await asyncio.to_thread(self.queue.throughput, period, span)

    async def remove_job(self, job_id: str) -> bool:
        return await self.backend.remove(check_id(job_id))

    # -- steering: the sync facade's operations, run off the loop -----------------------------

    async def cancel_job(self, job_id: str) -> JobState:
        """``JobQueue.cancel_job`` without blocking the loop."""
        return await asyncio.to_thread(self.queue.cancel_job, job_id)

    async def cancel_jobs(
        self, state: JobState | str = JobState.WAITING, name: str | None = None
    ) -> int:
        """``JobQueue.cancel_jobs`` without blocking the loop."""
        return await asyncio.to_thread(self.queue.cancel_jobs, state, name)

    async def run_job_now(self, job_id: str) -> Job:
        """``JobQueue.run_job_now`` without blocking the loop."""
        return await asyncio.to_thread(self.queue.run_job_now, job_id)

    async def retry_job(self, job_id: str) -> Job:
        """``JobQueue.retry_job`` without blocking the loop."""
        return await asyncio.to_thread(self.queue.retry_job, job_id)

    async def retry_jobs(
        self, state: JobState | str = JobState.FAILED, name: str | None = None
    ) -> int:
        """``JobQueue.retry_jobs`` without blocking the loop."""
        return await asyncio.to_thread(self.queue.retry_jobs, state, name)

    async def purge_jobs(
        self,
        state: JobState | str,
        *,
        name: str | None = None,
        older_than: float | timedelta | None = None,
    ) -> int:
        """``JobQueue.purge_jobs`` without blocking the loop."""
        return await asyncio.to_thread(
            functools.partial(self.queue.purge_jobs, state, name=name, older_than=older_than)
        )

    async def pause(self, name: str) -> None:
        await asyncio.to_thread(self.queue.pause, name)

    async def resume(self, name: str) -> None:
        await asyncio.to_thread(self.queue.resume, name)

    async def paused(self) -> frozenset[str]:
        return await asyncio.to_thread(self.queue.paused)

    async def dispatchers(self) -> list[DispatcherInfo]:
        return await asyncio.to_thread(self.queue.dispatchers)

    # -- lifecycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Release the async backend's connections or threads; and the sync queue too when
        this object opened it (not when it wraps one: ``queue.aio`` leaves ``queue`` open)."""
        await self.backend.close()
        if self._owns_queue:
            await asyncio.to_thread(self.queue.close)

    async def __aenter__(self) -> AsyncJobQueue:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
