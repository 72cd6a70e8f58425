"""A Starlette app that hands contact imports to jobqueue without blocking its event loop.

The seed's contacts module answered ``POST`` with ``201 {"job_id": …}`` and let a worker do
the import; this is that endpoint on asyncio:

- ``POST /contacts/import`` with a JSON object -> ``201 {"job_id": "…"}``, or ``400`` with
  the reason when the body is not JSON or the job is refused (``InvalidJobError``);
- ``GET /jobs/{id}`` -> ``200`` with the job as JSON, or ``404``.

Run it (``pip install jobqueue starlette uvicorn``), from this directory::

    JOBQUEUE_URL=sqlite:///jobs.db uvicorn --factory starlette_app:create_app
    jobqueue --url sqlite:///jobs.db --app starlette_app:WORKERS worker   # the dispatcher

    curl -X POST localhost:8000/contacts/import -d '{"user": "alice", "type": "google"}'
    curl localhost:8000/jobs/1
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jobqueue import InvalidJobError, Job, JobQueue, Worker

logger = logging.getLogger("jobqueue.examples.starlette")


class ContactImport:
    """The ``contact-import`` worker; a real one would fetch the user's address book."""

    def handle(self, job: Job) -> dict[str, Any]:
        data = job.data
        if not isinstance(data, dict) or "user" not in data:
            raise ValueError(f'expected a JSON object with a "user", got {data!r}')
        logger.info("importing %s contacts for %s", data.get("type", "all"), data["user"])
        return {"imported_for": data["user"]}

    def get_title(self, data: Any) -> str:
        # Called at submit on whatever the client sent: describe it, never fail on it.
        if isinstance(data, dict):
            return f"Import {data.get('type', 'all')} contacts for user {data.get('user', '?')}"
        return "Import contacts"


WORKERS = [Worker("contact-import", ContactImport(), attempts=3)]
"""For dispatchers: ``jobqueue --app starlette_app:WORKERS worker``."""


def create_app(queue: JobQueue | None = None) -> Starlette:
    """The app around ``queue`` (by default one at ``$JOBQUEUE_URL``, else ``jobs.db``)."""
    jobs = queue or JobQueue(os.environ.get("JOBQUEUE_URL", "sqlite:///jobs.db"))
    for worker in WORKERS:
        if worker.name not in jobs.workers:
            jobs.add_worker(worker)

    async def import_contacts(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return JSONResponse({"error": "the request body must be JSON"}, status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("user"), str):
            return JSONResponse(
                {"error": 'send a JSON object with a "user" string'}, status_code=400
            )
        try:
            job = await jobs.aio.submit_job("contact-import", body)
        except InvalidJobError as exc:  # refused before anything was stored
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"job_id": job.id}, status_code=201)

    async def show_job(request: Request) -> JSONResponse:
        job = await jobs.aio.get_job_by_id(request.path_params["job_id"])
        if job is None:
            return JSONResponse({"error": "no such job"}, status_code=404)
        return JSONResponse(job.to_dict())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await jobs.aio.close()  # the loop's connections; the queue may outlive the app

    return Starlette(
        routes=[
            Route("/contacts/import", import_contacts, methods=["POST"]),
            Route("/jobs/{job_id}", show_job, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
