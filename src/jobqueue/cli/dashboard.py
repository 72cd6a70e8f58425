"""``jobqueue dashboard``: serve the dashboard of a queue on its own, with uvicorn.

Credentials come from the environment, never from the command line (where ``ps`` shows
them to every user of the host): a bearer token from ``$JOBQUEUE_DASHBOARD_TOKEN`` and
``user:password`` from ``$JOBQUEUE_DASHBOARD_BASIC`` (other variables with ``--token-env``
and ``--basic-env``). Without credentials it only listens on a loopback address.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING

from jobqueue.errors import ConfigurationError
from jobqueue.queue import JobQueue

if TYPE_CHECKING:
    import uvicorn
    from starlette.requests import Request
    from starlette.types import ASGIApp

AddCommand = Callable[[str, str], argparse.ArgumentParser]

TOKEN_ENV = "JOBQUEUE_DASHBOARD_TOKEN"
BASIC_ENV = "JOBQUEUE_DASHBOARD_BASIC"
INSTALL_HINT = "the dashboard needs starlette and uvicorn: pip install 'jobqueue[dashboard]'"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Path segments of a URL prefix: no "{...}" (Starlette would read a path parameter), no
# query or fragment, no "." or ".." segment a browser would fold away.
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)*$")
GRACEFUL_SHUTDOWN_SECONDS = 10


def add_dashboard_command(command: AddCommand) -> None:
    dashboard = command(
        "dashboard", "serve the dashboard of the queue (needs jobqueue[dashboard]) until SIGTERM"
    )
    dashboard.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (127.0.0.1); any other than loopback needs credentials",
    )
    dashboard.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    dashboard.add_argument(
        "--read-only", action="store_true", help="refuse every change (retry, cancel, ...)"
    )
    dashboard.add_argument(
        "--token-env",
        metavar="NAME",
        help=f"environment variable holding the bearer token (default {TOKEN_ENV})",
    )
    dashboard.add_argument(
        "--basic-env",
        metavar="NAME",
        help=f"environment variable holding basic credentials user:password (default {BASIC_ENV})",
    )
    dashboard.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a name browsers use for the dashboard, accepted in the Host header besides "
        "localhost, 127.0.0.1 and [::1] and the --host given (repeatable; '*' for any; "
        "needs credentials)",
    )
    dashboard.add_argument(
        "--prefix", default="", metavar="PATH", help="serve under this path, e.g. /jobqueue"
    )
    dashboard.set_defaults(command=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace, queue: JobQueue) -> int:
    try:
        import uvicorn

        from jobqueue.dashboard import create_app
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] in ("starlette", "uvicorn"):
            raise ConfigurationError(INSTALL_HINT) from None
        raise
    if not 0 <= args.port <= 65535:
        raise ConfigurationError(f"--port must be from 0 to 65535, got {args.port}")
    host = args.host.strip()
    if not host:
        raise ConfigurationError("--host must be an address or a host name, got ''")
    prefix = _prefix(args.prefix)
    token = _secret(args.token_env, TOKEN_ENV, "--token-env")
    basic_text = _secret(args.basic_env, BASIC_ENV, "--basic-env")
    basic = None if basic_text is None else _basic(basic_text, args.basic_env or BASIC_ENV)
    if token is None and basic is None and not is_loopback_host(host):
        raise ConfigurationError(
            f"refusing to serve the dashboard on {host} without credentials: anyone who "
            f"reaches it could read and steer the queue; set {TOKEN_ENV} (a bearer token) "
            f"or {BASIC_ENV} (user:password) in the environment, or use --host 127.0.0.1"
        )
    allowed_hosts = _allowed_hosts(args.allowed_host, host, credentials=token or basic)
    app: ASGIApp = create_app(
        queue, token=token, basic=basic, read_only=args.read_only, allowed_hosts=allowed_hosts
    )
    if prefix:
        app = _mounted(prefix, app)
    sock = _bind(host, args.port)
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    how = []
    if token is not None:
        how.append(f"bearer token from ${args.token_env or TOKEN_ENV}")
    if basic is not None:
        how.append(f"basic credentials from ${args.basic_env or BASIC_ENV}")
    if not how:
        how.append("loopback clients only, no credentials")
    if allowed_hosts:
        how.append("also answering to " + ", ".join(allowed_hosts))
    if args.read_only:
        how.append("read-only")
    config = uvicorn.Config(
        app,
        log_config=None,  # the CLI's logging setup stays; uvicorn logs through it
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    # On stderr, once it accepts requests: a supervisor (or a test) learns the URL from it.
    ready = f"serving the dashboard on http://{shown}:{port}{prefix}/ ({', '.join(how)})"
    try:
        stopped_by = _serve(config, sock, ready)
    finally:
        sock.close()
    if stopped_by is None:
        raise ConfigurationError("the dashboard did not start; see the log above")
    # Ctrl-C ends a command with 130 by convention; SIGTERM is the planned stop: 0.
    return 130 if stopped_by == signal.SIGINT else 0


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an ``--host`` value) listens on this host's loopback only."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name: it may well resolve to a public address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _allowed_hosts(given: list[str], host: str, credentials: object) -> list[str]:
    """The Host names to accept besides the loopback ones: those of ``--allowed-host``, and
    the ``--host`` listened on when it is a name or a single address (not 0.0.0.0 or ::)."""
    names = [name.strip() for name in given]
    if not credentials and any(not is_loopback_host(name.strip("[]")) for name in names):
        raise ConfigurationError(
            "--allowed-host needs credentials: without them the dashboard answers loopback "
            f"names only; set {TOKEN_ENV} (a bearer token) or {BASIC_ENV} (user:password)"
        )
    if not is_loopback_host(host) and not _is_wildcard(host):
        names.insert(0, host)
    return list(dict.fromkeys(names))


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _prefix(raw: str) -> str:
    prefix = raw.strip().rstrip("/")
    if not raw.strip().startswith("/") and raw.strip():
        raise ConfigurationError(f"--prefix must start with '/', e.g. /jobqueue, got {raw!r}")
    segments = prefix.split("/")[1:]
    if not _PREFIX.match(prefix) or any(set(segment) == {"."} for segment in segments):
        raise ConfigurationError(
            f"--prefix must be a path such as /jobqueue or /ops/jobs (letters, digits and "
            f"'-', '_', '.', '~' between slashes), got {raw!r}"
        )
    return prefix


def _secret(name: str | None, default: str, option: str) -> str | None:
    """The value of the environment variable ``name`` (or ``default``), if set."""
    if name is not None and not _ENV_NAME.match(name):
        raise ConfigurationError(f"{option} must name an environment variable, got {name!r}")
    value = os.environ.get(name or default)
    if value is None:
        if name is not None:
            raise ConfigurationError(f"{option} {name}: the environment variable {name} is not set")
        return None
    if not value.strip():
        raise ConfigurationError(
            f"${name or default} is set but empty; give it a value or unset it"
        )
    return value


def _basic(value: str, name: str) -> tuple[str, str]:
    user, colon, password = value.partition(":")
    if not colon or not user or not password:
        # The value itself is never shown: it is a secret, and may be a mistyped one.
        raise ConfigurationError(f"${name} must be user:password, both parts non-empty")
    return user, password


def _mounted(prefix: str, app: ASGIApp) -> ASGIApp:
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse
    from starlette.routing import Mount, Route

    def to_prefix(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{prefix}/")

    return Starlette(routes=[Route("/", to_prefix), Mount(prefix, app=app)])


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket here, so a taken port or a bad address is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        if isinstance(exc, socket.gaierror):
            reason = f"cannot resolve {host!r} ({reason})"
        raise ConfigurationError(f"cannot serve the dashboard on {host}:{port}: {reason}") from None
    return sock


def _serve(config: uvicorn.Config, sock: socket.socket, ready: str) -> int | None:
    """Serve until SIGTERM or SIGINT; the signal that stopped it, or ``None`` if the app did
    not start (uvicorn logged why)."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, printing ``ready`` once it serves, and stopping on SIGTERM or
        SIGINT without raising the signal again afterwards (as uvicorn does), so that the
        command's exit status says how it stopped."""

        stop_signal: int | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                print(ready, file=sys.stderr, flush=True)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            def on_signal(signum: int, frame: FrameType | None) -> None:
                if self.should_exit and signum == signal.SIGINT:
                    self.force_exit = True  # a second Ctrl-C: stop waiting for open requests
                if self.stop_signal is None:
                    self.stop_signal = signum
                self.should_exit = True

            watched = (signal.SIGTERM, signal.SIGINT)
            previous = {sig: signal.signal(sig, on_signal) for sig in watched}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    server = Server(config)
    server.run(sockets=[sock])
    if not server.started:
        return None
    return server.stop_signal if server.stop_signal is not None else signal.SIGTERM
