"""One adapter per library: how to submit (one by one, in bulk) and how to start its worker.

The PostgreSQL peers (``on_postgres``) share ``peers/postgres_base.py``: a schema each in the
bench's database, re-created by ``reset`` before each phase. The producer side runs in the
harness process (for the Node peers, BullMQ and Kue, in one
``node`` process driven over a pipe: ``peers/node_peer.py``); each worker runs as its own
process with the library's usual command (its CLI where it has one) at concurrency 1. Every
worker runs the same body, :func:`body.run` (``bench/node/common.js`` on Node), on the payload
``{"user": "u1", "n": i}``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

BIN = Path(sys.executable).parent


class Adapter:
    """A library under test. Subclasses set the class attributes and implement ``submit``
    (and ``submit_bulk`` where the library has a bulk API)."""

    name: ClassVar[str]  # key in results and on the command line
    label: ClassVar[str]  # how the table shows it
    package: ClassVar[str]  # distribution name, for its version
    bulk_api: ClassVar[str | None] = None  # the bulk API's name, if there is one
    on_redis: ClassVar[bool] = (
        True  # stores its jobs in the Redis measured: (d) and Redis counts apply
    )
    requires_node: ClassVar[bool] = False  # a Node peer: skipped where `node` is missing
    on_postgres: ClassVar[bool] = False  # stores its jobs in the bench's PostgreSQL database
    one_at_a_time: ClassVar[bool] = True  # its worker runs one job at a time (concurrency 1)

    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this library cannot be measured on this machine (its runtime is missing), or
        None if it can; may install what it needs first (once per run)."""
        return None

    # -- producer side (in the harness process) ----------------------------------------------

    def submit(self, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def submit_each(self, payloads: Sequence[dict[str, Any]], interval: float = 0.0) -> list[float]:
        """Submit one by one (every ``interval`` seconds if given); return each submit's
        wall-clock time, taken just before the call."""
        stamps = []
        start = time.perf_counter()
        for index, data in enumerate(payloads):
            if interval:
                _pace(start, index, interval)
            stamps.append(time.time())
            self.submit(data)
        return stamps

    def submit_bulk(self, payloads: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget stored jobs between phases (Redis is flushed by the harness anyway)."""

    def release(self) -> None:
        """Let go of the producer's database connections until the next ``reset`` (before a
        worker's PostgreSQL transactions are counted)."""

    def close(self) -> None:
        """Release the producer's connections."""

    # -- worker side -------------------------------------------------------------------------

    def worker_command(self) -> list[str]:
        """The command that runs one worker process at concurrency 1."""
        raise NotImplementedError


class AsyncAdapter(Adapter):
    """An adapter whose library submits with coroutines: the loop runs inside one event loop,
    as an asyncio application would submit."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.open())

    async def open(self) -> None:
        raise NotImplementedError

    async def asubmit(self, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def submit_each(self, payloads: Sequence[dict[str, Any]], interval: float = 0.0) -> list[float]:
        return self.loop.run_until_complete(paced(payloads, interval, self.asubmit))

    async def aclose(self) -> None:
        pass

    def close(self) -> None:
        self.loop.run_until_complete(self.aclose())
        self.loop.close()


def _pace(start: float, index: int, interval: float) -> None:
    delay = start + index * interval - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def python() -> str:
    return sys.executable


def adapters() -> dict[str, type[Adapter]]:
    """Every adapter by name, in the table's order."""
    from peers import (
        arq_adapter,
        bullmq_adapter,
        celery_adapter,
        chancy_adapter,
        dramatiq_adapter,
        huey_adapter,
        jobqueue_adapter,
        kue_adapter,
        oban_adapter,
        pgqueuer_adapter,
        procrastinate_adapter,
        rq_adapter,
        saq_adapter,
    )

    found: list[type[Adapter]] = [
        *jobqueue_adapter.ADAPTERS,
        huey_adapter.HueyAdapter,
        huey_adapter.HueyQuietAdapter,
        celery_adapter.CeleryAdapter,
        saq_adapter.SaqAdapter,
        dramatiq_adapter.DramatiqAdapter,
        rq_adapter.RqAdapter,
        rq_adapter.RqQuietAdapter,
        arq_adapter.ArqAdapter,
        bullmq_adapter.BullmqAdapter,
        kue_adapter.KueAdapter,
        procrastinate_adapter.ProcrastinateAdapter,
        *pgqueuer_adapter.ADAPTERS,
        *chancy_adapter.ADAPTERS,
        *oban_adapter.ADAPTERS,
    ]
    return {adapter.name: adapter for adapter in found}


async def paced(
    payloads: Sequence[dict[str, Any]],
    interval: float,
    submit: Callable[[dict[str, Any]], Awaitable[object]],
) -> list[float]:
    """``submit`` each payload in turn, ``interval`` seconds apart (0: back to back), and the
    time just before each call (the latency phase's start stamps). Shared by the in-process
    async adapters and oban-py's producer process."""
    stamps = []
    start = time.perf_counter()
    for index, data in enumerate(payloads):
        if interval:
            delay = start + index * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        stamps.append(time.time())
        await submit(data)
    return stamps
