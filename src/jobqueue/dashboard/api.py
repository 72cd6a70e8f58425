"""The dashboard's JSON API: routes over the ``JobQueue`` facade, and their OpenAPI document.

Endpoints are plain ``def`` functions on purpose: Starlette runs them in its thread pool, so
the queue's blocking backend calls never stall the event loop.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response
from starlette.routing import Route

from jobqueue.dashboard.meta import meta
from jobqueue.dashboard.openapi import (
    BULK_ACTIONS,
    DEFAULT_LIMIT,
    MAX_CURSOR,
    MAX_LIMIT,
    OPENAPI,
)
from jobqueue.dashboard.security import SECURITY_HEADERS
from jobqueue.errors import (
    BackendError,
    CorruptJobError,
    InvalidArgumentError,
    JobNotFoundError,
    JobQueueError,
    JobStateError,
    ScheduleNotFoundError,
)
from jobqueue.job import Job, JobState
from jobqueue.metrics import BackendCollector
from jobqueue.queue import JobQueue

logger = logging.getLogger("jobqueue.dashboard")

SCAN_BUDGET = 2000
"""A filtered list (``name``, ``q``) reads at most this many jobs per request, so a million
stored jobs cannot make one request slow; the page then ends early with a ``next``."""
SCAN_BATCH = 500


class BadRequest(InvalidArgumentError):
    """A query parameter the API cannot use (answered 400)."""


class JSONResponse(StarletteJSONResponse):
    """Starlette's, except that a number JSON cannot hold (an infinite time a foreign writer
    stored) is sent as ``null`` instead of failing the whole answer with a 500."""

    def render(self, content: object) -> bytes:
        try:
            return super().render(content)
        except ValueError:  # allow_nan=False: only then walk the content
            return super().render(_finite(content))


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


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


def _state(request: Request, required: bool = False) -> JobState | None:
    raw = request.query_params.get("state")
    if not raw:
        if required:
            raise BadRequest("state is required")
        return None
    try:
        return JobState(raw)
    except ValueError:
        known = ", ".join(state.value for state in JobState)
        raise BadRequest(f"unknown state {raw!r}; use one of {known}") from None


def _matches(job: Job, name: str | None, text: str | None) -> bool:
    if name is not None and job.name != name:
        return False
    if text is None:
        return True
    return text in (job.title or "").casefold() or text in job.name.casefold()


def _flow_job(job: Job) -> dict[str, object]:
    """What the flow view shows of one job: its edges, and for a blocked job the
    dependencies it still waits for."""
    return {
        "id": job.id,
        "name": job.name,
        "title": job.title,
        "state": job.state.value,
        "depends_on": [edge.to_list() for edge in job.depends_on],
        "dependents": [edge.to_list() for edge in job.dependents],
        "waits_for": [
            edge.job_id
            for edge in job.depends_on
            if job.state is JobState.BLOCKED and edge.job_id not in job.dependency_outcomes
        ],
    }


class Api:
    """The routes, bound to one queue."""

    def __init__(self, queue: JobQueue, read_only: bool = False) -> None:
        self.queue = queue
        self.read_only = read_only  # told to the pages, which then offer no actions

    def routes(self) -> list[Route]:
        return [
            Route("/api/stats", self.stats, methods=["GET"]),
            Route("/api/throughput", self.throughput, methods=["GET"]),
            Route("/api/jobs", self.jobs, methods=["GET"]),
            Route("/api/jobs/{job_id}", self.job, methods=["GET"]),
            Route("/api/jobs/{job_id}", self.remove, methods=["DELETE"]),
            Route("/api/jobs/{job_id}/retry", self.retry, methods=["POST"]),
            Route("/api/jobs/{job_id}/cancel", self.cancel, methods=["POST"]),
            Route("/api/jobs/{job_id}/run-now", self.run_now, methods=["POST"]),
            *(Route(f"/api/bulk/{action}", self.bulk, methods=["POST"]) for action in BULK_ACTIONS),
            Route("/api/flows/{flow_id}", self.flow, methods=["GET"]),
            Route("/api/flows/{flow_id}/cancel", self.flow_action, methods=["POST"]),
            Route("/api/flows/{flow_id}/retry", self.flow_action, methods=["POST"]),
            Route("/api/workers", self.workers, methods=["GET"]),
            Route("/api/schedules", self.schedules, methods=["GET"]),
            Route("/api/schedules/{name}/pause", self.pause_schedule, methods=["POST"]),
            Route("/api/schedules/{name}/resume", self.resume_schedule, methods=["POST"]),
            Route("/api/schedules/{name}/run", self.run_schedule, methods=["POST"]),
            Route("/api/names/{name}/pause", self.pause, methods=["POST"]),
            Route("/api/names/{name}/resume", self.resume, methods=["POST"]),
            Route("/api/csrf", self.csrf, methods=["GET"]),
            Route("/api/meta", self.meta, methods=["GET"]),
            Route("/api/openapi.json", self.openapi, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]

    def stats(self, request: Request) -> JSONResponse:
        now = self.queue.clock()
        by_name = self.queue.count_by_name()
        states = {state.value: n for state, n in self.queue.count_by_state().items()}
        return JSONResponse(
            {
                "now": now,
                "states": states,
                "total": sum(states.values()),
                "names": {
                    name: {state.value: n for state, n in counts.items()}
                    for name, counts in sorted(by_name.items())
                },
                "paused": sorted(self.queue.paused()),
                "dispatchers": len(self.queue.dispatchers()),
                "latency": self.queue.queue_latency(),
                "read_only": self.read_only,
            }
        )

    def throughput(self, request: Request) -> JSONResponse:
        period = request.query_params.get("period") or "minute"
        if period not in ("minute", "hour"):
            raise BadRequest(f"period must be minute or hour, got {period!r}")
        buckets = self.queue.throughput(period)
        return JSONResponse(
            {
                "period": period,
                "now": self.queue.clock(),
                "buckets": [dataclasses.asdict(bucket) for bucket in buckets],
            }
        )

    def jobs(self, request: Request) -> JSONResponse:
        state = _state(request)
        limit = _query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _query_int(request, "cursor", 0, 0, MAX_CURSOR)
        name = request.query_params.get("name") or None
        text = (request.query_params.get("q") or "").strip() or None
        now = self.queue.clock()
        if name is None and text is None:
            # One job more than asked tells whether another page exists without a count.
            found = self.queue.list_jobs(state, offset, limit + 1)
            page, more = found[:limit], len(found) > limit
            return self._page(page, str(offset + limit) if more else None, len(page), now)
        if offset == 0 and text is not None:
            try:
                exact = self.queue.get_job_by_id(text)  # an id typed in the filter: that job
            except CorruptJobError:  # unreadable: the scan below shows it, marked
                exact = None
            wanted = exact is not None and (state is None or exact.state is state)
            if exact is not None and wanted and _matches(exact, name, None):
                return self._page([exact], None, 1, now)
        page, next_cursor, scanned = self._scan(state, name, text, offset, limit)
        return self._page(page, next_cursor, scanned, now)

    def _scan(
        self,
        state: JobState | None,
        name: str | None,
        text: str | None,
        offset: int,
        limit: int,
    ) -> tuple[list[Job], str | None, int]:
        """Read jobs in the listing's order from ``offset``, keeping those that match, until
        the page is full or the budget is spent. Returns the page, the cursor to resume
        from (``None`` once the listing was read to its end) and how many jobs were read."""
        folded = text.casefold() if text is not None else None
        page: list[Job] = []
        position, scanned = offset, 0
        while scanned < SCAN_BUDGET:
            wanted = min(SCAN_BATCH, SCAN_BUDGET - scanned)
            batch = self.queue.list_jobs(state, position, wanted)
            for index, job in enumerate(batch):
                if _matches(job, name, folded):
                    if len(page) == limit:  # one more match: another page starts here
                        return page, str(position + index), scanned + index
                    page.append(job)
            scanned += len(batch)
            position += len(batch)
            if len(batch) < wanted:
                return page, None, scanned  # read to the end
        return page, str(position), scanned

    @staticmethod
    def _page(page: list[Job], next_cursor: str | None, scanned: int, now: float) -> JSONResponse:
        return JSONResponse(
            {
                "jobs": [job.to_dict() for job in page],
                "next": next_cursor,
                "scanned": scanned,
                "now": now,
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

    def run_now(self, request: Request) -> JSONResponse:
        return JSONResponse(self.queue.run_job_now(request.path_params["job_id"]).to_dict())

    def bulk(self, request: Request) -> JSONResponse:
        action = request.url.path.rsplit("/", 1)[-1]
        state = _state(request, required=True)
        assert state is not None
        states, _ = BULK_ACTIONS[action]
        if state.value not in states:
            raise BadRequest(f"{action} applies to {', '.join(states)} jobs, not {state.value}")
        name = request.query_params.get("name") or None
        if action == "retry":
            count = self.queue.retry_jobs(state, name=name)
        elif action == "cancel":
            count = self.queue.cancel_jobs(state, name=name)
        else:
            count = self.queue.purge_jobs(state, name=name)
        logger.info("bulk %s of %s jobs (name %s): %d", action, state.value, name, count)
        return JSONResponse({"action": action, "state": state.value, "name": name, "count": count})

    def flow(self, request: Request) -> JSONResponse:
        flow_id = request.path_params["flow_id"]
        jobs = self.queue.flow_jobs(flow_id)
        if not jobs:
            raise JobNotFoundError(f"no flow with id {flow_id!r}")
        return JSONResponse({"id": flow_id, "jobs": [_flow_job(job) for job in jobs]})

    def flow_action(self, request: Request) -> JSONResponse:
        flow_id = request.path_params["flow_id"]
        action = request.url.path.rsplit("/", 1)[-1]
        if not self.queue.flow_jobs(flow_id):
            raise JobNotFoundError(f"no flow with id {flow_id!r}")
        if action == "cancel":
            count = self.queue.cancel_flow(flow_id)
        else:
            count = self.queue.retry_flow(flow_id)
        logger.info("%s of flow %s: %d job(s)", action, flow_id, count)
        return JSONResponse({"id": flow_id, "action": action, "count": count})

    def workers(self, request: Request) -> JSONResponse:
        dispatchers = [
            {
                field.name: list(value) if isinstance(value, tuple) else value
                for field in dataclasses.fields(info)
                for value in (getattr(info, field.name),)
            }
            for info in self.queue.dispatchers()
        ]
        return JSONResponse({"now": self.queue.clock(), "dispatchers": dispatchers})

    def schedules(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "now": self.queue.clock(),
                "schedules": [info.to_dict() for info in self.queue.schedules()],
            }
        )

    def pause_schedule(self, request: Request) -> JSONResponse:
        self.queue.pause_schedule(request.path_params["name"])
        return self.schedules(request)

    def resume_schedule(self, request: Request) -> JSONResponse:
        self.queue.resume_schedule(request.path_params["name"])
        return self.schedules(request)

    def run_schedule(self, request: Request) -> JSONResponse:
        return JSONResponse(self.queue.run_schedule_now(request.path_params["name"]).to_dict())

    def pause(self, request: Request) -> JSONResponse:
        self.queue.pause(request.path_params["name"])
        return JSONResponse({"paused": sorted(self.queue.paused())})

    def resume(self, request: Request) -> JSONResponse:
        self.queue.resume(request.path_params["name"])
        return JSONResponse({"paused": sorted(self.queue.paused())})

    def csrf(self, request: Request) -> JSONResponse:
        return JSONResponse({"token": request.app.state.csrf_token})

    def meta(self, request: Request) -> JSONResponse:
        return JSONResponse(meta())

    def openapi(self, request: Request) -> JSONResponse:
        return JSONResponse(OPENAPI)

    def metrics(self, request: Request) -> Response:
        """What the backend holds, in Prometheus' text format (``jobqueue.metrics``' gauges:
        jobs by name and state, paused names, dispatchers, queue latency). Attempt counters
        and histograms come from the worker processes' own exporters."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    @functools.cached_property
    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry()
        registry.register(BackendCollector(self.queue))
        return registry


# -- errors -----------------------------------------------------------------------------------


def _status_of(exc: JobQueueError) -> int:
    if isinstance(exc, (JobNotFoundError, ScheduleNotFoundError)):
        return 404
    if isinstance(exc, JobStateError):
        return 409
    if isinstance(exc, CorruptJobError):
        return 500  # the stored record is bad: retrying will not help; the reason is shown
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
