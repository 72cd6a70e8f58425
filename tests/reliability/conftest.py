"""Fixtures shared by every reliability test (defined in support.py)."""

from tests.reliability.support import namespace, own_redis, processes, redis_url

__all__ = ["namespace", "own_redis", "processes", "redis_url"]
