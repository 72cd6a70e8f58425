"""Which ``Host`` names the dashboard answers to: the defence against DNS rebinding.

A page on ``rebind.evil.example`` can make its name resolve to 127.0.0.1 and then talk to a
dashboard on this host from the visitor's browser: the connection comes from loopback and the
browser's ``Origin`` names the same host as its ``Host``, so neither proves anything. What the
attacker cannot choose is the name in ``Host``: it is the page's own. So a request is served
only when its ``Host`` is a loopback name or address (``localhost``, 127.0.0.0/8, ``[::1]``),
or a name the application listed in ``allowed_hosts`` (as Django's ``ALLOWED_HOSTS``), and a
cross-site ``Origin`` is checked against the same list, never against the request's ``Host``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from jobqueue.errors import InvalidSettingError

ANY_HOST = "*"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")

# An HTTP Host: a DNS name or IPv4 address, or an IPv6 address in brackets, then an optional
# port. No userinfo ("evil@127.0.0.1"), no path, no spaces: those are refused, not parsed.
_HOST = re.compile(r"^(?P<name>[a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(?::(?P<port>[0-9]{1,5}))?$")
_NAME = re.compile(r"^\.?[a-z0-9-]+(\.[a-z0-9-]+)*$")


def split_host(host: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a ``Host`` header value (the name lower-cased, without a final
    dot, an IPv6 address without its brackets), or ``None`` if it is not a valid one."""
    match = _HOST.match(host.strip().lower())
    if match is None:
        return None
    name = match["name"].rstrip(".")
    if name.startswith("["):
        name = name[1:-1]
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
    port = match["port"]
    if not name or (port is not None and int(port) > 65535):
        return None
    return name, None if port is None else int(port)


def is_loopback_name(name: str) -> bool:
    """Whether a host name (as :func:`split_host` returns it) can only mean this host."""
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # any other name is whatever its DNS says, an attacker's included
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def normalize_allowed(allowed_hosts: Iterable[str] | None) -> tuple[str, ...]:
    """The ``allowed_hosts`` setting checked and normalized: lower case, no final dot, IPv6
    addresses without brackets. ``"*"`` is any host, ``".example.com"`` that name and every
    name under it."""
    if allowed_hosts is None:
        return ()
    if isinstance(allowed_hosts, (str, bytes)):
        raise InvalidSettingError(
            f"allowed_hosts must be a list of host names, e.g. [{allowed_hosts!r}], "
            f"not a single str"
        )
    normalized: list[str] = []
    for entry in allowed_hosts:
        if not isinstance(entry, str) or not entry.strip():
            raise InvalidSettingError(
                f"allowed_hosts: each one must be a non-empty str, got {entry!r}"
            )
        if entry.strip() == ANY_HOST:
            normalized.append(ANY_HOST)
            continue
        name = entry.strip().lower()
        bracketed = split_host(name) if name.startswith("[") else None
        if bracketed is not None and bracketed[1] is None:
            name = bracketed[0]
        elif ":" in name:
            try:
                name = str(ipaddress.IPv6Address(name))
            except ValueError:
                name = ""
        else:
            name = name.rstrip(".") if name != "." else ""
        if not name or (":" not in name and not _NAME.match(name)):
            raise InvalidSettingError(
                f"allowed_hosts: {entry!r} is not a host name or address (no scheme, port "
                f"or path: e.g. 'jobs.example.com', '.example.com' or '10.0.0.5')"
            )
        normalized.append(name)
    return tuple(dict.fromkeys(normalized))


def _listed(name: str, allowed: tuple[str, ...]) -> bool:
    for pattern in allowed:
        if pattern in (ANY_HOST, name):
            return True
        if pattern.startswith(".") and (name == pattern[1:] or name.endswith(pattern)):
            return True
    return False


def host_allowed(host: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a request's ``Host`` header names this dashboard: a loopback name or address,
    or one of ``allowed`` (normalized). An empty or malformed ``Host`` never is."""
    if not host:
        return False
    parts = split_host(host)
    if parts is None:
        return False
    name = parts[0]
    return is_loopback_name(name) or _listed(name, allowed)


def origin_allowed(origin: str, host: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a browser's ``Origin`` is this dashboard's own: an http(s) origin whose host is
    allowed (as for ``Host``). With ``"*"`` allowed, every name is, so the origin must then
    name the same host and port as the request's ``Host``, as a same-origin request does."""
    scheme, separator, netloc = origin.strip().partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in ("http", "https"):  # "null" (sandboxed, file://) too
        return False
    sent_from = split_host(netloc)
    if sent_from is None:
        return False
    if ANY_HOST not in allowed:
        return is_loopback_name(sent_from[0]) or _listed(sent_from[0], allowed)
    request = split_host(host or "")
    if request is None:
        return False
    default = 443 if scheme == "https" else 80
    return (sent_from[0], sent_from[1] or default) == (request[0], request[1] or default)


def describe(allowed: tuple[str, ...]) -> str:
    """The accepted names, for messages."""
    return ", ".join([*LOOPBACK_NAMES, *(f"[{name}]" if ":" in name else name for name in allowed)])
