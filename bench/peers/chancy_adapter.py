"""Chancy 0.26: ``Chancy.push`` one by one, ``Chancy.push_many`` in bulk; ``chancy worker
start`` on one queue declared with ``concurrency=1``, its defaults otherwise (the process-pool
executor, default plugins).

At its defaults a queue is polled every 5 s (0.2 jobs/s here), so the ``chancy`` row declares
the queue with ``eager_polling=True`` (poll again as soon as a job finishes); the
``chancy-poll5`` row (not in the ``postgres`` group) keeps the 5 s poll. The worker command
imports this module's ``app``; jobs name :func:`task` by import path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

import body
from chancy import Chancy, Job, Queue

from peers import BIN
from peers.postgres_base import PostgresPeer, schema_url

SCHEMA = "chancy"
QUEUE = "bench"


def task(*, data: dict[str, Any]) -> None:
    body.run(data)


def make_app(url: str) -> Chancy:
    return Chancy(url)


# The worker's app (the harness imports this module before the bench database exists; a
# Chancy app connects only when entered).
app = make_app(schema_url(SCHEMA) if os.environ.get("BENCH_POSTGRES_URL") else "")


class ChancyAdapter(PostgresPeer):
    name = "chancy"
    label = "Chancy, concurrency=1, eager_polling"
    package = "chancy"
    bulk_api = "push_many"
    schema = SCHEMA
    eager: ClassVar[bool] = True

    async def install(self) -> None:
        async with make_app(self.postgres_url) as chancy:
            await chancy.migrate()
            await chancy.declare(Queue(QUEUE, concurrency=1, eager_polling=self.eager))

    async def open(self) -> None:
        self.chancy = make_app(self.postgres_url)
        await self.chancy.__aenter__()

    async def asubmit(self, data: dict[str, Any]) -> None:
        await self.chancy.push(Job.from_func(task, queue=QUEUE, kwargs={"data": data}))

    async def asubmit_bulk(self, payloads: Sequence[dict[str, Any]]) -> None:
        jobs = [Job.from_func(task, queue=QUEUE, kwargs={"data": data}) for data in payloads]
        async for _ in self.chancy.push_many(jobs):
            pass

    async def aclose(self) -> None:
        await self.chancy.__aexit__(None, None, None)

    def worker_command(self) -> list[str]:
        return [str(BIN / "chancy"), "--app", "peers.chancy_adapter.app", "worker", "start"]


class ChancyPoll5Adapter(ChancyAdapter):
    name = "chancy-poll5"
    label = "Chancy, concurrency=1 (defaults: 5 s poll)"
    eager = False


ADAPTERS: list[type[ChancyAdapter]] = [ChancyAdapter, ChancyPoll5Adapter]
