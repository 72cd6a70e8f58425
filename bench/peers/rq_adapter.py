"""RQ: ``Queue.enqueue`` one by one, ``Queue.enqueue_many`` in bulk; ``rq worker`` with
``SimpleWorker`` (runs jobs in the worker process, no fork per job).

By default the worker logs INFO lines per job; the ``rq-quiet`` row adds ``--quiet``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import body
import redis
import rq

from peers import BIN, Adapter

QUEUE = "bench"


def task(data: dict[str, Any]) -> None:
    body.run(data)


class RqAdapter(Adapter):
    name = "rq"
    label = "RQ, SimpleWorker"
    package = "rq"
    bulk_api = "enqueue_many"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.connection = redis.Redis.from_url(url)
        self.queue = rq.Queue(QUEUE, connection=self.connection)

    def submit(self, data: dict[str, Any]) -> None:
        self.queue.enqueue(task, data)

    def submit_bulk(self, payloads: Sequence[dict[str, Any]]) -> None:
        prepare = rq.Queue.prepare_data
        self.queue.enqueue_many([prepare(task, args=(data,)) for data in payloads])

    def close(self) -> None:
        self.connection.close()

    quiet = False

    def worker_command(self) -> list[str]:
        command = [
            str(BIN / "rq"),
            "worker",
            "--url",
            self.url,
            "--worker-class",
            "rq.worker.SimpleWorker",
            QUEUE,
        ]
        return [*command, "--quiet"] if self.quiet else command


class RqQuietAdapter(RqAdapter):
    name = "rq-quiet"
    label = "RQ, SimpleWorker, --quiet"
    quiet = True
