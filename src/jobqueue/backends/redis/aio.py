"""The Redis backend for asyncio: the sync backend's scripts, sent through ``redis.asyncio``.

Nothing here decides anything of its own: every command is built by the sync
:class:`~jobqueue.backends.redis.RedisBackend` this one is paired with (its ``calls``), a
refused call is recovered by the same plan (``Calls.cure``), and every reply is decoded by
the same functions (``wire.py``), so both speak to one queue in exactly the same way -- a
job submitted here is claimed by a sync dispatcher, and waiting for it blocks (BLPOP) on
the key the sync backend's ``wait_for_finish`` blocks on.

redis.asyncio connections belong to the event loop that opened them, so a client is opened
per running loop (``asyncio.run`` twice, or a test client that starts a loop per request,
each get their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio
import redis.asyncio.sentinel
import redis.exceptions

from jobqueue.backends.redis import replication, sentinel
from jobqueue.backends.redis.backend import RedisBackend
from jobqueue.backends.redis.calls import CALL_ATTEMPTS
from jobqueue.backends.redis.codec import Arg, Command, Reply, decode_job
from jobqueue.backends.redis.connection import block_slice, block_slices, translate_errors
from jobqueue.backends.redis.eviction import cannot_check, warn_if_evicting
from jobqueue.backends.redis.seam import scan_args
from jobqueue.backends.redis.url import parse_url
from jobqueue.backends.redis.wire import (
    counted_by_name,
    listed_jobs,
    rows,
    submit_batches,
    submitted_jobs,
    watched,
)
from jobqueue.changes import Selector
from jobqueue.errors import BackendError
from jobqueue.job import Job, JobState
from jobqueue.values import totals_by_state

log = logging.getLogger("jobqueue.backends.redis.aio")

AsyncRedisClient = Any  # redis.asyncio.Redis, or fakeredis.aioredis.FakeRedis in tests


class AsyncRedisBackend:
    """Submit, read, remove and wait on a Redis queue without blocking the event loop.

    ``backend`` is the sync backend of the same queue (it builds the commands); ``connect``
    opens an asyncio client to the same server, called once per event loop. Most code uses
    :meth:`for_backend`, which opens clients from the URL the sync backend was opened from.
    """

    def __init__(self, backend: RedisBackend, connect: Callable[[], AsyncRedisClient]) -> None:
        self.backend = backend
        self._connect = connect
        self._clients: dict[asyncio.AbstractEventLoop, AsyncRedisClient] = {}
        self._primary_watch = sentinel.AsyncPrimaryWatch()

    @classmethod
    def for_backend(cls, backend: RedisBackend) -> AsyncRedisBackend | None:
        """The asyncio twin of a backend opened by URL; ``None`` when it cannot be opened
        that way (a client handed in directly, or Redis Cluster), so the caller falls back
        to running the sync backend in threads."""
        if backend.url is None:
            return None
        target = parse_url(backend.url, backend.options)
        if target.cluster:
            return None

        spec = target.sentinel

        def connect() -> AsyncRedisClient:
            if spec is not None:  # the primary the sentinels name, following failovers
                return sentinel.open_async_client(spec, target.url, target.settings)
            return redis.asyncio.Redis.from_url(target.url, **target.settings)

        return cls(backend, connect)

    # -- the AsyncBackend methods -------------------------------------------------------------

    async def submit(self, job: Job) -> Job:
        return (await self.submit_many([job]))[0]

    async def submit_many(self, jobs: Sequence[Job]) -> list[Job]:
        out: list[Job] = []
        # A lane of the sync backend's pool, held until the last batch is answered: tasks
        # submitting concurrently each number calls in a lane of their own.
        lanes = self.backend.lanes
        lane = lanes.take()
        try:
            for batch, args in submit_batches(jobs, self.backend.calls.time_arg, lane):
                out += submitted_jobs(batch, await self._run("submit", args))
        finally:
            lanes.give(lane)
        return out

    async def get(self, job_id: str) -> Job | None:
        reply = await self._run("get", [job_id])
        return None if reply is None else decode_job(rows(reply))

    async def list_jobs(self, state: JobState, offset: int = 0, limit: int = 100) -> list[Job]:
        args = scan_args(Selector(state), offset, limit, self.backend.calls.cutoff_arg)
        return listed_jobs(await self._run("scan", args), self.backend.namespace)

    async def count_by_state(self) -> dict[JobState, int]:
        return totals_by_state(await self.count_by_name())

    async def count_by_name(self) -> dict[str, dict[JobState, int]]:
        return counted_by_name(await self._run("count_by_name", []))

    async def remove(self, job_id: str) -> bool:
        return bool(await self._run("delete", [1, job_id]))

    async def wait_for_finish(self, job_id: str, timeout: float) -> Job | None:
        # As RedisBackend.wait_for_finish: register as a waiter (so finishing the job pushes
        # to its done key), BLPOP that key, and unregister whatever happens -- cancellation
        # of the awaiting task included.
        until = time.monotonic() + max(timeout, 0.0)
        state, job = await self._watch(job_id, 1)
        if state != "wait":
            return job
        try:
            while True:
                left = until - time.monotonic()
                if left <= 0:
                    break
                if await self._block(self.backend.done_key(job_id), left) is not None:
                    found = await self.get(job_id)
                    if found is None or found.state.is_finished:
                        return found
        finally:
            with contextlib.suppress(BackendError):
                state, job = await self._watch(job_id, -1)
        return job if state == "done" else None

    async def close(self) -> None:
        """Close the client of the running loop; clients of loops that have ended cannot be
        awaited any more and are dropped (their sockets close with them)."""
        loop = asyncio.get_running_loop()
        clients, self._clients = self._clients, {}
        for owner, client in clients.items():
            if owner is loop:
                with contextlib.suppress(redis.exceptions.RedisError, OSError):
                    await client.aclose()
                await sentinel.aclose_sentinels(client)

    # -- plumbing -----------------------------------------------------------------------------

    async def _watch(self, job_id: str, change: int) -> tuple[str, Job | None]:
        return watched(await self._run("watch", [job_id, change]))

    async def _block(self, key: str, timeout: float) -> Reply:
        """BLPOP for at most ``timeout`` seconds, in slices the socket timeout allows."""
        client = self._client()
        # Slices below the client's socket timeout, as the sync backend's, or redis-py would
        # read the silent wait as a dead connection; on Sentinel short enough to follow a
        # switch of primary soon.
        longest = block_slice(client)
        if target_is_sentinel(client):
            longest = min(longest, sentinel.BLOCK_SLICE)
        for seconds in block_slices(timeout, longest):
            await self._primary_watch.check(client)
            with translate_errors():
                popped: Reply = await client.blpop([key], timeout=seconds)
            if popped is not None:
                return popped
        return None

    async def _run(self, script: str, args: Sequence[Arg]) -> Reply:
        """The sync backend's FCALL (or EVALSHA) command; when the server lacks the function
        library (or the script), load what ``Calls.cure`` says -- the plan the sync backend
        follows too -- and call again.
        redis.asyncio resends a command after a dropped connection on its own (unmarked as a
        repeat); submit's lane (its idempotency key) keeps that from storing jobs twice."""
        backend = self.backend
        calls = backend.calls
        client = self._client()
        await self._primary_watch.check(client)
        if not backend.policy_checked:
            backend.policy_checked = True
            try:
                if backend.check_eviction:  # ?check_eviction=false: not even asked
                    warn_if_evicting(await client.config_get("maxmemory-policy"))
            except redis.exceptions.RedisError as exc:  # e.g. an ACL user without CONFIG
                cannot_check(exc)
        with translate_errors():
            for attempt in range(1, CALL_ATTEMPTS + 1):
                try:
                    command = calls.command(script, args)
                    if backend.wait_command is None or not replication.acked(script, args):
                        reply: Reply = await client.execute_command(*command)
                        return reply
                    return await self._replicated(client, command, script, args)
                except redis.exceptions.ResponseError as exc:
                    loads = calls.cure(script, exc, attempt)
                    if loads is None:
                        raise
                    for load in loads:
                        try:
                            await client.execute_command(*load.command)
                        except redis.exceptions.ResponseError as refused:
                            if not calls.load_refused(load, refused):
                                raise
            raise AssertionError("unreachable")

    async def _replicated(
        self, client: AsyncRedisClient, command: Command, script: str, args: Sequence[Arg]
    ) -> Reply:
        """The call and its WAIT on one connection (a pipeline), as the sync backend sends
        them; ``ReplicationTimeoutError`` when too few replicas acknowledged it."""
        backend = self.backend
        reply: Reply
        async with client.pipeline(transaction=False) as pipe:
            pipe.execute_command(*command)
            pipe.execute_command(*(backend.wait_command or ()))
            reply, acked = await pipe.execute(raise_on_error=False)
        for answer in (reply, acked):
            if isinstance(answer, Exception):
                raise answer
        replication.check(acked, backend.replicas, backend.replica_timeout, script, args, reply)
        return reply

    def _client(self) -> AsyncRedisClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # Forget clients of loops that are gone, so a process that runs many short loops
            # does not keep one client per loop forever.
            self._clients = {o: c for o, c in self._clients.items() if not o.is_closed()}
            client = self._clients[loop] = self._connect()
            log.debug("opened an asyncio Redis client for namespace %s", self.backend.namespace)
        return client


def target_is_sentinel(client: AsyncRedisClient) -> bool:
    """Whether ``client``'s pool asks Sentinel for the primary."""
    pool = getattr(client, "connection_pool", None)
    return isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool)
