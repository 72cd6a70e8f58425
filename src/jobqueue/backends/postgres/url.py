"""``postgresql://`` and ``postgres://`` URLs: our options taken out, the rest left to libpq.

Every query parameter libpq knows (``sslmode``, ``connect_timeout``, ``application_name``...)
passes through to psycopg unchanged; libpq itself checks them, so a misspelt one is refused
here, before anything connects. Ours are taken out first:

- ``schema``: the PostgreSQL schema holding the queue's tables (default ``jobqueue``); one
  database can hold many queues, one per schema. Lower-case letters, digits and ``_``.
- ``listen``: ``true`` (default) or ``false``. ``false`` opens no LISTEN connection, for
  PgBouncer in transaction mode (which never supports LISTEN); idle dispatchers then notice
  other processes' jobs by polling.
- ``pool_size``: connections per backend instance (default 4; one of them writes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jobqueue.errors import InvalidURLError

SCHEMES = ("postgresql", "postgres")
DEFAULT_SCHEMA = "jobqueue"
DEFAULT_POOL_SIZE = 4
OURS = ("schema", "listen", "pool_size")

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class PostgresURL:
    """A parsed URL: ``conninfo`` for psycopg (our options removed), and ours."""

    conninfo: str
    schema: str = DEFAULT_SCHEMA
    listen: bool = True
    pool_size: int = DEFAULT_POOL_SIZE

    @property
    def database(self) -> str:
        """The URL without credentials or options: which database, for messages and for
        sharing one LISTEN connection per database in a process."""
        parts = urlsplit(self.conninfo)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        return f"postgresql://{host}{port}{parts.path or '/'}"

    @property
    def where(self) -> str:
        return f"{self.database} schema {self.schema}"


def check_schema(schema: str) -> str:
    if not _SCHEMA.match(schema):
        raise InvalidURLError(
            f"bad PostgreSQL schema name {schema!r}: use lower-case letters, digits and _ "
            "(at most 63, not starting with a digit)"
        )
    return schema


def parse(url: str, *, schema: str | None = None) -> PostgresURL:
    """Split ``url`` into psycopg's conninfo and our options (``schema`` is the default
    when the URL names none). Raises ``InvalidURLError`` with a one-line message."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- validates the port
    except ValueError as exc:
        raise InvalidURLError(f"bad PostgreSQL URL {_shown(url)!r}: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise InvalidURLError(
            f"bad PostgreSQL URL {_shown(url)!r}: use postgresql://user@host:5432/dbname"
        )
    ours: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in OURS:
            ours[key] = value
        else:
            rest.append((key, value))
    found = PostgresURL(
        conninfo=urlunsplit(parts._replace(query=urlencode(rest))),
        schema=check_schema(ours.get("schema") or schema or DEFAULT_SCHEMA),
        listen=_flag("listen", ours.get("listen", "true")),
        pool_size=_size(ours.get("pool_size", str(DEFAULT_POOL_SIZE))),
    )
    _check_conninfo(found.conninfo)
    return found


def _flag(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidURLError(f"PostgreSQL URL option {name}={value!r}: use true or false")


def _size(value: str) -> int:
    if not value.isdigit() or not 2 <= int(value) <= 1000:
        raise InvalidURLError(f"PostgreSQL URL option pool_size={value!r}: use 2 to 1000")
    return int(value)


def _check_conninfo(conninfo: str) -> None:
    """libpq's own parser: an unknown parameter or a malformed URL fails here, not at the
    first connection."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        message = " ".join(str(exc).split())
        raise InvalidURLError(f"bad PostgreSQL URL {_shown(conninfo)!r}: {message}") from None


def _shown(url: str) -> str:
    """The URL with its password masked, for messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return url
