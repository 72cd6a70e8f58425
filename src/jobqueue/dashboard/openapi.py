"""The OpenAPI 3 document of the dashboard's JSON API, served at ``/api/openapi.json``.

Kept beside the routes (``api.py``) and checked against them by the tests and by a fuzzer
that builds its requests from this document.
"""

from __future__ import annotations

from jobqueue.job import JobState

Schema = dict[str, object]
"""A piece of the OpenAPI document: JSON, built from dicts, lists, strings and numbers."""

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# A cursor is an offset of at most nine digits: far past any real page, and inside every
# store's int range. The document says the same with CURSOR_PATTERN.
MAX_CURSOR = 10**9 - 1
CURSOR_PATTERN = "^[0-9]{0,9}$"
BULK_ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "retry": (("failed", "cancelled"), "Retry every failed (or cancelled) job"),
    "cancel": (
        ("waiting", "delayed", "active", "blocked"),
        "Cancel every waiting, delayed, active or blocked job",
    ),
    "remove": (("completed", "failed", "cancelled"), "Remove every finished job"),
}
"""Per bulk action: the states it applies to, and what it does."""


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(**properties: Schema) -> Schema:
    return {"type": "object", "properties": properties}


_STRING: Schema = {"type": "string"}
_NUMBER: Schema = {"type": "number"}
_INTEGER: Schema = {"type": "integer"}
_ERROR = _json({"$ref": "#/components/schemas/Error"}, "refused; the error says why")
_STATES = [state.value for state in JobState]
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": _STRING}
_NAME = {"name": "name", "in": "path", "required": True, "schema": _STRING}
_FLOW_ID = {"name": "flow_id", "in": "path", "required": True, "schema": _STRING}
_EDGES: Schema = {"type": "array", "items": {"type": "array", "items": _STRING}}
_FLOW = _json(
    _object(
        id=_STRING,
        jobs={
            "type": "array",
            "items": _object(
                id=_STRING,
                name=_STRING,
                title={"type": "string", "nullable": True},
                state={"type": "string", "enum": [state.value for state in JobState]},
                depends_on=_EDGES,
                dependents=_EDGES,
                waits_for={"type": "array", "items": _STRING},
            ),
        },
    )
)
_CSRF = {
    "name": "X-JobQueue-CSRF",
    "in": "header",
    "required": True,
    "description": "the token of GET /api/csrf",
    "schema": _STRING,
}
_PAUSED = _json(_object(paused={"type": "array", "items": _STRING}))
_STATE_COUNTS = _object(**{state: _INTEGER for state in _STATES})
_JOB = _json({"$ref": "#/components/schemas/Job"})
_SCHEDULES = _object(
    now=_NUMBER,
    schedules={"type": "array", "items": {"$ref": "#/components/schemas/Schedule"}},
)


def _answers(ok: Schema, *codes: int) -> dict[str, Schema]:
    return {"200": ok, **_refusals(*codes)}


def _refusals(*codes: int) -> dict[str, Schema]:
    # 400: a Host header the dashboard does not answer to, on every route.
    return {str(code): _ERROR for code in sorted({400, 401, 403, *codes})}


def _query(name: str, schema: Schema, description: str = "") -> Schema:
    # An empty value is the same as none, for every optional query parameter.
    parameter = {"name": name, "in": "query", "allowEmptyValue": True, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


def _job_action(summary: str) -> Schema:
    return {
        "post": {
            "summary": summary,
            "parameters": [_JOB_ID, _CSRF],
            "responses": _answers(_JOB, 404, 409),
        }
    }


def _name_action(summary: str) -> Schema:
    return {
        "post": {
            "summary": summary,
            "parameters": [_NAME, _CSRF],
            "responses": _answers(_PAUSED, 400),
        }
    }


def _bulk(action: str, states: tuple[str, ...], summary: str) -> Schema:
    return {
        "post": {
            "summary": f"{summary} in a state, of one worker name when given; answers how "
            "many jobs it touched",
            "parameters": [
                {
                    "name": "state",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "enum": list(states)},
                },
                _query("name", _STRING),
                _CSRF,
            ],
            "responses": _answers(
                _json(
                    _object(
                        action={"type": "string", "enum": [action]},
                        state={"type": "string", "enum": list(states)},
                        name={"type": "string", "nullable": True},
                        count=_INTEGER,
                    )
                ),
                400,
            ),
        }
    }


def _schedule_action(summary: str, schema: Schema) -> Schema:
    return {
        "post": {
            "summary": summary,
            "parameters": [_NAME, _CSRF],
            "responses": _answers(_json(schema), 400, 404),
        }
    }


def _read(summary: str, schema: Schema, *parameters: Schema) -> Schema:
    return {
        "get": {
            "summary": summary,
            "parameters": list(parameters),
            "responses": _answers(_json(schema), 400),
        }
    }


OPENAPI: Schema = {
    "openapi": "3.0.3",
    "info": {
        "title": "jobqueue dashboard API",
        "version": "2",
        "description": (
            "Reads and steers one jobqueue. Every answer is JSON; refusals are "
            '{"error": "..."}. POST and DELETE need the X-JobQueue-CSRF header. A Host '
            "header other than a loopback name or one of the app's allowed_hosts answers "
            "400. Times are UNIX seconds; `now` is the server's clock, to compute ages "
            "without the client's."
        ),
    },
    "paths": {
        "/api/stats": _read(
            "Job counts by state and by worker name, paused names, dispatchers, queue latency",
            {"$ref": "#/components/schemas/Stats"},
        ),
        "/api/throughput": _read(
            "Finished attempts per minute over the last hour, or per hour over the last day",
            _object(
                period={"type": "string", "enum": ["minute", "hour"]},
                now=_NUMBER,
                buckets={"type": "array", "items": {"$ref": "#/components/schemas/Bucket"}},
            ),
            _query("period", {"type": "string", "enum": ["minute", "hour"], "default": "minute"}),
        ),
        "/api/jobs": _read(
            "A page of jobs: in one state (in the order that state keeps) or of every state "
            "(most recently touched first), optionally of one worker name and matching a text",
            _object(
                jobs={"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                next={"type": "string", "nullable": True},
                scanned=_INTEGER,
                now=_NUMBER,
            ),
            _query("state", {"type": "string", "enum": _STATES}),
            _query("name", _STRING, "only jobs of this worker name"),
            _query("q", _STRING, "a job id, or text found in the title or worker name"),
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            ),
            _query(
                "cursor",
                {"type": "string", "pattern": CURSOR_PATTERN},
                "the `next` of the previous page (opaque); with `name` or `q` a page may "
                "hold fewer than `limit` jobs and still have a `next`: the search is bounded "
                "per request",
            ),
        ),
        "/api/jobs/{job_id}": {
            "get": {
                "summary": "One job",
                "parameters": [_JOB_ID],
                "responses": _answers(_JOB, 404),
            },
            "delete": {
                "summary": "Remove a job, whatever its state",
                "parameters": [_JOB_ID, _CSRF],
                "responses": _answers(_json(_object(id=_STRING, removed={"type": "boolean"})), 404),
            },
        },
        "/api/jobs/{job_id}/retry": _job_action("Run a failed or cancelled job again"),
        "/api/jobs/{job_id}/cancel": {
            "post": {
                "summary": "Cancel a waiting, delayed or running job; answers its state after "
                "the call (a running job stays active until its dispatcher stops it)",
                "parameters": [_JOB_ID, _CSRF],
                "responses": _answers(
                    _json(_object(id=_STRING, state={"type": "string", "enum": _STATES})), 404, 409
                ),
            }
        },
        "/api/jobs/{job_id}/run-now": _job_action("Make a delayed job due now"),
        **{
            f"/api/bulk/{action}": _bulk(action, states, summary)
            for action, (states, summary) in BULK_ACTIONS.items()
        },
        "/api/flows/{flow_id}": {
            "get": {
                "summary": "A flow's jobs (flow_id: its first job's id), their dependencies "
                "and, for a blocked job, what it still waits for",
                "parameters": [_FLOW_ID],
                "responses": _answers(_FLOW, 404),
            }
        },
        **{
            f"/api/flows/{{flow_id}}/{action}": {
                "post": {
                    "summary": summary,
                    "parameters": [_FLOW_ID, _CSRF],
                    "responses": _answers(
                        _json(_object(id=_STRING, action=_STRING, count=_INTEGER)), 404
                    ),
                }
            }
            for action, summary in (
                ("cancel", "Cancel every job of a flow not finished yet"),
                ("retry", "Retry a flow's failed and cancelled jobs"),
            )
        },
        "/api/workers": _read(
            "The live dispatchers of every process",
            _object(
                now=_NUMBER,
                dispatchers={"type": "array", "items": {"$ref": "#/components/schemas/Dispatcher"}},
            ),
        ),
        "/api/schedules": _read(
            "The periodic schedules: declared here, or known to the backend",
            _SCHEDULES,
        ),
        "/api/schedules/{name}/pause": _schedule_action(
            "Submit no job for this schedule's ticks until resumed", _SCHEDULES
        ),
        "/api/schedules/{name}/resume": _schedule_action(
            "Submit jobs for this schedule's ticks again", _SCHEDULES
        ),
        "/api/schedules/{name}/run": _schedule_action(
            "Submit one job of this schedule now, outside its ticks (it must be declared "
            "in the dashboard's process)",
            {"$ref": "#/components/schemas/Job"},
        ),
        "/api/names/{name}/pause": _name_action(
            "Stop dispatchers claiming jobs of this worker name"
        ),
        "/api/names/{name}/resume": _name_action(
            "Let dispatchers claim jobs of this worker name again"
        ),
        "/api/csrf": _read(
            "The token POST and DELETE send in X-JobQueue-CSRF", _object(token=_STRING)
        ),
        "/api/meta": _read(
            "The job states in display order, which are finished, and the actions each "
            "allows on one job (`actions`: retry, run-now, cancel, remove) and in bulk "
            "(`bulk`: the /api/bulk/{action} routes); the pages read it once",
            {"$ref": "#/components/schemas/Meta"},
        ),
        "/api/openapi.json": _read("This document", {"type": "object"}),
    },
    "components": {
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": _STRING}},
            "Stats": _object(
                now=_NUMBER,
                states=_STATE_COUNTS,
                total=_INTEGER,
                names={"type": "object", "additionalProperties": _STATE_COUNTS},
                paused={"type": "array", "items": _STRING},
                dispatchers=_INTEGER,
                latency={
                    "type": "object",
                    "description": "per worker name, seconds the oldest due waiting job has waited",
                    "additionalProperties": _NUMBER,
                },
                read_only={"type": "boolean"},
            ),
            "Meta": _object(
                states={
                    "type": "array",
                    "items": _object(
                        name={"type": "string", "enum": _STATES},
                        finished={"type": "boolean"},
                        actions={"type": "array", "items": _STRING},
                        bulk={
                            "type": "array",
                            "items": {"type": "string", "enum": [*BULK_ACTIONS]},
                        },
                    ),
                }
            ),
            "Bucket": _object(
                start=_NUMBER,
                seconds=_INTEGER,
                completed=_INTEGER,
                failed=_INTEGER,
                retried=_INTEGER,
                cancelled=_INTEGER,
            ),
            "Job": {
                "type": "object",
                "description": "Job.to_dict(): id, name, data, title, state, attempts, "
                "times, progress, result, error, logs, history, lease_expires_at, ...",
                "properties": {
                    "id": _STRING,
                    "name": _STRING,
                    "title": {"type": "string", "nullable": True},
                    "state": {"type": "string", "enum": _STATES},
                },
                "additionalProperties": True,
            },
            "Schedule": _object(
                name=_STRING,
                worker={"type": "string", "nullable": True},
                definition=_STRING,
                next_run={"type": "number", "nullable": True},
                last_tick={"type": "number", "nullable": True},
                last_job_id={"type": "string", "nullable": True},
                last_job_state={"type": "string", "nullable": True},
                missed=_INTEGER,
                skipped=_INTEGER,
                paused={"type": "boolean"},
            ),
            "Dispatcher": _object(
                id=_STRING,
                host=_STRING,
                pid=_INTEGER,
                names={"type": "array", "items": _STRING},
                concurrency=_INTEGER,
                started_at=_NUMBER,
                last_seen=_NUMBER,
                jobs={"type": "array", "items": _STRING},
            ),
        }
    },
}
