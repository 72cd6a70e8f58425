"""Huey: calling the task enqueues it (no bulk API); ``huey_consumer -w 1 -k thread``.

By default the consumer logs two INFO lines per job; the ``huey-quiet`` row adds ``--quiet``."""

from __future__ import annotations

import os
from typing import Any

import body
from huey import RedisHuey

from peers import BIN, Adapter

huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"])


@huey.task()
def task(data: dict[str, Any]) -> None:
    body.run(data)


class HueyAdapter(Adapter):
    name = "huey"
    label = "Huey, 1 thread"
    package = "huey"

    def submit(self, data: dict[str, Any]) -> None:
        task(data)

    quiet = False

    def worker_command(self) -> list[str]:
        command = [str(BIN / "huey_consumer"), "peers.huey_adapter.huey", "-w", "1", "-k", "thread"]
        return [*command, "--quiet"] if self.quiet else command


class HueyQuietAdapter(HueyAdapter):
    name = "huey-quiet"
    label = "Huey, 1 thread, --quiet"
    quiet = True
