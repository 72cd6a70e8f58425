"""The asyncio storage seam: what ``AsyncJobQueue`` needs of a backend, and the stand-in that
runs any sync backend in worker threads.

A backend with a native asyncio twin offers it through the ``jobqueue_async_backend`` hook
(the built-in plugin answers for Redis, :mod:`jobqueue.backends.redis.aio`); every other
backend -- SQLite, memory, third-party ones -- runs in :class:`ThreadedAsyncBackend`, so the
loop only ever awaits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

import pluggy

from jobqueue.engine import Engine
from jobqueue.job import Job, JobState

T = TypeVar("T")

WAIT_SLICE = 1.0
"""Longest single blocking wait a worker thread makes for ``ThreadedAsyncBackend``: a
cancelled ``wait_for`` gives its thread back within this time instead of holding it for the
whole timeout."""

MAX_WAIT_THREADS = 32
"""Threads for concurrent waits of one ``ThreadedAsyncBackend``, apart from the loop's default
executor, so that many pending waits never delay a submit behind them."""


@runtime_checkable
class AsyncBackend(Protocol):
    """What ``AsyncJobQueue`` needs of storage: the ``Backend`` methods of the submitting side,
    as coroutines, with the same meaning."""

    async def submit(self, job: Job) -> Job: ...

    async def submit_many(self, jobs: Sequence[Job]) -> list[Job]: ...

    async def get(self, job_id: str) -> Job | None: ...

    async def list_jobs(self, state: JobState, offset: int = 0, limit: int = 100) -> list[Job]: ...

    async def count_by_state(self) -> dict[JobState, int]: ...

    async def remove(self, job_id: str) -> bool: ...

    async def wait_for_finish(self, job_id: str, timeout: float) -> Job | None: ...

    async def close(self) -> None: ...


def async_backend_for(backend: Engine, hooks: pluggy.HookRelay) -> AsyncBackend:
    """The asyncio twin a plugin offers for ``backend`` (``jobqueue_async_backend``: Redis
    opened by URL); worker threads for anything else."""
    native: AsyncBackend | None = hooks.jobqueue_async_backend(backend=backend)
    return ThreadedAsyncBackend(backend) if native is None else native


class ThreadedAsyncBackend:
    """Any sync ``Backend`` behind the ``AsyncBackend`` methods, each call run in a thread.

    Short calls go to the loop's default executor (``asyncio.to_thread``); waits go to a pool
    of their own, in slices of at most ``WAIT_SLICE`` seconds. The backend must accept calls
    from several threads, as every dispatcher with ``concurrency > 1`` already requires.
    """

    def __init__(self, backend: Engine) -> None:
        self.backend = backend
        self._waits: concurrent.futures.ThreadPoolExecutor | None = None

    async def submit(self, job: Job) -> Job:
        return await asyncio.to_thread(self.backend.submit, job)

    async def submit_many(self, jobs: Sequence[Job]) -> list[Job]:
        return await asyncio.to_thread(self.backend.submit_many, jobs)

    async def get(self, job_id: str) -> Job | None:
        return await asyncio.to_thread(self.backend.get, job_id)

    async def list_jobs(self, state: JobState, offset: int = 0, limit: int = 100) -> list[Job]:
        return await asyncio.to_thread(self.backend.list_jobs, state, offset, limit)

    async def count_by_state(self) -> dict[JobState, int]:
        return await asyncio.to_thread(self.backend.count_by_state)

    async def remove(self, job_id: str) -> bool:
        return await asyncio.to_thread(self.backend.remove, job_id)

    async def wait_for_finish(self, job_id: str, timeout: float) -> Job | None:
        # Each slice is a complete wait_for_finish: it checks the job first, so nothing that
        # finishes between two slices is missed.
        until = time.monotonic() + max(timeout, 0.0)
        while True:
            left = until - time.monotonic()
            step = min(max(left, 0.0), WAIT_SLICE)
            job = await self._in_wait_thread(self.backend.wait_for_finish, job_id, step)
            if job is not None or left <= WAIT_SLICE:
                return job
            # None before the end: the slice ran out, or the job is gone (removed, unknown),
            # which one long call would have answered at once with None.
            if await self.get(job_id) is None:
                return None

    async def close(self) -> None:
        """Give back the wait threads; the sync backend belongs to its ``JobQueue``."""
        waits, self._waits = self._waits, None
        if waits is not None:
            waits.shutdown(wait=False, cancel_futures=True)

    async def _in_wait_thread(self, call: Callable[..., T], *args: object) -> T:
        if self._waits is None:
            self._waits = concurrent.futures.ThreadPoolExecutor(
                MAX_WAIT_THREADS, thread_name_prefix="jobqueue-aio-wait"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._waits, functools.partial(call, *args))
