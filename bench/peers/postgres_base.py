"""What the PostgreSQL peers share: the bench database's URL, a schema per library, and a
producer that lets go of its connections when asked.

The harness gives the bench database's URL as ``BENCH_POSTGRES_URL`` (``bench/postgres.py``);
each library keeps its tables in a schema of its own there, named by its adapter
(``schema``), reached through ``search_path`` in the connection's options
(:func:`schema_url`), or ``?schema=`` for jobqueue. Before each phase, ``reset`` closes the
producer, drops and re-creates the schema, installs the library's tables and opens the
producer again; ``release`` closes the producer before a worker's transactions are counted.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any, ClassVar

from peers import AsyncAdapter

ENV = "BENCH_POSTGRES_URL"


def database_url() -> str:
    url = os.environ.get(ENV)
    if not url:
        raise RuntimeError(f"{ENV} is not set: the harness creates the bench database")
    return url


def schema_url(schema: str) -> str:
    """The bench database's URL with ``search_path`` set to ``schema`` on every connection."""
    from postgres import with_query

    return with_query(database_url(), options=f"-c search_path={schema}")


def recreate_schema(schema: str) -> None:
    """Drop ``schema`` with everything in it and create it again, empty."""
    import psycopg

    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')


class PostgresPeer(AsyncAdapter):
    """A PostgreSQL peer whose producer is asyncio: implement ``install`` (the library's
    tables, in the schema just re-created), ``open``/``aclose`` (the producer) and
    ``asubmit``; ``asubmit_bulk`` where the library has a bulk API."""

    schema: ClassVar[str]
    on_redis = False
    on_postgres = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.opened = False

    @property
    def postgres_url(self) -> str:
        return schema_url(self.schema)

    async def install(self) -> None:
        raise NotImplementedError

    async def asubmit_bulk(self, payloads: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError

    def submit_bulk(self, payloads: Sequence[dict[str, Any]]) -> None:
        self.loop.run_until_complete(self.asubmit_bulk(payloads))

    def reset(self) -> None:
        self.release()
        recreate_schema(self.schema)
        self.loop.run_until_complete(self.install())
        self.loop.run_until_complete(self.open())
        self.opened = True

    def release(self) -> None:
        if self.opened:
            self.opened = False
            self.loop.run_until_complete(self.aclose())

    def close(self) -> None:
        self.release()
        self.loop.close()
