"""The dashboard's web pages: one HTML shell and the static files it loads.

The shell holds no data: the script in ``static/app.js`` reads everything through the JSON
API (``api.py``) and renders it with DOM text nodes, never as HTML, so nothing a job carries
can run in the page. The shell and the static files are therefore served to anyone the
network rules let in, even before a bearer token or basic credentials are given (the page
asks for them and sends them to the API); the API itself stays behind them.
"""

from __future__ import annotations

import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

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
<script src="{base}static/app.js" defer></script>
</head>
<body>
<noscript>The jobqueue dashboard needs JavaScript; the JSON API is at {base}api/stats.</noscript>
</body>
</html>
"""


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
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
