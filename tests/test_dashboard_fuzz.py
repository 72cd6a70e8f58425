"""Fuzz the dashboard's JSON API from its own OpenAPI document, with schemathesis.

The schema is the one the app serves at ``/api/openapi.json``. Every operation gets a bounded,
derandomized number of generated requests (valid ones and, where the schema allows, invalid
ones) on each backend; each answer must not be a 5xx, must carry a status the schema lists,
and must match the schema of that status (an error is ``{"error": "..."}``). Requests carry a
bearer token and the CSRF header, so they reach the handlers; some of them name jobs and
worker names that exist, so the handlers do real work and not only 404s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation
from starlette.applications import Starlette
from starlette.testclient import TestClient

from jobqueue import JobQueue
from jobqueue.dashboard import create_app

pytestmark = pytest.mark.timeout(120)  # per test; the whole file takes seconds

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The Host schemathesis' ASGI transport (and Starlette's test client) sends: a public name to
# the dashboard, so it is listed, as an application served under its own name lists it.
ALLOWED_HOSTS = ["testserver"]
NAMES = ["mail", "boom"]
SEEDED = 6  # jobs submitted per backend: waiting, delayed, completed, failed, cancelled, ...


def _boom(job: Any) -> None:
    raise ValueError("boom")


def _queue(url: str) -> JobQueue:
    queue = JobQueue(url, load_entrypoints=False)
    queue.add_worker("mail", lambda job: {"sent": job.data})
    queue.add_worker("boom", _boom, attempts=1)
    return queue


def _schema() -> Any:
    """The OpenAPI document as the app serves it (a memory queue: the document is static).
    The configuration is explicit, so no schemathesis.toml found around changes the run."""
    config = schemathesis.Config.from_dict(
        {"seed": 20261201, "generation": {"deterministic": True}}
    )
    with _queue("memory://") as queue:
        return schemathesis.openapi.from_asgi(
            "/api/openapi.json",
            create_app(queue, token=TOKEN, allowed_hosts=ALLOWED_HOSTS),
            config=config,
            headers=AUTH,
        )


schema = _schema()


class Fuzzed:
    """The app under test, its queue seeded with jobs of every kind of state."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.app: Starlette = create_app(queue, token=TOKEN, allowed_hosts=ALLOWED_HOSTS)
        with TestClient(self.app, headers=AUTH) as client:
            self.csrf: str = client.get("/api/csrf").json()["token"]
        completed = queue.submit_job("mail", {"to": "ada@example.com"})
        failed = queue.submit_job("boom", {"n": 1})
        queue.work(burst=True)
        waiting = queue.submit_job("mail", {"to": "<script>alert(1)</script>"})
        delayed = queue.submit_job("mail", {"to": "later"}, delay=3600)
        cancelled = queue.submit_job("mail", {"to": "never"})
        queue.cancel_job(cancelled.id)
        other = queue.submit_job("boom", {"n": 2}, priority=5)
        self.ids = [job.id for job in (completed, failed, waiting, delayed, cancelled, other)]
        assert len(self.ids) == SEEDED
        queue.pause("boom")


@pytest.fixture
def fuzzed(backend_url: str) -> Iterator[Fuzzed]:
    with _queue(backend_url) as queue:
        yield Fuzzed(queue)


@schema.parametrize()
@schema.given(pick=st.none() | st.integers(min_value=0, max_value=SEEDED - 1))
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same requests on every run: CI is deterministic
    database=None,  # nothing is written to .hypothesis/
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure shows the request as sent
    suppress_health_check=[
        # One app (and seeded queue) per test, shared by its examples: what they change
        # (a job cancelled, a name paused) is what a real client would leave behind too.
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_api_answers_every_request_as_its_schema_says(
    case: Any, pick: int | None, fuzzed: Fuzzed
) -> None:
    if _is_positive(case, "path") and pick is not None and case.path_parameters:
        # Name a job (or a worker name) that exists, so the handler gets past its lookup.
        if "job_id" in case.path_parameters:
            case.path_parameters["job_id"] = fuzzed.ids[pick]
        if "name" in case.path_parameters:
            case.path_parameters["name"] = NAMES[pick % len(NAMES)]
    csrf_sent = case.headers is not None and "X-JobQueue-CSRF" in case.headers
    if csrf_sent and _is_positive(case, "header"):  # a made-up token is refused at once
        case.headers["X-JobQueue-CSRF"] = fuzzed.csrf
    response = case.call_and_validate(app=fuzzed.app, headers=AUTH)
    assert response.status_code < 500, response.text


def _is_positive(case: Any, location: str) -> bool:
    """Whether the case's ``location`` part (path, header, ...) was generated valid."""
    if case.meta is None:
        return True
    component = case.meta.components.get(ParameterLocation(location))
    mode = component.mode if component is not None else case.meta.generation.mode
    return bool(mode.is_positive)


# -- what the fuzzer found, and what probing around it did ------------------------------------


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"cursor": "OK"}, 400),  # the schema said any string; now it says nine digits
        ({"cursor": "0000000001"}, 400),
        ({"cursor": "999999999"}, 200),
        ({"state": "", "name": "", "limit": "", "cursor": ""}, 200),  # empty is absent
        ({"limit": "²"}, 400),  # str.isdigit() but not int(): was a 500
        ({"cursor": "²"}, 400),
        ({"limit": "\u0661"}, 400),  # an Arabic-Indic one, which int() read as 1
        ({"limit": "9" * 5000}, 400),  # past int()'s 4300 digits: was a 500
        ({"cursor": "9" * 5000}, 400),
    ],
)
def test_list_query_edges(fuzzed: Fuzzed, query: dict[str, str], status: int) -> None:
    with TestClient(fuzzed.app, headers=AUTH) as client:
        response = client.get("/api/jobs", params=query)
    assert response.status_code == status, response.text
    if status == 400:
        assert isinstance(response.json()["error"], str)
        assert len(response.text) < 300  # a 5000-digit value is not echoed back whole
