"""SAQ: ``Queue.enqueue`` (no bulk API used); ``saq`` worker with ``concurrency=1``."""

from __future__ import annotations

import os
from typing import Any

import body
from saq import Queue

from peers import BIN, AsyncAdapter

URL = os.environ["BENCH_REDIS_URL"]


async def task(ctx: dict[str, Any], *, data: dict[str, Any]) -> None:
    body.run(data)


settings = {
    "queue": Queue.from_url(URL, name="bench"),
    "functions": [task],
    "concurrency": 1,
}


class SaqAdapter(AsyncAdapter):
    name = "saq"
    label = "SAQ, concurrency=1"
    package = "saq"

    async def open(self) -> None:
        self.queue = Queue.from_url(self.url, name="bench")
        await self.queue.connect()

    async def asubmit(self, data: dict[str, Any]) -> None:
        await self.queue.enqueue("task", data=data)

    async def aclose(self) -> None:
        await self.queue.disconnect()

    def worker_command(self) -> list[str]:
        return [str(BIN / "saq"), "peers.saq_adapter.settings"]
