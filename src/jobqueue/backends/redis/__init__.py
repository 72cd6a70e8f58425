"""The Redis backend (``redis://``, ``rediss://``): see :mod:`jobqueue.backends.redis.backend`."""

from jobqueue.backends.redis.backend import RedisBackend

__all__ = ["RedisBackend"]
