"""Reading a ``redis://`` URL: every mistake is refused when the queue is created.

redis-py ignores a database path it cannot read (``/abc`` silently means db 0) and passes an
unknown query parameter on to its connection class, where it fails much later; here both are
``InvalidURLError`` naming what is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.connection

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


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A checked Redis URL: what redis-py gets, and jobqueue's own parameters."""

    client_url: str
    namespace: str | None
    cluster: bool


def parse_redis_url(url: str) -> RedisURL:
    """Check ``redis://[[user]:password@]host[:port][/db][?namespace=NS&cluster=true&…]``
    (``rediss://`` for TLS) and split it; raises ``InvalidURLError`` saying what is wrong."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError as exc:
        raise InvalidURLError(f"bad Redis URL {safe_url(url)}: {exc}") from None
    if parts.scheme not in ("redis", "rediss"):
        raise InvalidURLError(f"bad Redis URL {safe_url(url)}: the scheme is redis or rediss")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise InvalidURLError(
            f"bad Redis URL {safe_url(url)}: the path names a database by number "
            f"(redis://host:6379/0), got {parts.path!r}"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    known = (*OUR_PARAMETERS, *REDIS_PY_PARAMETERS)
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
    passed_on = [(key, value) for key, value in query if key not in OUR_PARAMETERS]
    client_url = urlunsplit(parts._replace(query=urlencode(passed_on)))
    return RedisURL(client_url, namespace, cluster_text in _TRUE)


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unreadable URL>"
    if password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
