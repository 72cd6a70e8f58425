"""oban-py's producer for the benchmark, run under Python 3.12 (``bench/.venv-py312``) as
``python -m peers.oban_producer DSN SCHEMA`` and driven over a pipe by
``peers/oban_adapter.py`` (the harness runs on 3.11), one JSON request per line on stdin and one
JSON answer per line on stdout:

* ``{"op": "open"}``: install oban's tables in ``SCHEMA`` (just re-created by the harness) with
  its own ``oban.schema.install``, then open a pool (``Oban.create_pool``: 1-10 connections) and
  an ``Oban`` client (no queues: it only enqueues);
* ``{"op": "each", "payloads": [...], "interval": s}``: ``Oban.enqueue`` one by one, every
  ``interval`` seconds if given; answers each submit's ``time.time()`` taken just before it;
* ``{"op": "bulk", "payloads": [...]}``: one ``Oban.enqueue_many``;
* ``{"op": "release"}``: close the pool (no connection left before a worker is counted);
* ``{"op": "close"}``: the same, then exit.

It answers ``{"ready": true, "versions": {...}}`` once started, ``{"error": "..."}`` on failure.
"""

from __future__ import annotations

import asyncio
import json
import platform
import sys
import traceback
from importlib.metadata import version
from typing import Any

from oban import Oban
from oban.schema import install

from peers import paced
from peers.oban_worker import BenchWorker


class Producer:
    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema
        self.pool: Any = None
        self.oban: Oban | None = None

    async def open(self) -> None:
        await self.release()
        pool = await Oban.create_pool(self.dsn)
        await install(pool, prefix=self.schema)
        self.pool = pool
        self.oban = Oban(pool=pool, prefix=self.schema)

    async def release(self) -> None:
        if self.pool is not None:
            pool, self.pool, self.oban = self.pool, None, None
            await pool.close()

    async def each(self, payloads: list[dict[str, Any]], interval: float) -> list[float]:
        oban = self.oban
        assert oban is not None
        return await paced(payloads, interval, lambda data: oban.enqueue(BenchWorker.new(data)))

    async def bulk(self, payloads: list[dict[str, Any]]) -> None:
        assert self.oban is not None
        await self.oban.enqueue_many([BenchWorker.new(data) for data in payloads])

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "open":
            await self.open()
        elif op == "each":
            return {"stamps": await self.each(request["payloads"], request.get("interval", 0))}
        elif op == "bulk":
            await self.bulk(request["payloads"])
        elif op in ("release", "close"):
            await self.release()
        else:
            return {"error": f"unknown op {op!r}"}
        return {"ok": True}


def answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def serve(dsn: str, schema: str) -> None:
    producer = Producer(dsn, schema)
    found = {"oban": version("oban"), "psycopg (oban)": version("psycopg")}
    answer({"ready": True, "versions": {**found, "python (oban)": platform.python_version()}})
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            request = json.loads(line)
            try:
                answer(await producer.handle(request))
            except Exception as exc:  # reported to the harness, which raises it there
                traceback.print_exc()
                answer({"error": f"{type(exc).__name__}: {exc}"})
            if request["op"] == "close":
                break
    finally:
        await producer.release()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
