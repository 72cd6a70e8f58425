"""procrastinate 3: ``task.defer_async`` one by one, ``task.batch_defer_async`` in bulk;
``procrastinate worker --concurrency 1``, its defaults otherwise (LISTEN/NOTIFY on).

The app's connector reaches the schema ``procrastinate`` of the bench database through
``search_path`` (procrastinate's SQL names no schema); the worker command imports this module
as its ``--app``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import body
from procrastinate import App, PsycopgConnector

from peers import BIN
from peers.postgres_base import PostgresPeer, schema_url

SCHEMA = "procrastinate"


def _conninfo() -> str:
    # The harness imports every adapter before the bench database exists: then no URL yet.
    return schema_url(SCHEMA) if os.environ.get("BENCH_POSTGRES_URL") else ""


app = App(connector=PsycopgConnector(conninfo=_conninfo()))


@app.task(name="task")
async def task(data: dict[str, Any]) -> None:
    body.run(data)


class ProcrastinateAdapter(PostgresPeer):
    name = "procrastinate"
    label = "procrastinate, worker --concurrency 1"
    package = "procrastinate"
    bulk_api = "batch_defer_async"
    schema = SCHEMA

    async def install(self) -> None:
        installer = App(connector=PsycopgConnector(conninfo=self.postgres_url))
        async with installer.open_async():
            await installer.schema_manager.apply_schema_async()

    async def open(self) -> None:
        # The module's app was made before the bench database existed: give it a connector
        # to the database (procrastinate's own way, ``replace_connector``).
        self.replaced = app.replace_connector(PsycopgConnector(conninfo=self.postgres_url))
        self.replaced.__enter__()
        await app.open_async()

    async def asubmit(self, data: dict[str, Any]) -> None:
        await task.defer_async(data=data)

    async def asubmit_bulk(self, payloads: Sequence[dict[str, Any]]) -> None:
        await task.batch_defer_async(*({"data": data} for data in payloads))

    async def aclose(self) -> None:
        await app.close_async()
        self.replaced.__exit__(None, None, None)

    def worker_command(self) -> list[str]:
        return [
            str(BIN / "procrastinate"),
            "--app=peers.procrastinate_adapter.app",
            "worker",
            "--concurrency",
            "1",
        ]
