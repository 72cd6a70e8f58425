"""Suite-wide checks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.backends.postgres_fixtures import drop_schema, new_schema, postgres_url
from tests.backends.redis_fixtures import delete_namespace, new_namespace, redis_url

__all__ = ["postgres_url", "redis_url"]  # the session fixtures, for backend_url's cases


@pytest.fixture(autouse=True)
def no_thread_left_running() -> Iterator[None]:
    """A test that leaves a non-daemon thread running (a dispatcher it never stopped) fails
    here: otherwise the interpreter would wait for that thread at exit, and the whole run
    would hang after its last test."""
    before = set(threading.enumerate())
    yield
    left = [
        thread
        for thread in threading.enumerate()
        if thread not in before and not thread.daemon and thread.is_alive()
    ]
    for thread in left:
        thread.join(5)
    still = [thread.name for thread in left if thread.is_alive()]
    assert not still, f"the test left non-daemon threads running: {still}"


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store on each backend: memory, a temp SQLite file, a new Redis namespace (its
    keys, and only those, deleted after), a new PostgreSQL schema (dropped after)."""
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.db'}"
    elif request.param == "postgres":
        base = request.getfixturevalue("postgres_url")
        schema = new_schema()
        yield f"{base}?schema={schema}"
        drop_schema(base, schema)
    else:
        base = request.getfixturevalue("redis_url")
        namespace = new_namespace()
        yield f"{base}?namespace={namespace}"
        delete_namespace(redis.Redis.from_url(base), namespace)
