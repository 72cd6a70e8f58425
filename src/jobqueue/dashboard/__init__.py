"""The dashboard of a jobqueue: web pages and their JSON API, a Starlette app to mount
anywhere.

Needs the ``dashboard`` extra (``pip install 'jobqueue[dashboard]'``)::

    from starlette.applications import Starlette
    from starlette.routing import Mount
    from jobqueue.dashboard import create_app

    app = Starlette(routes=[Mount("/jobqueue", app=create_app(queue, token="..."))])
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from jobqueue.dashboard.api import Api, http_error, jobqueue_error, server_error
from jobqueue.dashboard.hosts import is_loopback_name, normalize_allowed
from jobqueue.dashboard.pages import page_routes
from jobqueue.dashboard.security import Authorize, SecurityMiddleware
from jobqueue.errors import InvalidSettingError, JobQueueError
from jobqueue.queue import JobQueue

__all__ = ["create_app"]


def create_app(
    queue: JobQueue,
    *,
    token: str | None = None,
    basic: tuple[str, str] | None = None,
    authorize: Authorize | None = None,
    read_only: bool = False,
    allowed_hosts: Iterable[str] | None = None,
) -> Starlette:
    """The dashboard of ``queue`` (pages under ``/``, JSON API under ``/api``) as a Starlette
    app, mountable under any prefix.

    ``token``: clients send ``Authorization: Bearer <token>``. ``basic``: a ``(user,
    password)`` pair for HTTP basic auth. ``authorize``: ``authorize(request) -> bool``, the
    host application's own check (its session, its SSO). With none of them, only clients on
    this host (loopback) are served. ``read_only`` refuses every change (POST, DELETE).

    ``allowed_hosts``: the names (and addresses) browsers use for the dashboard besides the
    loopback ones, which are always accepted (``localhost``, 127.0.0.0/8, ``[::1]``). A
    request whose ``Host`` header is another name answers 400 (DNS rebinding). ``".example.com"``
    is that name and every name under it, ``"*"`` is any name. Other than loopback names
    need credentials (``token``, ``basic`` or ``authorize``).
    """
    if token is not None and (not isinstance(token, str) or not token):
        raise InvalidSettingError("token must be a non-empty str")
    if basic is not None and (
        not isinstance(basic, tuple)
        or len(basic) != 2
        or not all(isinstance(part, str) and part for part in basic)
    ):
        raise InvalidSettingError("basic must be a (user, password) pair of non-empty str")
    if authorize is not None and not callable(authorize):
        raise InvalidSettingError("authorize must be a callable taking the request")
    hosts = normalize_allowed(allowed_hosts)
    if token is None and basic is None and authorize is None:
        public = [name for name in hosts if not is_loopback_name(name)]
        if public:
            raise InvalidSettingError(
                f"allowed_hosts {public} need credentials (token=, basic= or authorize=): "
                f"without them the dashboard answers loopback names only"
            )
    csrf_token = secrets.token_urlsafe(32)
    app = Starlette(
        routes=[*Api(queue, read_only=read_only).routes(), *page_routes()],
        middleware=[
            Middleware(
                SecurityMiddleware,
                csrf_token=csrf_token,
                token=token,
                basic=basic,
                authorize=authorize,
                read_only=read_only,
                allowed_hosts=hosts,
            )
        ],
        exception_handlers={
            JobQueueError: jobqueue_error,
            HTTPException: http_error,
            Exception: server_error,
        },
    )
    app.state.csrf_token = csrf_token
    return app
