"""The dashboard's web pages: one HTML shell and the static files it loads.

The shell holds no data: the script in ``static/app.js`` and the ES modules it imports from
``static/js/`` read everything through the JSON API (``api.py``) and render it with DOM text
nodes, never as HTML, so nothing a job carries can run in the page. The shell and the static
files are therefore served to anyone the network rules let in, even before a bearer token or
basic credentials are given (the page asks for them and sends them to the API); the API
itself stays behind them.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).with_name("static")

PAGE_PATHS = ("/", "/static/")
"""Paths (below the app's mount point) of the shell and its files, not of the API."""

PAGE_CSP = (
    # Scripts and styles from this app only: no inline script or style, no eval, no CDN.
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_SHELL = """<!doctype html>
<html lang="en" data-base="{base}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>jobqueue</title>
<link rel="icon" href="{base}static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{base}static/app.css">
<script type="module" src="{base}static/app.js"></script>
</head>
<body>
<noscript>The jobqueue dashboard needs JavaScript; the JSON API is at {base}api/stats.</noscript>
</body>
</html>
"""


class StaticPageFiles(StaticFiles):
    """Starlette's static files, with ``.js`` always sent as ``text/javascript``: a browser
    runs a module script only under a JavaScript MIME type, and ``mimetypes`` guesses from
    the host's tables (``text/plain`` on some Windows registries, for instance)."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if str(full_path).endswith(".js"):
            response.headers["content-type"] = "text/javascript; charset=utf-8"
        return response


def is_page_path(route_path: str) -> bool:
    return route_path == "/" or route_path.startswith("/static/")


def shell(request: Request) -> HTMLResponse:
    # Where the app is mounted ("/jobqueue/", or "/" standalone): every URL the page uses
    # is below it, so the dashboard works under any prefix.
    base = request.scope.get("root_path", "").rstrip("/") + "/"
    return HTMLResponse(_SHELL.format(base=html.escape(base, quote=True)))


def page_routes() -> list[BaseRoute]:
    return [
        Route("/", shell, methods=["GET"]),
        Mount("/static", app=StaticPageFiles(directory=STATIC_DIR), name="static"),
    ]
