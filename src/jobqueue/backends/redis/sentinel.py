"""Redis through Sentinel: clients that find the current primary by asking the sentinels.

Everything is redis-py's own Sentinel support (``redis.sentinel`` and
``redis.asyncio.sentinel``): the client's pool asks the sentinels for the primary's address
whenever it opens a connection, so a failover needs no restart. A connection to a primary
that died fails (``ConnectionError``); one to a primary that was demoted answers writes with
READONLY, or unblocks a BLPOP with UNBLOCKED, which redis-py turns into a ``ConnectionError``
after closing the connection. Either way the backend's next connection goes where the
sentinels now point, and the call in flight ends in ``BackendUnavailableError`` (or is sent
again, marked as a repeat, when that is safe: see ``RedisBackend._execute``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Protocol

import redis.asyncio.sentinel
import redis.connection
import redis.exceptions
import redis.sentinel

from jobqueue.backends.redis.url import SentinelSpec

log = logging.getLogger("jobqueue.backends.redis.sentinel")

# Connection settings that make no sense for a pool Sentinel manages (it sets the address
# and the connection class itself).
_NOT_PASSED = ("host", "port", "connection_class", "path")


def server_settings(client_url: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The servers' connection settings: the checked URL's credentials, database, TLS and
    parameters (read by redis-py's own URL parser), over jobqueue's defaults."""
    parsed: dict[str, Any] = redis.connection.parse_url(client_url)  # type: ignore[no-untyped-call]
    tls = client_url.startswith("rediss://")
    kwargs = {**settings, **{k: v for k, v in parsed.items() if k not in _NOT_PASSED}}
    if tls:
        kwargs["ssl"] = True  # SentinelConnectionPool picks its TLS connection class by it
    return kwargs


def sentinel_settings(spec: SentinelSpec, servers: dict[str, Any]) -> dict[str, Any]:
    """How to reach the sentinels: the servers' timeouts and TLS, their own credentials."""
    kwargs = {k: v for k, v in servers.items() if k.startswith(("socket_", "ssl")) and k != "ssl"}
    if servers.get("ssl"):
        kwargs["ssl"] = True
    else:  # ssl_* settings without TLS would be refused by a plain connection
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("ssl")}
    if spec.username is not None:
        kwargs["username"] = spec.username
    if spec.password is not None:
        kwargs["password"] = spec.password
    return kwargs


def open_client(spec: SentinelSpec, client_url: str, settings: dict[str, Any]) -> redis.Redis:
    """A ``redis.Redis`` on the service's current primary, following failovers."""
    servers = server_settings(client_url, settings)
    sentinel = redis.sentinel.Sentinel(
        list(spec.addresses), sentinel_kwargs=sentinel_settings(spec, servers)
    )
    client: redis.Redis = sentinel.master_for(spec.service, **servers)
    return client


def open_async_client(
    spec: SentinelSpec, client_url: str, settings: dict[str, Any]
) -> redis.asyncio.Redis:
    """The same for ``redis.asyncio`` (one per event loop, as the backend opens them)."""
    servers = server_settings(client_url, settings)
    sentinel = redis.asyncio.sentinel.Sentinel(
        list(spec.addresses), sentinel_kwargs=sentinel_settings(spec, servers)
    )
    client: redis.asyncio.Redis = sentinel.master_for(spec.service, **servers)
    return client


CHECK_SECONDS = 1.0
"""How often a backend asks the sentinels where the primary is, for its held connections."""
BLOCK_SLICE = 2.0
"""The longest BLPOP on a Sentinel client: a wait on a primary that was switched away from
(it stays writable until the sentinels reconfigure it, seconds later) moves within this."""


class ServerConnection(Protocol):
    """What ``PrimaryWatch`` reads of a held redis-py connection."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    def disconnect(self) -> None: ...


class PrimaryWatch:
    """Moves held connections to the primary the sentinels name now. redis-py asks the
    sentinels only when a connection opens; a connection held open (each thread's, see
    ``connection.Connections``) to a primary that a failover left alive -- a manual
    or coordinated failover, a partition -- would go on writing there until the sentinels
    demote it. At most once a ``CHECK_SECONDS`` per backend it asks them (one round trip),
    and a held connection to another address is closed, to reopen at the new one."""

    def __init__(self, pool: redis.sentinel.SentinelConnectionPool) -> None:
        self.pool = pool
        self.checked = float("-inf")
        self.address: tuple[str, int] | None = None

    def check(self, connection: ServerConnection) -> None:
        now = time.monotonic()
        if now - self.checked >= CHECK_SECONDS:
            self.checked = now
            try:
                host, port = self.pool.get_master_address()  # type: ignore[no-untyped-call]
                self.address = (str(host), int(port))
            except redis.exceptions.ConnectionError:  # no sentinel answers: keep what is held
                return
        if self.address is None or getattr(connection, "_sock", None) is None:
            return
        if (str(connection.host), int(connection.port)) != self.address:
            log.info(
                "Sentinel names %s:%s as the primary now; leaving %s:%s",
                *self.address,
                connection.host,
                connection.port,
            )
            connection.disconnect()


def watch_for(client: object) -> PrimaryWatch | None:
    """A ``PrimaryWatch`` for a client whose pool Sentinel manages, else ``None``."""
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, redis.sentinel.SentinelConnectionPool):
        return PrimaryWatch(pool)
    return None


class AsyncPrimaryWatch:
    """``PrimaryWatch`` for a ``redis.asyncio`` client: its pool closes its idle connections
    itself when it learns of a new primary, so asking it (at most once a ``CHECK_SECONDS``)
    is enough -- the facade holds no connection between two commands."""

    def __init__(self) -> None:
        self.checked = float("-inf")

    async def check(self, client: object) -> None:
        pool = getattr(client, "connection_pool", None)
        if not isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool):
            return
        now = time.monotonic()
        if now - self.checked < CHECK_SECONDS:
            return
        self.checked = now
        with contextlib.suppress(redis.exceptions.ConnectionError):  # no sentinel answers
            await pool.get_master_address()  # type: ignore[no-untyped-call]


def describe(exc: BaseException) -> str | None:
    """A short text for redis-py's "no master found" error (its own names each sentinel by
    its client's whole repr), else ``None``."""
    if type(exc).__name__ != "MasterNotFoundError":
        return None
    head, _, errors = str(exc).partition(" : ")
    reasons = [error.rpartition(" - ")[2] for error in errors.split(", <") if error]
    said = f" ({'; '.join(reasons)})" if reasons else " (they know of no live primary)"
    return f"{head}: no sentinel named the primary{said}"


def close_sentinels(client: object) -> None:
    """Close the connections to the sentinels of a client ``open_client`` made (closing the
    client closes only its connections to the servers)."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    if isinstance(manager, redis.sentinel.Sentinel):
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            manager.close()


async def aclose_sentinels(client: object) -> None:
    """The same for a client ``open_async_client`` made."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    if isinstance(manager, redis.asyncio.sentinel.Sentinel):
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await manager.aclose()
