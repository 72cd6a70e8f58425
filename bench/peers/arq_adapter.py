"""arq: ``ArqRedis.enqueue_job`` (no bulk API); ``arq`` worker with ``max_jobs=1`` and its
default settings otherwise (notably ``poll_delay=0.5``)."""

from __future__ import annotations

import os
from typing import Any

import body
from arq import create_pool
from arq.connections import RedisSettings

from peers import BIN, AsyncAdapter

SETTINGS = RedisSettings.from_dsn(os.environ["BENCH_REDIS_URL"])


async def task(ctx: dict[str, Any], data: dict[str, Any]) -> None:
    body.run(data)


class WorkerSettings:
    functions = [task]
    redis_settings = SETTINGS
    max_jobs = 1


class ArqAdapter(AsyncAdapter):
    name = "arq"
    label = "arq, max_jobs=1"
    package = "arq"

    async def open(self) -> None:
        self.pool = await create_pool(SETTINGS)

    async def asubmit(self, data: dict[str, Any]) -> None:
        await self.pool.enqueue_job("task", data)

    async def aclose(self) -> None:
        await self.pool.aclose()

    def worker_command(self) -> list[str]:
        return [str(BIN / "arq"), "peers.arq_adapter.WorkerSettings"]
