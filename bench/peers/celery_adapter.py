"""Celery: ``task.delay`` one by one, a ``group`` in bulk; ``celery worker --pool=solo``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import body
from celery import Celery, group

from peers import BIN, Adapter

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])


@app.task(name="bench.task")
def task(data: dict[str, Any]) -> None:
    body.run(data)


class CeleryAdapter(Adapter):
    name = "celery"
    label = "Celery, solo pool"
    package = "celery"
    bulk_api = "group"

    def submit(self, data: dict[str, Any]) -> None:
        task.delay(data)

    def submit_bulk(self, payloads: Sequence[dict[str, Any]]) -> None:
        group(task.s(data) for data in payloads).apply_async()

    def worker_command(self) -> list[str]:
        return [
            str(BIN / "celery"),
            "-A",
            "peers.celery_adapter",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--loglevel=WARNING",
        ]
