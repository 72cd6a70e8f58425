"""Talking to Redis: each thread's held connection, commands packed by hiredis, blocking pops
in slices, redis-py's errors as ours, and the submit calls' idempotency lanes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import redis
import redis.exceptions

from jobqueue.backends.redis import sentinel
from jobqueue.backends.redis.cluster import REFUSALS as CLUSTER_REFUSALS
from jobqueue.backends.redis.cluster import cluster_refused, is_refusal
from jobqueue.backends.redis.codec import Command, Reply
from jobqueue.errors import (
    BackendError,
    BackendFullError,
    BackendUnavailableError,
    TLSVerificationError,
)

_pack_command: Callable[..., bytes] | None
try:  # the optional C packer (the hiredis extra): redis-py's own wrapper costs ~4 us a call
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover - hiredis is installed for the tests
    _pack_command = None

RedisClient = Any  # redis.Redis or redis.cluster.RedisCluster (their stubs share no base)

_MAX_BLOCK = 20.0  # longest single blocking call; must stay below the socket timeout


class Connection(Protocol):
    """What the backend uses of a redis-py connection."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    def send_command(self, *args: object) -> None: ...

    def send_packed_command(self, command: list[bytes]) -> None: ...

    def pack_commands(self, commands: list[Command]) -> list[bytes]: ...

    def read_response(self) -> Reply: ...

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...


class HeldConnection:
    """The pooled connection one thread talks on. It goes back to the pool when its thread
    ends (the thread-local holding it is dropped): dispatchers start threads for every run,
    and connections kept by dead threads would exhaust the pool."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self.pool = pool
        self.pid = os.getpid()
        self.connection: Connection = pool.get_connection()

    def __del__(self) -> None:
        if self.pid == os.getpid():
            with contextlib.suppress(Exception):  # at interpreter exit the pool may be gone
                self.pool.release(self.connection)  # type: ignore[arg-type]


class Connections:
    """Each thread's own connection of a plain ``redis.Redis`` client's pool. Talking on it
    directly skips redis-py's per-command pool checkout, retry and metrics wrapping (a third
    of a round trip's client time)."""

    def __init__(self, client: redis.Redis, watch: sentinel.PrimaryWatch | None) -> None:
        self._pool = client.connection_pool
        self._local = threading.local()
        self._primary_watch = watch

    def held(self) -> Connection:
        """This thread's connection, on the primary the sentinels name (if they do)."""
        held: HeldConnection | None = getattr(self._local, "held", None)
        if held is None or held.pid != os.getpid():  # a forked child never shares a socket
            held = self._local.held = HeldConnection(self._pool)
        if self._primary_watch is not None:
            self._primary_watch.check(held.connection)
        if getattr(held.connection, "_sock", True) is None:
            # Dropped earlier: connect through connect(), not the lazy connect of a send,
            # which would go back to the old address -- a Sentinel pool's connect() asks
            # the sentinels where the primary is now.
            held.connection.connect()
        return held.connection


def send_packed(connection: Connection, packed: bytes) -> bool:
    """Send a packed command; ``False`` (the connection closed) if the connection dropped."""
    try:
        connection.send_packed_command([packed])
        return True
    except redis.exceptions.ConnectionError:
        connection.disconnect()
        return False
    except BaseException:  # part of it may have left: never reuse the socket
        connection.disconnect()
        raise


def packed(command: Command) -> bytes | None:
    """The command in the Redis protocol, packed by hiredis directly (``None`` without it, or
    for an argument it cannot pack: ``send_command`` packs those)."""
    if _pack_command is None:
        return None
    try:
        return _pack_command(command)
    except TypeError:
        return None


def block_slice(client: RedisClient) -> float:
    """How long one BLPOP may block: below the client's socket timeout, or redis-py would
    report the silent wait as a dead connection."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", {})
    socket_timeout = kwargs.get("socket_timeout") if isinstance(kwargs, dict) else None
    if not socket_timeout:
        return _MAX_BLOCK
    return max(min(_MAX_BLOCK, float(socket_timeout) * 0.8), 0.05)


def block_slices(timeout: float, longest: float) -> Iterator[float]:
    """The timeouts of the BLPOPs that together wait ``timeout`` seconds, each at most
    ``longest``: Redis reads the timeout as seconds with decimals, and 0 would block forever.
    Each is computed when asked for, from the time left."""
    until = time.monotonic() + timeout
    while True:
        left = until - time.monotonic()
        if left <= 0.0005:
            return
        yield max(round(min(left, longest), 3), 0.001)


# -- lanes ------------------------------------------------------------------------------------


class Lane:
    """One sequence of submit calls, never two in flight at once (see docs/redis-layout.md):
    its random id names its idempotency key, ``calls`` numbers its calls."""

    __slots__ = ("calls", "id", "pid")

    def __init__(self) -> None:
        self.id = secrets.token_hex(8)
        self.calls = 0
        self.pid = os.getpid()


class Lanes:
    """A pool of lanes: a submit takes one for its duration and gives it back, so a lane is
    never used by two calls at once (threads, asyncio tasks) and Redis keeps one key per
    lane in use rather than one per call. A forked child starts a pool of its own: it must
    never number calls in a lane its parent still uses."""

    def __init__(self) -> None:
        self._free: list[Lane] = []
        self._pid = os.getpid()

    def take(self) -> Lane:
        pid = os.getpid()
        if pid != self._pid:
            self._free, self._pid = [], pid
        try:
            return self._free.pop()  # atomic: threads never get the same lane
        except IndexError:
            return Lane()

    def give(self, lane: Lane) -> None:
        if lane.pid == self._pid:
            self._free.append(lane)


# -- errors -----------------------------------------------------------------------------------


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """redis-py's errors (sync and asyncio raise the same classes) as ours."""
    try:
        yield
    except CLUSTER_REFUSALS as exc:
        raise cluster_refused(exc) from exc
    except (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        redis.exceptions.ReadOnlyError,  # a primary demoted to a replica: not the primary now
    ) as exc:
        problem = _certificate_problem(exc)
        if problem is not None:
            raise TLSVerificationError(
                f"Redis's TLS certificate failed verification ({problem}); give the CA "
                "that signed it with ?ssl_ca_certs=/path/ca.pem, or fix the server's "
                "certificate or host name"
            ) from exc
        reason = sentinel.describe(exc) or f"{type(exc).__name__}: {exc}"
        raise BackendUnavailableError(
            f"Redis did not answer ({reason}); a write may or may not "
            "have been applied — retry once it is reachable (a unique_key makes a "
            "resubmit safe)"
        ) from exc
    except redis.exceptions.RedisError as exc:
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or str(exc).startswith("OOM"):
            raise BackendFullError(
                "Redis is full (used memory is over its maxmemory) and refused the new jobs; "
                "nothing was stored. Raise maxmemory, keep finished jobs for less time "
                "(Retention), or let the dispatchers drain the queue, then submit again"
            ) from exc
        if is_refusal(exc):
            raise cluster_refused(exc) from exc
        raise BackendError(f"Redis refused the operation: {exc}") from exc


def _certificate_problem(exc: BaseException) -> str | None:
    """What failed in TLS certificate verification, if that is why the connection failed
    (redis-py re-raises the ``ssl`` error as a ConnectionError, keeping it as context)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None
