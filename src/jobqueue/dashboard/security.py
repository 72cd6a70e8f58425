"""Who may use the dashboard, and what every answer carries.

One pure-ASGI middleware wraps the routes. For each HTTP request, in this order:

0. the ``Host`` header must be a loopback name or address, or one of ``allowed_hosts``
   (``hosts.py``): refused with 400 otherwise, before anything is read or changed;
1. authentication: a bearer ``token``, HTTP ``basic`` credentials (either one matching is
   enough when both are configured), then the host's ``authorize(request)`` callable. With
   none of the three configured only loopback clients are served: a dashboard started
   without credentials must not be readable from the network by accident;
2. ``read_only``: every unsafe method (POST, DELETE, ...) is refused;
3. cross-site checks on unsafe methods: an ``Origin`` header whose host is not an allowed
   one is refused,
   and the ``X-JobQueue-CSRF`` header must equal the app's token (served by ``GET
   /api/csrf``). The header is required even from API clients sending credentials: a browser
   attaches basic credentials (and, behind a proxy, cookies) by itself, so credentials alone
   do not prove the request was meant;
4. security headers on every answer, refusals included: the API's forbid loading anything,
   the pages' (``pages.py``) allow this app's own scripts and styles only.

The page shell and its static files hold no data, so a bearer token or basic credentials are
not asked for them (the page asks the user and sends them to the API); the loopback rule
and ``authorize`` still apply to them.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobqueue.dashboard.hosts import describe, host_allowed, origin_allowed
from jobqueue.dashboard.pages import PAGE_CSP, is_page_path

logger = logging.getLogger("jobqueue.dashboard")

CSRF_HEADER = "x-jobqueue-csrf"
PAGE_CLIENT_HEADER = "x-jobqueue-client"
"""Sent by the dashboard's own pages on every API request."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SECURITY_HEADERS: dict[str, str] = {
    # JSON only: nothing may load, run or frame what the API answers, even if a browser is
    # tricked into rendering it as a page.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

PAGE_HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP}

Authorize = Callable[[Request], bool]

NO_CREDENTIALS_MESSAGE = (
    "this dashboard has no credentials configured, so it answers only clients on this host "
    "(loopback); to serve others pass token=..., basic=(user, password) or authorize=... "
    "to jobqueue.dashboard.create_app"
)


def is_loopback(host: str | None) -> bool:
    """Whether an ASGI client host is a loopback address (127.0.0.0/8, ::1, or IPv4 ones
    mapped into IPv6). Names such as ``testclient`` are not addresses, so not loopback."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _same_secret(given: str, expected: str) -> bool:
    # Bytes, since compare_digest refuses non-ASCII str; constant time either way.
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _route_path(scope: Scope) -> str:
    """The request's path below the app's mount point."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


def _refusal(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class SecurityMiddleware:
    """Authenticate, enforce read-only and cross-site rules, add security headers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        csrf_token: str,
        token: str | None = None,
        basic: tuple[str, str] | None = None,
        authorize: Authorize | None = None,
        read_only: bool = False,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.csrf_token = csrf_token
        self.token = token
        self.basic = basic
        self.authorize = authorize
        self.read_only = read_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan; the dashboard has no websocket routes
            await self.app(scope, receive, send)
            return

        page = is_page_path(_route_path(scope))
        extra = PAGE_HEADERS if page else SECURITY_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        refusal = self.refuse(scope)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def refuse(self, scope: Scope) -> JSONResponse | None:
        """The answer refusing this request, or ``None`` to serve it."""
        headers = Headers(scope=scope)
        method = str(scope["method"]).upper()
        refusal = self.check_host(headers)
        if refusal is not None:
            return refusal
        page = method in SAFE_METHODS and is_page_path(_route_path(scope))
        refusal = self.authenticate(scope, headers, page)
        if refusal is not None:
            return refusal
        if method in SAFE_METHODS:
            return None
        if self.read_only:
            return _refusal(403, "this dashboard is read-only")
        origin = headers.get("origin")
        if origin is not None and not origin_allowed(
            origin, headers.get("host"), self.allowed_hosts
        ):
            logger.warning("refused a %s from foreign origin %r", method, origin[:200])
            return _refusal(403, "cross-origin request refused: the Origin is not this host")
        given = headers.get(CSRF_HEADER)
        if given is None or not _same_secret(given, self.csrf_token):
            return _refusal(
                403,
                "missing or wrong X-JobQueue-CSRF header: send the token of GET /api/csrf",
            )
        return None

    def check_host(self, headers: Headers) -> JSONResponse | None:
        """Refuse a ``Host`` this dashboard does not answer to: under another name a page
        of someone else's (DNS rebinding) would be talking to it from the user's browser."""
        hosts = headers.getlist("host")
        if len(hosts) == 1 and host_allowed(hosts[0], self.allowed_hosts):
            return None
        shown = repr(hosts[0][:100]) if len(hosts) == 1 else f"{len(hosts)} Host headers"
        logger.warning("refused a request for Host %s", shown)
        if len(hosts) > 1:
            problem = "a request with several Host headers is refused"
        elif not hosts or not hosts[0].strip():
            problem = "a request without a Host header is refused"
        else:
            problem = f"Host {shown} is not one this dashboard answers to"
        return _refusal(
            400,
            f"{problem}: allowed are {describe(self.allowed_hosts)}; another name a browser "
            "uses for it must be listed in allowed_hosts (jobqueue dashboard --allowed-host "
            "NAME), which needs credentials",
        )

    def authenticate(self, scope: Scope, headers: Headers, page: bool) -> JSONResponse | None:
        if self.token is None and self.basic is None and self.authorize is None:
            client = scope.get("client")
            if is_loopback(client[0] if client else None):
                return None
            logger.warning("refused a non-loopback client %r: no credentials configured", client)
            return _refusal(403, NO_CREDENTIALS_MESSAGE)
        needs_credentials = self.token is not None or self.basic is not None
        if (
            needs_credentials
            and not page
            and not self.credentials_match(headers.get("authorization", ""))
        ):
            challenges = []
            if self.token is not None:
                challenges.append('Bearer realm="jobqueue"')
            if self.basic is not None:
                # The pages ask for credentials themselves: a Basic challenge would make the
                # browser open its own prompt over them (and stall the request until it's
                # answered), so they are told the scheme under a name browsers don't know.
                scheme = "JobQueue-Basic" if headers.get(PAGE_CLIENT_HEADER) else "Basic"
                challenges.append(f'{scheme} realm="jobqueue", charset="UTF-8"')
            return _refusal(
                401,
                "authentication required",
                {"WWW-Authenticate": ", ".join(challenges)},
            )
        if self.authorize is not None and not self.authorize(Request(scope)):
            return _refusal(403, "not authorized by this application")
        return None

    def credentials_match(self, authorization: str) -> bool:
        scheme, _, value = authorization.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer" and self.token is not None:
            return _same_secret(value, self.token)
        if scheme == "basic" and self.basic is not None:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, colon, password = decoded.partition(":")
            if not colon:
                return False
            expected_user, expected_password = self.basic
            # Both compared, always: which half was wrong must not show in the timing.
            user_ok = _same_secret(user, expected_user)
            password_ok = _same_secret(password, expected_password)
            return user_ok and password_ok
        return False
