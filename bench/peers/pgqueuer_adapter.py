"""pgqueuer 1.6: ``Queries.enqueue`` one by one, the same with lists in bulk, over one asyncpg
connection (its CLI's driver); the worker is ``pgqueuer.run``.

``pgq run`` 1.6.0 crashes at start with typer 0.29 (its ``--log-level`` default reaches the
logger setup as a string), so the worker process is ``python -m peers.pgqueuer_adapter``,
which does what the CLI does: the CLI's logging at INFO and event loop (uvloop), then
``pgqueuer.run(factory)`` with the CLI's defaults but ``--batch-size``. Not psycopg: its
driver waits for notifications holding the one connection's lock (up to 1 s), so a worker on
it ran ~0.5 jobs/s here. Concurrency 1 is the entrypoint's
``concurrency_limit=1`` (``--max-concurrent-tasks`` must be at least twice the batch size).
Three modes: limit 1 at the defaults (batch 10; a finished job holds its slot until the 0.1 s
status flush), limit 1 with batch size 1, and pgqueuer's fastest, no limit with batch 10 (not
one job at a time).
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import asyncpg
import body
from pgqueuer import AsyncpgDriver, Job, PgQueuer, Queries

from peers import python
from peers.postgres_base import PostgresPeer, database_url

SCHEMA = "pgqueuer"
ENTRYPOINT = "task"
CLI_BATCH_SIZE = 10  # `pgq run --batch-size`'s default


async def connect() -> asyncpg.Connection:
    return await asyncpg.connect(database_url(), server_settings={"search_path": SCHEMA})


@asynccontextmanager
async def create_pgqueuer(limit: int) -> AsyncIterator[PgQueuer]:
    """The worker's factory, as ``pgq run module:factory`` would call it."""
    connection = await connect()
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint(ENTRYPOINT, concurrency_limit=limit)
    async def task(job: Job) -> None:
        body.run(json.loads(job.payload or b"{}"))

    try:
        yield pgq
    finally:
        await connection.close()


class PgqueuerAdapter(PostgresPeer):
    name = "pgqueuer"
    label = "pgqueuer, concurrency_limit=1 (defaults: batch 10)"
    package = "pgqueuer"
    bulk_api = "enqueue (lists)"
    schema = SCHEMA
    limit: ClassVar[int] = 1  # the entrypoint's concurrency_limit (0: none)
    batch_size: ClassVar[int] = CLI_BATCH_SIZE

    async def install(self) -> None:
        connection = await connect()
        try:
            await Queries(AsyncpgDriver(connection)).install()
        finally:
            await connection.close()

    async def open(self) -> None:
        self.connection = await connect()
        self.queries = Queries(AsyncpgDriver(self.connection))

    async def asubmit(self, data: dict[str, Any]) -> None:
        await self.queries.enqueue(ENTRYPOINT, json.dumps(data).encode())

    async def asubmit_bulk(self, payloads: Sequence[dict[str, Any]]) -> None:
        await self.queries.enqueue(
            [ENTRYPOINT] * len(payloads),
            [json.dumps(data).encode() for data in payloads],
            [0] * len(payloads),
        )

    async def aclose(self) -> None:
        await self.connection.close()

    def worker_command(self) -> list[str]:
        return [
            python(),
            "-m",
            "peers.pgqueuer_adapter",
            "--concurrency-limit",
            str(self.limit),
            "--batch-size",
            str(self.batch_size),
        ]


class PgqueuerBatch1Adapter(PgqueuerAdapter):
    name = "pgqueuer-batch1"
    label = "pgqueuer, concurrency_limit=1, batch size 1"
    batch_size = 1


class PgqueuerBatch10Adapter(PgqueuerAdapter):
    name = "pgqueuer-batch10"
    label = "pgqueuer, no limit, batch 10 (not one at a time)"
    limit = 0
    one_at_a_time = False


ADAPTERS: list[type[PgqueuerAdapter]] = [
    PgqueuerAdapter,
    PgqueuerBatch1Adapter,
    PgqueuerBatch10Adapter,
]


def main() -> None:
    from pgqueuer import run
    from pgqueuer.adapters.cli.cli import asyncio_run
    from pgqueuer.core.logconfig import LogLevel, setup_fancy_logger

    parser = argparse.ArgumentParser(description="a pgqueuer worker process for the benchmark")
    parser.add_argument("--concurrency-limit", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=CLI_BATCH_SIZE)
    args = parser.parse_args()
    setup_fancy_logger(LogLevel.INFO)
    factory = functools.partial(create_pgqueuer, args.concurrency_limit)
    asyncio_run(run(factory, batch_size=args.batch_size))


if __name__ == "__main__":
    main()
