"""Dramatiq: ``actor.send`` (no bulk API used); ``dramatiq --processes 1 --threads 1``."""

from __future__ import annotations

import os
from typing import Any

import body
import dramatiq
from dramatiq.brokers.redis import RedisBroker

from peers import BIN, Adapter

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench")
def task(data: dict[str, Any]) -> None:
    body.run(data)


class DramatiqAdapter(Adapter):
    name = "dramatiq"
    label = "Dramatiq, 1 process x 1 thread"
    package = "dramatiq"

    def submit(self, data: dict[str, Any]) -> None:
        task.send(data)

    def worker_command(self) -> list[str]:
        return [
            str(BIN / "dramatiq"),
            "peers.dramatiq_adapter",
            "--processes",
            "1",
            "--threads",
            "1",
        ]
