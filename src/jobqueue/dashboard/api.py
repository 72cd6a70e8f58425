"""The dashboard's JSON API: routes over the ``JobQueue`` facade, and their OpenAPI document.

Endpoints are plain ``def`` functions on purpose: Starlette runs them in its thread pool, so
the queue's blocking backend calls never stall the event loop.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jobqueue.dashboard.security import SECURITY_HEADERS
from jobqueue.errors import (
    BackendError,
    InvalidOptionError,
    JobNotFoundError,
    JobQueueError,
    JobStateError,
)
from jobqueue.job import JobState
from jobqueue.queue import JobQueue

logger = logging.getLogger("jobqueue.dashboard")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# A cursor is an offset of at most nine digits: far past any real page, and inside every
# store's int range. The OpenAPI document says the same with CURSOR_PATTERN.
MAX_CURSOR = 10**9 - 1
CURSOR_PATTERN = "^[0-9]{0,9}$"


class BadRequest(InvalidOptionError):
    """A query parameter the API cannot use (answered 400)."""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _query_int(request: Request, key: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    # Refuses "-1", "1.5", "1e3", " 2", and the non-ASCII digits str.isdigit() accepts
    # (superscripts, which int() refuses; Arabic-Indic ones, which it reads): a cursor is ours,
    # a limit simple.
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest(f"{key} must be a whole number, got {raw!r}")
    bounds = f"{low}-{high}" if high is not None else f">= {low}"
    if high is not None and len(raw) > len(str(high)):  # int() refuses 4300+ digits anyway
        raise BadRequest(
            f"{key} must be {bounds}, got {raw[:20]!r}{'...' if len(raw) > 20 else ''}"
        )
    value = int(raw)
    if value < low or (high is not None and value > high):
        raise BadRequest(f"{key} must be {bounds}, got {value}")
    return value


def _state(request: Request) -> JobState | None:
    raw = request.query_params.get("state")
    if not raw:
        return None
    try:
        return JobState(raw)
    except ValueError:
        known = ", ".join(state.value for state in JobState)
        raise BadRequest(f"unknown state {raw!r}; use one of {known}") from None


class Api:
    """The routes, bound to one queue."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def routes(self) -> list[Route]:
        return [
            Route("/api/stats", self.stats, methods=["GET"]),
            Route("/api/jobs", self.jobs, methods=["GET"]),
            Route("/api/jobs/{job_id}", self.job, methods=["GET"]),
            Route("/api/jobs/{job_id}", self.remove, methods=["DELETE"]),
            Route("/api/jobs/{job_id}/retry", self.retry, methods=["POST"]),
            Route("/api/jobs/{job_id}/cancel", self.cancel, methods=["POST"]),
            Route("/api/workers", self.workers, methods=["GET"]),
            Route("/api/names/{name}/pause", self.pause, methods=["POST"]),
            Route("/api/names/{name}/resume", self.resume, methods=["POST"]),
            Route("/api/csrf", self.csrf, methods=["GET"]),
            Route("/api/openapi.json", self.openapi, methods=["GET"]),
        ]

    def stats(self, request: Request) -> JSONResponse:
        states = {state.value: n for state, n in self.queue.count_by_state().items()}
        names = {
            name: {state.value: n for state, n in counts.items()}
            for name, counts in sorted(self.queue.count_by_name().items())
        }
        return JSONResponse(
            {
                "states": states,
                "total": sum(states.values()),
                "names": names,
                "paused": sorted(self.queue.paused()),
                "dispatchers": len(self.queue.dispatchers()),
            }
        )

    def jobs(self, request: Request) -> JSONResponse:
        state = _state(request)
        limit = _query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _query_int(request, "cursor", 0, 0, MAX_CURSOR)
        name = request.query_params.get("name") or None
        # One job more than asked tells whether another page exists without a count query.
        found = self.queue.list_jobs(state, offset, limit + 1, name=name)
        page = found[:limit]
        more = len(found) > limit
        return JSONResponse(
            {
                "jobs": [job.to_dict() for job in page],
                "next": str(offset + limit) if more else None,
            }
        )

    def job(self, request: Request) -> JSONResponse:
        job_id = request.path_params["job_id"]
        job = self.queue.get_job_by_id(job_id)
        if job is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        return JSONResponse(job.to_dict())

    def remove(self, request: Request) -> JSONResponse:
        job_id = request.path_params["job_id"]
        if not self.queue.remove_job(job_id):
            raise JobNotFoundError(f"no job with id {job_id!r}: nothing to remove")
        return JSONResponse({"id": job_id, "removed": True})

    def retry(self, request: Request) -> JSONResponse:
        return JSONResponse(self.queue.retry_job(request.path_params["job_id"]).to_dict())

    def cancel(self, request: Request) -> JSONResponse:
        job_id = request.path_params["job_id"]
        state = self.queue.cancel_job(job_id)
        return JSONResponse({"id": job_id, "state": state.value})

    def workers(self, request: Request) -> JSONResponse:
        dispatchers = [
            {
                field.name: list(value) if isinstance(value, tuple) else value
                for field in dataclasses.fields(info)
                for value in (getattr(info, field.name),)
            }
            for info in self.queue.dispatchers()
        ]
        return JSONResponse({"dispatchers": dispatchers})

    def pause(self, request: Request) -> JSONResponse:
        self.queue.pause(request.path_params["name"])
        return JSONResponse({"paused": sorted(self.queue.paused())})

    def resume(self, request: Request) -> JSONResponse:
        self.queue.resume(request.path_params["name"])
        return JSONResponse({"paused": sorted(self.queue.paused())})

    def csrf(self, request: Request) -> JSONResponse:
        return JSONResponse({"token": request.app.state.csrf_token})

    def openapi(self, request: Request) -> JSONResponse:
        return JSONResponse(OPENAPI)


# -- errors -----------------------------------------------------------------------------------


def _status_of(exc: JobQueueError) -> int:
    if isinstance(exc, JobNotFoundError):
        return 404
    if isinstance(exc, JobStateError):
        return 409
    if isinstance(exc, BackendError):
        # The store's trouble, not the caller's: retrying later may work.
        return 503
    return 400  # any other refusal on purpose (bad input, ...) is about what was asked


async def jobqueue_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, JobQueueError)
    status = _status_of(exc)
    if status >= 500:
        logger.warning("backend trouble answering %s %s: %s", request.method, request.url, exc)
    return _error(status, str(exc))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": exc.detail}, status_code=exc.status_code, headers=dict(exc.headers or {})
    )


async def server_error(request: Request, exc: Exception) -> Response:
    # Outside the security middleware (Starlette runs this outermost): add its headers here.
    logger.exception("unexpected error answering %s %s", request.method, request.url)
    return JSONResponse(
        {"error": "internal error; see the server log"}, status_code=500, headers=SECURITY_HEADERS
    )


# -- OpenAPI ----------------------------------------------------------------------------------


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json({"$ref": "#/components/schemas/Error"}, "refused; the error says why")
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_CSRF = {
    "name": "X-JobQueue-CSRF",
    "in": "header",
    "required": True,
    "description": "the token of GET /api/csrf",
    "schema": {"type": "string"},
}
_PAUSED = _json(
    {
        "type": "object",
        "properties": {"paused": {"type": "array", "items": {"type": "string"}}},
    }
)
_STATE_COUNTS = {
    "type": "object",
    "properties": {state.value: {"type": "integer"} for state in JobState},
}


def _refusals(*codes: int) -> dict[str, Any]:
    return {str(code): _ERROR for code in (401, 403, *codes)}


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "jobqueue dashboard API",
        "version": "1",
        "description": (
            "Reads and steers one jobqueue. Every answer is JSON; refusals are "
            '{"error": "..."}. POST and DELETE need the X-JobQueue-CSRF header.'
        ),
    },
    "paths": {
        "/api/stats": {
            "get": {
                "summary": "Job counts by state and by worker name, paused names, dispatchers",
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Stats"}),
                    **_refusals(),
                },
            }
        },
        "/api/jobs": {
            "get": {
                "summary": "A page of jobs, newest first when no state is given",
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "allowEmptyValue": True,  # empty is the same as absent, as for all four
                        "schema": {"type": "string", "enum": [s.value for s in JobState]},
                    },
                    {
                        "name": "name",
                        "in": "query",
                        "allowEmptyValue": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "allowEmptyValue": True,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LIMIT,
                            "default": DEFAULT_LIMIT,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "allowEmptyValue": True,
                        "description": "the `next` of the previous page",
                        "schema": {"type": "string", "pattern": CURSOR_PATTERN},
                    },
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "jobs": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Job"},
                                },
                                "next": {"type": "string", "nullable": True},
                            },
                        }
                    ),
                    **_refusals(400),
                },
            }
        },
        "/api/jobs/{job_id}": {
            "get": {
                "summary": "One job",
                "parameters": [_JOB_ID],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Job"}),
                    **_refusals(404),
                },
            },
            "delete": {
                "summary": "Remove a job, whatever its state",
                "parameters": [_JOB_ID, _CSRF],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "removed": {"type": "boolean"},
                            },
                        }
                    ),
                    **_refusals(404),
                },
            },
        },
        "/api/jobs/{job_id}/retry": {
            "post": {
                "summary": "Run a failed or cancelled job again",
                "parameters": [_JOB_ID, _CSRF],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Job"}),
                    **_refusals(404, 409),
                },
            }
        },
        "/api/jobs/{job_id}/cancel": {
            "post": {
                "summary": "Cancel a job; answers its state after the call",
                "parameters": [_JOB_ID, _CSRF],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "state": {"type": "string"},
                            },
                        }
                    ),
                    **_refusals(404, 409),
                },
            }
        },
        "/api/workers": {
            "get": {
                "summary": "The live dispatchers of every process",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "dispatchers": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Dispatcher"},
                                }
                            },
                        }
                    ),
                    **_refusals(),
                },
            }
        },
        "/api/names/{name}/pause": {
            "post": {
                "summary": "Stop dispatchers claiming jobs of this worker name",
                "parameters": [_NAME, _CSRF],
                "responses": {"200": _PAUSED, **_refusals(400)},
            }
        },
        "/api/names/{name}/resume": {
            "post": {
                "summary": "Let dispatchers claim jobs of this worker name again",
                "parameters": [_NAME, _CSRF],
                "responses": {"200": _PAUSED, **_refusals(400)},
            }
        },
        "/api/csrf": {
            "get": {
                "summary": "The token POST and DELETE send in X-JobQueue-CSRF",
                "responses": {
                    "200": _json({"type": "object", "properties": {"token": {"type": "string"}}}),
                    **_refusals(),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}), **_refusals()},
            }
        },
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            },
            "Stats": {
                "type": "object",
                "properties": {
                    "states": _STATE_COUNTS,
                    "total": {"type": "integer"},
                    "names": {"type": "object", "additionalProperties": _STATE_COUNTS},
                    "paused": {"type": "array", "items": {"type": "string"}},
                    "dispatchers": {"type": "integer"},
                },
            },
            "Job": {
                "type": "object",
                "description": "Job.to_dict(): id, name, data, title, state, attempts, "
                "times, progress, result, error, logs, history, ...",
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "title": {"type": "string", "nullable": True},
                    "state": {"type": "string", "enum": [s.value for s in JobState]},
                },
                "additionalProperties": True,
            },
            "Dispatcher": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "host": {"type": "string"},
                    "pid": {"type": "integer"},
                    "names": {"type": "array", "items": {"type": "string"}},
                    "concurrency": {"type": "integer"},
                    "started_at": {"type": "number"},
                    "last_seen": {"type": "number"},
                    "jobs": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    },
}
