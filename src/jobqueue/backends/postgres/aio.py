"""The PostgreSQL backend for asyncio: psycopg's own async connections, no threads.

Nothing here decides anything of its own: a submit is the sync backend's call of
``jobqueue_submit`` (``.submit.SubmitCall``: the same parameters, the same answer read the
same way), reads are the family's statements (``sql.statements``) decoded by the family's
functions (``sql.reads``, ``sql.guarded``), and a removal deletes with the statements the
sync store's ``delete`` sends. So a job submitted here is claimed by a sync dispatcher like
any other.

Connections: a ``psycopg_pool.AsyncConnectionPool`` per running event loop (async connections
belong to the loop that opened them), in autocommit. A submit is one statement; a read is one
pipelined batch (``BEGIN READ ONLY``, ``SET LOCAL search_path``, the statements, ``ROLLBACK``:
one round trip, PgBouncer's transaction mode keeps it); a removal one pipelined transaction
under the schema's writers' lock.

Waiting (``wait_for_finish``): a bounded poll with back-off (``POLL_START`` doubling to
``POLL_MAX``), each poll one read of the job -- no LISTEN connection of its own, so nothing is
left to reconnect, and PgBouncer's transaction mode works as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from jobqueue import lifecycle
from jobqueue.backends.postgres import PostgresBackend, submit
from jobqueue.backends.postgres.connections import POOL_TIMEOUT
from jobqueue.backends.postgres.dialect import LOCK_WAIT, translate
from jobqueue.backends.sql import flows, guarded, reads
from jobqueue.backends.sql.rows import row_to_job
from jobqueue.backends.sql.transitions import job_key
from jobqueue.changes import Selector
from jobqueue.job import Job, JobState
from jobqueue.values import totals_by_state

log = logging.getLogger("jobqueue.backends.postgres.aio")

POLL_START, POLL_MAX = 0.005, 0.1
"""Back-off between two reads of a job a ``wait_for_finish`` waits on (seconds)."""

AsyncPgConnection = psycopg.AsyncConnection[tuple[Any, ...]]


class AsyncPostgresBackend:
    """Submit, read, remove and wait on a PostgreSQL queue without blocking the event loop.

    ``backend`` is the sync backend of the same queue: its URL, schema, statements, clock and
    wake-up signal are used, never its connections."""

    def __init__(self, backend: PostgresBackend) -> None:
        self.backend = backend
        self._sql = backend.dialect.sql  # the store's own statements
        self._where = backend.url.where
        self._pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool[AsyncPgConnection]] = {}
        dialect = backend.dialect
        self._begin_read = ("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", dialect.use_schema)
        self._begin_write = (
            "BEGIN",
            dialect.use_schema,
            f"SET LOCAL lock_timeout = '{LOCK_WAIT}s'",
            f"SELECT {dialect.lock}",
        )

    # -- the AsyncBackend methods -------------------------------------------------------------

    async def submit(self, job: Job) -> Job:
        return (await self.submit_many([job]))[0]

    async def submit_many(self, jobs: Sequence[Job]) -> list[Job]:
        if not jobs:
            return []
        backend = self.backend
        if flows.has_flow(jobs):  # the sync store's transaction (``flows.store_flow``)
            return await asyncio.to_thread(backend.insert, jobs)
        if submit.copies(jobs):
            return await self._copy(jobs)
        call = backend.submit_call
        prepared = call.prepare(jobs, backend.options.clock(), server_clock=backend.server_clock)
        for attempt in range(2):
            try:
                async with self._connection() as conn:
                    cursor = await conn.execute(call.sql, prepared.params)
                    answer = await cursor.fetchall()
                break
            except psycopg.Error as exc:
                # Only a session the server had ended (class 57) rolled back for sure.
                ended = (getattr(exc, "sqlstate", None) or "").startswith("57")
                if attempt or not ended:
                    raise translate(exc, self._where) from exc
        stored, server_now = call.stored(jobs, prepared, answer)
        backend.after_submit(server_now)
        return stored

    async def _copy(self, jobs: Sequence[Job]) -> list[Job]:
        """A large batch by ``COPY``, as the sync backend sends it (``PostgresBackend._copy``):
        a transaction whose ``BEGIN`` reserves the ids and a block of the order counter and
        reads the server's clock, the rows, the logs, ``COMMIT``."""
        backend = self.backend
        rows = submit.copy_rows(jobs)  # encoded first: a bad value stores nothing
        async with self._connection() as conn:
            try:
                begun = await conn.execute(
                    backend.dialect.begin_write(exclusive=False, ids=len(jobs))
                )
                while begun.nextset():  # the last result: the begin's own
                    pass
                server_now, first_seq, last_id = await begun.fetchone() or (0.0, 0, 0)
                now = server_now if backend.server_clock else backend.options.clock()
                states = [lifecycle.due_state(job.run_at, now) for job in jobs]
                first_id = int(last_id) - len(jobs) + 1
                async with conn.cursor().copy(submit.COPY_JOBS) as copy:
                    copy.set_types(submit.COPY_TYPES)
                    for row in submit.numbered(rows, first_id, int(first_seq), states):
                        await copy.write_row(row)
                logs = submit.log_rows(jobs, first_id)
                if logs:
                    await conn.cursor().executemany(self._sql.INSERT_LOG, logs)
                await conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(psycopg.Error):
                    await conn.execute("ROLLBACK")
                if isinstance(exc, psycopg.Error):
                    raise translate(exc, self._where) from exc
                raise
        backend.after_submit(float(server_now))
        return submit.copied(jobs, first_id, states)

    async def get(self, job_id: str) -> Job | None:
        key = job_key(job_id)
        if key is None:
            return None
        rows, logs = await self._read((self._sql.JOB, (key,)), (self._sql.logs_in(1), (key,)))
        if not rows:
            return None
        return row_to_job(rows[0], [(at, message) for _, at, message in logs])

    async def list_jobs(self, state: JobState, offset: int = 0, limit: int = 100) -> list[Job]:
        query = guarded.scan_query(self._sql, Selector(state), offset, limit)
        (rows,) = await self._read(query)
        found: dict[int, list[tuple[float, str]]] = {}
        keys = [int(row[0]) for row in rows]
        if keys:  # a second snapshot: logs only grow, a job's are read whole
            for start in range(0, len(keys), reads.CHUNK):
                chunk = keys[start : start + reads.CHUNK]
                (log_rows,) = await self._read((self._sql.logs_in(len(chunk)), chunk))
                reads.logs_by_job(log_rows, found)
        return guarded.jobs_from(rows, found, log)

    async def count_by_name(self) -> dict[str, dict[JobState, int]]:
        (rows,) = await self._read((self._sql.NAME_COUNTS, ()))
        return reads.counts_from(rows)

    async def count_by_state(self) -> dict[JobState, int]:
        return totals_by_state(await self.count_by_name())

    async def remove(self, job_id: str) -> bool:
        key = job_key(job_id)
        if key is None:
            return False
        try:
            async with self._connection() as conn, conn.pipeline():
                for statement in self._begin_write:
                    await conn.execute(statement)
                deleted = await conn.execute(self._sql.delete_jobs(1), (key,))
                await conn.execute(self._sql.delete_logs(1), (key,))
                await conn.execute("COMMIT")
            removed = deleted.rowcount
        except psycopg.Error as exc:
            raise translate(exc, self._where) from exc
        if removed:
            self.backend.after_change()
        return removed == 1

    async def wait_for_finish(self, job_id: str, timeout: float) -> Job | None:
        until = time.monotonic() + max(timeout, 0.0)
        pause = POLL_START
        while True:
            job = await self.get(job_id)
            if job is None or job.state.is_finished:
                return job
            left = until - time.monotonic()
            if left <= 0:
                return None
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, POLL_MAX)

    async def close(self) -> None:
        """Close the pool of the running loop; pools of loops that have ended cannot be
        awaited any more and are dropped."""
        loop = asyncio.get_running_loop()
        pools, self._pools = self._pools, {}
        pool = pools.get(loop)
        if pool is not None:
            await pool.close()

    # -- plumbing -----------------------------------------------------------------------------

    async def _read(self, *statements: tuple[str, Sequence[object]]) -> list[list[Any]]:
        """The rows of ``statements`` in one read-only snapshot: one pipelined round trip.
        Retried once on a connection found dead (a read changes nothing)."""
        for attempt in range(2):
            try:
                async with self._connection() as conn:
                    async with conn.pipeline():
                        for statement in self._begin_read:
                            await conn.execute(statement)
                        cursors = [await conn.execute(sql, params) for sql, params in statements]
                        await conn.execute("ROLLBACK")
                    return [await cursor.fetchall() for cursor in cursors]
            except psycopg.OperationalError as exc:
                if attempt:
                    raise translate(exc, self._where) from exc
                log.debug("%s: reading again on another connection: %s", self._where, exc)
            except psycopg.Error as exc:
                raise translate(exc, self._where) from exc
        raise AssertionError("unreachable: the last attempt raises")

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncPgConnection]:
        pool = await self._pool()
        async with pool.connection() as conn:
            yield conn

    async def _pool(self) -> AsyncConnectionPool[AsyncPgConnection]:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            # Forget pools of loops that are gone, so a process that runs many short loops
            # does not keep one pool per loop forever.
            self._pools = {o: p for o, p in self._pools.items() if not o.is_closed()}
            url = self.backend.url
            pool = self._pools[loop] = AsyncConnectionPool(
                url.conninfo,
                min_size=1,
                max_size=url.pool_size,
                kwargs={"autocommit": True},
                timeout=POOL_TIMEOUT,
                name=f"jobqueue-aio-{url.schema}",
                open=False,
            )
            await pool.open()
            log.debug("opened an asyncio PostgreSQL pool for schema %s", url.schema)
        return pool
