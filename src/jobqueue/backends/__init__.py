"""The built-in backends, registered through the same hook third-party backends use.

Each factory imports its module only when its scheme is used, so ``memory://`` needs no
Redis client, ``sqlite://`` no server, and only ``postgresql://`` needs psycopg.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from jobqueue.backend import Backend, BackendFactory, BackendOptions
from jobqueue.errors import ConfigurationError
from jobqueue.hooks import hookimpl

if TYPE_CHECKING:
    from jobqueue.aio_backend import AsyncBackend
    from jobqueue.engine import Engine

logger = logging.getLogger("jobqueue.backends")


def _memory(url: str, options: BackendOptions) -> Backend:
    from jobqueue.backends.memory import MemoryBackend

    return MemoryBackend.from_url(url, options)


def _redis(url: str, options: BackendOptions) -> Backend:
    from jobqueue.backends.redis import RedisBackend

    return RedisBackend.from_url(url, options)


def _sqlite(url: str, options: BackendOptions) -> Backend:
    from jobqueue.backends.sqlite import SQLiteBackend

    return SQLiteBackend.from_url(url, options)


POSTGRES_HINT = "the PostgreSQL backend needs psycopg 3: pip install 'jobqueue[postgres]'"


def _postgres(url: str, options: BackendOptions) -> Backend:
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(f"{POSTGRES_HINT} ({exc})") from None
    from jobqueue.backends.postgres import PostgresBackend

    return PostgresBackend.from_url(url, options)


@hookimpl
def jobqueue_register_backends() -> Mapping[str, BackendFactory]:
    sentinel = ("redis+sentinel", "rediss+sentinel", "redis-sentinel", "sentinel")
    return {
        "memory": _memory,
        "redis": _redis,
        "rediss": _redis,
        **dict.fromkeys(sentinel, _redis),  # Redis through Sentinel (backends/redis/url.py)
        "sqlite": _sqlite,
        "postgresql": _postgres,
        "postgres": _postgres,
    }


@hookimpl
def jobqueue_async_backend(backend: Engine) -> AsyncBackend | None:
    """Redis speaks asyncio natively when opened by URL (not a client handed in, nor a
    cluster), PostgreSQL always (psycopg's async connections); the other built-in backends
    run in threads."""
    store = backend.store
    postgres = sys.modules.get("jobqueue.backends.postgres")  # imported if the store is one
    if postgres is not None and isinstance(store, postgres.PostgresBackend):
        from jobqueue.backends.postgres.aio import AsyncPostgresBackend

        return AsyncPostgresBackend(store)
    from jobqueue.backends.redis import RedisBackend

    if not isinstance(store, RedisBackend):
        return None
    from jobqueue.backends.redis.aio import AsyncRedisBackend

    native = AsyncRedisBackend.for_backend(store)
    if native is None:
        logger.debug("Redis backend without a URL (or a cluster): using worker threads")
    return native
