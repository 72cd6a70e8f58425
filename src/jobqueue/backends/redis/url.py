"""Reading a ``redis://`` URL: every mistake is refused when the queue is created.

redis-py ignores a database path it cannot read (``/abc`` silently means db 0) and passes an
unknown query parameter on to its connection class, where it fails much later; here both are
``InvalidURLError`` naming what is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.connection

from jobqueue.backend import BackendOptions
from jobqueue.backends.redis.eviction import pop_check_eviction
from jobqueue.errors import InvalidURLError

OUR_PARAMETERS = ("namespace", "cluster")
"""Query parameters jobqueue reads itself; the others go to redis-py."""

REDIS_PY_PARAMETERS = tuple(
    sorted(
        {
            *redis.connection.URL_QUERY_ARGUMENT_PARSERS,
            "client_name",
            "ssl_ca_certs",
            "ssl_ca_data",
            "ssl_ca_path",
            "ssl_cert_reqs",
            "ssl_certfile",
            "ssl_keyfile",
            "ssl_password",
        }
        - {"db"}  # the path says which database
    )
)

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel", "redis-sentinel", "sentinel")
"""Redis through Sentinel: ``redis+sentinel://`` (``rediss+sentinel://`` with TLS); the other
two spellings, which other tools use, mean ``redis+sentinel://``."""
SENTINEL_PARAMETERS = ("sentinel_username", "sentinel_password")
"""Credentials of the sentinels themselves (those of the URL's user part are the servers')."""
REPLICATION_PARAMETERS = ("replicas", "replica_timeout")
"""Replica acknowledgement (``jobqueue.backends.redis.replication``)."""


@dataclass(frozen=True, slots=True)
class SentinelSpec:
    """Where the sentinels are and which service (the master's name) to ask them for."""

    addresses: tuple[tuple[str, int], ...]
    service: str
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A checked Redis URL: what redis-py gets, and jobqueue's own parameters."""

    client_url: str
    namespace: str | None
    cluster: bool
    sentinel: SentinelSpec | None = None
    """Set for a Sentinel URL: ``client_url`` then holds the servers' credentials, database
    and parameters (its host is the first sentinel's, unused)."""
    replicas: int = 0
    replica_timeout: float = 1.0


def parse_redis_url(url: str) -> RedisURL:
    """Check ``redis://[[user]:password@]host[:port][/db][?namespace=NS&cluster=true&…]``
    (``rediss://`` for TLS), or a Sentinel URL
    ``redis+sentinel://[[user]:password@]host:port[,host:port…]/SERVICE[/db][?…]``, and split
    it; raises ``InvalidURLError`` saying what is wrong."""
    scheme = url.partition("://")[0].lower()
    if scheme in SENTINEL_SCHEMES:
        plain, sentinel = _sentinel_url(url, scheme)
        try:
            return _parse(plain, sentinel)
        except InvalidURLError as exc:  # name the URL as given, not the plain one made of it
            raise InvalidURLError(str(exc).replace(safe_url(plain), safe_url(url))) from None
    return _parse(url, None)


def _parse(url: str, sentinel: SentinelSpec | None) -> RedisURL:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError as exc:
        raise InvalidURLError(f"bad Redis URL {safe_url(url)}: {exc}") from None
    if parts.scheme not in ("redis", "rediss"):
        raise InvalidURLError(
            f"bad Redis URL {safe_url(url)}: the scheme is redis, rediss or redis+sentinel"
        )
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise InvalidURLError(
            f"bad Redis URL {safe_url(url)}: the path names a database by number "
            f"(redis://host:6379/0), got {parts.path!r}"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours_too = (*REPLICATION_PARAMETERS, *(SENTINEL_PARAMETERS if sentinel else ()))
    known = (*OUR_PARAMETERS, *ours_too, *REDIS_PY_PARAMETERS)
    unknown = sorted({key for key, _ in query} - set(known))
    if unknown:
        raise InvalidURLError(
            f"unknown Redis URL parameter(s) {', '.join(unknown)} in {safe_url(url)}; "
            f"known: {', '.join(known)}"
        )
    ours = dict(query)
    cluster_text = ours.get("cluster", "").lower()
    if cluster_text not in _TRUE + _FALSE:
        raise InvalidURLError(f"cluster= takes true or false, got {ours['cluster']!r}")
    namespace = ours.get("namespace")
    if namespace is not None and (not namespace or any(c in namespace for c in "{}")):
        raise InvalidURLError(f"namespace= must be non-empty without braces, got {namespace!r}")
    if sentinel is not None and cluster_text in _TRUE:
        raise InvalidURLError("cluster=true and Sentinel exclude each other")
    if sentinel is not None:
        sentinel = SentinelSpec(
            sentinel.addresses,
            sentinel.service,
            ours.get("sentinel_username") or None,
            ours.get("sentinel_password") or None,
        )
    replicas, replica_timeout = _replication(ours)
    passed_on = [(key, value) for key, value in query if key in REDIS_PY_PARAMETERS]
    client_url = urlunsplit(parts._replace(query=urlencode(passed_on)))
    return RedisURL(
        client_url, namespace, cluster_text in _TRUE, sentinel, replicas, replica_timeout
    )


def _sentinel_url(url: str, scheme: str) -> tuple[str, SentinelSpec]:
    """A Sentinel URL as a plain one for the checks above (``redis://`` or ``rediss://``,
    the first sentinel as its host, the database as its path) and the sentinels' part."""
    rest = url.partition("://")[2]
    netloc, slash, tail = rest.partition("/")
    path, mark, query = tail.partition("?")
    userinfo, at, hosts = netloc.rpartition("@")
    addresses = []
    for host in hosts.split(","):
        try:
            parts = urlsplit(f"//{host}")
            name, port = parts.hostname, parts.port or 26379
        except ValueError as exc:
            raise InvalidURLError(f"bad Sentinel URL {safe_url(url)}: {exc}") from None
        if not name:
            raise InvalidURLError(
                f"bad Sentinel URL {safe_url(url)}: give the sentinels as host:port,host:port"
            )
        addresses.append((name, port))
    service, _, database = path.partition("/")
    if not slash or not service:
        raise InvalidURLError(
            f"bad Sentinel URL {safe_url(url)}: the path names the service (the master's name "
            "in the sentinels' configuration), e.g. redis+sentinel://h1:26379,h2:26379/mymaster/0"
        )
    plain = "rediss" if scheme == "rediss+sentinel" else "redis"
    first = hosts.split(",")[0]
    plain_url = f"{plain}://{userinfo}{at}{first}/{database}{mark}{query}"
    return plain_url, SentinelSpec(tuple(addresses), service)


def _replication(ours: dict[str, str]) -> tuple[int, float]:
    """``replicas=N`` and ``replica_timeout=SECONDS``, checked."""
    text = ours.get("replicas", "0")
    if not text.isdigit():
        raise InvalidURLError(f"replicas= takes a whole number >= 0, got {text!r}")
    timeout_text = ours.get("replica_timeout", "1")
    try:
        timeout = float(timeout_text)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout < 3600:
        raise InvalidURLError(
            f"replica_timeout= takes seconds (> 0, below an hour), got {timeout_text!r}"
        )
    return int(text), timeout


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unreadable URL>"
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "sentinel_password" for key, _ in query):  # the sentinels' password
        hidden = [(k, "***" if k == "sentinel_password" else v) for k, v in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    elif password is None:
        return url
    if password is None:
        return urlunsplit(parts)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


_SOCKET_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a Redis URL says: the URL for redis-py, cluster or not, namespace, client settings,
    the sentinels to ask for the primary (``None``: the URL's host is the server) and how
    many replicas must acknowledge each write (``replication``)."""

    url: str
    cluster: bool
    namespace: str | None
    settings: dict[str, Any]
    sentinel: SentinelSpec | None = None
    replicas: int = 0
    replica_timeout: float = 1.0


def parse_url(url: str, options: BackendOptions) -> RedisTarget:
    """Check a Redis URL and split our query parameters (``namespace``, ``cluster``) off it;
    the sync and the asyncio clients are opened from the same target so they reach the same
    queue. A malformed URL raises ``InvalidURLError``."""
    parsed = parse_redis_url(pop_check_eviction(url)[0])  # check_eviction: from_url reads it
    settings: dict[str, Any] = {
        "socket_connect_timeout": 5.0,
        "socket_timeout": _SOCKET_TIMEOUT,
        "socket_keepalive": True,
        "health_check_interval": 15,
    }
    namespace = parsed.namespace or options.namespace
    if parsed.replicas and parsed.cluster:
        raise InvalidURLError("replicas= is not supported with cluster=true")
    return RedisTarget(
        parsed.client_url,
        parsed.cluster,
        namespace,
        settings,
        parsed.sentinel,
        parsed.replicas,
        parsed.replica_timeout,
    )
