"""The built-in backends, registered through the same hook third-party backends use.

Each factory imports its module only when its scheme is used, so ``memory://`` needs no
Redis client and ``sqlite://`` no server.
"""

from __future__ import annotations

from collections.abc import Mapping

from jobqueue.backend import Backend, BackendFactory, BackendOptions
from jobqueue.hooks import hookimpl


def _memory(url: str, options: BackendOptions) -> Backend:
    from jobqueue.backends.memory import MemoryBackend

    return MemoryBackend.from_url(url, options)


def _redis(url: str, options: BackendOptions) -> Backend:
    from jobqueue.backends.redis import RedisBackend

    return RedisBackend.from_url(url, options)


def _sqlite(url: str, options: BackendOptions) -> Backend:
    from jobqueue.backends.sqlite import SQLiteBackend

    return SQLiteBackend.from_url(url, options)


@hookimpl
def jobqueue_register_backends() -> Mapping[str, BackendFactory]:
    sentinel = ("redis+sentinel", "rediss+sentinel", "redis-sentinel", "sentinel")
    return {
        "memory": _memory,
        "redis": _redis,
        "rediss": _redis,
        **dict.fromkeys(sentinel, _redis),  # Redis through Sentinel (backends/redis/url.py)
        "sqlite": _sqlite,
    }
