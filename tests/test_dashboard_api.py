"""The dashboard's JSON API (jobqueue.dashboard) through Starlette's test client, on every
backend: each route, pagination, each refusal, the security headers."""

from __future__ import annotations

import base64
import posixpath
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

import jobqueue.dashboard
from jobqueue import Flow, JobQueue, JobState, Schedule
from jobqueue.dashboard import api, create_app
from jobqueue.dashboard.openapi import BULK_ACTIONS, OPENAPI
from jobqueue.dashboard.security import is_loopback
from jobqueue.errors import InvalidSettingError

LOCAL = ("127.0.0.1", 1234)
TOKEN = "s3cret-token"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


class Client(TestClient):
    """Starlette's test client sending a loopback ``Host``, as a browser on this host does
    (its default, ``testserver``, is a name the dashboard does not answer to)."""

    def __init__(self, app: Any, **options: Any) -> None:
        super().__init__(app, base_url="http://127.0.0.1", **options)


class Titled:
    """A handler whose jobs are titled by their data."""

    def __call__(self, job: Any) -> Any:
        return job.data

    def get_title(self, data: Any) -> str:
        return str(data["title"])


def _boom(job: Any) -> None:
    raise ValueError("boom")


@pytest.fixture
def queue(backend_url: str) -> Iterator[JobQueue]:
    with JobQueue(backend_url, load_entrypoints=False) as queue:
        queue.add_worker("mail", lambda job: {"sent": job.data})
        queue.add_worker("boom", _boom, attempts=1)
        queue.add_worker("titled", Titled())
        yield queue


def client_for(queue: JobQueue, **options: Any) -> TestClient:
    """A client from loopback (served without credentials) carrying the app's CSRF token."""
    client = Client(create_app(queue, **options), client=LOCAL)
    if not options.get("token") and not options.get("basic"):
        client.headers["X-JobQueue-CSRF"] = client.get("/api/csrf").json()["token"]
    return client


@pytest.fixture
def client(queue: JobQueue) -> TestClient:
    return client_for(queue)


def assert_error(response: Any, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    assert isinstance(message, str) and message
    for fragment in fragments:
        assert fragment in message


# -- reading ----------------------------------------------------------------------------------


def test_stats(queue: JobQueue, client: TestClient) -> None:
    queue.submit_job("mail", 1)
    queue.submit_job("boom", None)
    queue.work(burst=True)
    queue.submit_job("mail", 2)
    queue.pause("boom")
    body = client.get("/api/stats").json()
    assert body["states"]["completed"] == 1 and body["states"]["failed"] == 1
    assert body["states"]["waiting"] == 1 and body["total"] == 3
    assert body["names"]["mail"]["completed"] == 1 and body["names"]["mail"]["waiting"] == 1
    assert body["names"]["boom"]["failed"] == 1
    assert body["paused"] == ["boom"] and body["dispatchers"] == 0


def test_list_jobs_pages_with_a_cursor(queue: JobQueue, client: TestClient) -> None:
    submitted = [queue.submit_job("mail", n).id for n in range(5)]
    queue.submit_job("boom", None)
    seen: list[str] = []
    cursor: str | None = ""
    pages = 0
    while cursor is not None:
        body = client.get("/api/jobs", params={"state": "waiting", "limit": 2, "cursor": cursor})
        assert body.status_code == 200
        seen += [job["id"] for job in body.json()["jobs"] if job["name"] == "mail"]
        cursor = body.json()["next"]
        pages += 1
    assert seen == submitted and pages == 3  # 6 waiting jobs, 2 a page
    named = client.get("/api/jobs", params={"name": "boom"}).json()
    assert [job["name"] for job in named["jobs"]] == ["boom"] and named["next"] is None
    everything = client.get("/api/jobs").json()
    assert len(everything["jobs"]) == 6 and everything["next"] is None
    assert everything["jobs"][0] == queue.get_job_by_id(everything["jobs"][0]["id"]).to_dict()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"state": "sleeping"}, "unknown state"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "-5"}, "cursor"),
        ({"cursor": "1.5"}, "cursor"),
    ],
)
def test_bad_list_queries_are_400(client: TestClient, query: dict[str, str], fragment: str) -> None:
    assert_error(client.get("/api/jobs", params=query), 400, fragment)


def test_one_job_and_not_found(queue: JobQueue, client: TestClient) -> None:
    job = queue.submit_job("mail", {"to": "a@example.com"})
    assert client.get(f"/api/jobs/{job.id}").json() == job.to_dict()
    assert_error(client.get("/api/jobs/424242"), 404, "424242")
    assert_error(client.get("/api/nowhere"), 404)


def test_a_script_title_comes_back_as_a_json_string(queue: JobQueue, client: TestClient) -> None:
    evil = "<script>alert(1)</script>"
    job = queue.submit_job("titled", {"title": evil})
    response = client.get(f"/api/jobs/{job.id}")
    assert response.headers["content-type"] == "application/json"
    assert response.json()["title"] == evil and response.json()["data"] == {"title": evil}
    listed = client.get("/api/jobs", params={"name": "titled"}).json()["jobs"]
    assert [each["title"] for each in listed] == [evil]


def test_workers_lists_live_dispatchers(queue: JobQueue, client: TestClient) -> None:
    assert client.get("/api/workers").json()["dispatchers"] == []
    started, release = threading.Event(), threading.Event()

    def hold(job: Any) -> None:
        started.set()
        release.wait(30)

    queue.add_worker("hold", hold)
    job = queue.submit_job("hold", None)
    dispatcher = queue.dispatcher(names=["hold"])
    thread = threading.Thread(target=dispatcher.run, kwargs={"max_jobs": 1})
    thread.start()
    try:
        assert started.wait(30)
        deadline = time.monotonic() + 10  # the next heartbeat lists the held job
        while not any(job.id in d.jobs for d in queue.dispatchers()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        (live,) = client.get("/api/workers").json()["dispatchers"]
        assert live["id"] == dispatcher.id and live["names"] == ["hold"]
        assert job.id in live["jobs"] and live["concurrency"] == 1
        assert client.get("/api/stats").json()["dispatchers"] == 1
    finally:
        release.set()
        thread.join(30)


# -- steering ---------------------------------------------------------------------------------


def test_retry_cancel_remove(queue: JobQueue, client: TestClient) -> None:
    failed = queue.submit_job("boom", None)
    queue.work(burst=True)
    retried = client.post(f"/api/jobs/{failed.id}/retry")
    assert retried.status_code == 200 and retried.json()["state"] == "waiting"
    assert retried.json()["id"] == failed.id
    waiting = queue.submit_job("mail", 1)
    assert_error(client.post(f"/api/jobs/{waiting.id}/retry"), 409)
    cancelled = client.post(f"/api/jobs/{waiting.id}/cancel")
    assert cancelled.json() == {"id": waiting.id, "state": "cancelled"}
    assert client.delete(f"/api/jobs/{waiting.id}").json() == {"id": waiting.id, "removed": True}
    assert queue.get_job_by_id(waiting.id) is None
    for response in (
        client.post("/api/jobs/424242/retry"),
        client.post("/api/jobs/424242/cancel"),
        client.delete("/api/jobs/424242"),
    ):
        assert_error(response, 404, "424242")
    assert_error(client.get("/api/jobs/x/retry"), 405)


def test_meta_lists_the_states_in_display_order_and_what_each_allows(client: TestClient) -> None:
    body = client.get("/api/meta").json()
    assert [state["name"] for state in body["states"]] == [state.value for state in JobState]
    by_name = {state.pop("name"): state for state in body["states"]}
    assert by_name == {
        "waiting": {"finished": False, "actions": ["cancel", "remove"], "bulk": ["cancel"]},
        "delayed": {
            "finished": False,
            "actions": ["run-now", "cancel", "remove"],
            "bulk": ["cancel"],
        },
        "active": {"finished": False, "actions": ["cancel", "remove"], "bulk": ["cancel"]},
        "completed": {"finished": True, "actions": ["remove"], "bulk": ["remove"]},
        "failed": {"finished": True, "actions": ["retry", "remove"], "bulk": ["retry", "remove"]},
        "cancelled": {
            "finished": True,
            "actions": ["retry", "remove"],
            "bulk": ["retry", "remove"],
        },
        "blocked": {"finished": False, "actions": ["cancel", "remove"], "bulk": ["cancel"]},
    }


class Hold:
    """A handler that runs until released (in short waits, so a cancel can interrupt it)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, job: Any) -> None:
        while not self.release.wait(0.02):
            pass


def _call(client: TestClient, action: str, job_id: str) -> Any:
    if action == "remove":
        return client.delete(f"/api/jobs/{job_id}")
    return client.post(f"/api/jobs/{job_id}/{action}")


def test_meta_says_exactly_which_actions_work_in_each_state(
    queue: JobQueue, client: TestClient
) -> None:
    """The pages offer what GET /api/meta allows: here every action is tried on a job in
    every state, and it changes the job exactly when the meta says it is allowed."""
    meta = client.get("/api/meta").json()["states"]
    actions = ["retry", "run-now", "cancel", "remove"]
    hold = Hold()
    queue.add_worker("hold", hold)
    jobs: dict[str, list[str]] = {}
    jobs["completed"] = [queue.submit_job("mail", n).id for n in range(4)]
    jobs["failed"] = [queue.submit_job("boom", n).id for n in range(4)]
    queue.work(burst=True)
    jobs["cancelled"] = [queue.submit_job("mail", n).id for n in range(4)]
    for job_id in jobs["cancelled"]:
        queue.cancel_job(job_id)
    jobs["waiting"] = [queue.submit_job("mail", n).id for n in range(4)]
    jobs["delayed"] = [queue.submit_job("mail", n, delay=3600).id for n in range(4)]
    jobs["active"] = [queue.submit_job("hold", n).id for n in range(4)]
    jobs["blocked"] = []
    for n in range(4):  # each waits for a delayed job no action here touches
        flow = Flow()
        flow.add("mail", n, depends_on=[flow.add("mail", n, delay=3600)])
        jobs["blocked"].append(queue.submit_flow(flow)[1].id)
    dispatcher = queue.dispatcher(names=["hold"], concurrency=4, idle_timeout=0.05)
    thread = threading.Thread(target=dispatcher.run, name="test-dispatcher")
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while queue.count_by_state()[JobState.ACTIVE] < 4:
            assert time.monotonic() < deadline, "the dispatcher did not take the jobs"
            time.sleep(0.01)
        for info in meta:
            state = info["name"]
            for action, job_id in zip(actions, jobs[state], strict=True):
                before = queue.get_job_by_id(job_id)
                assert before is not None and before.state.value == state
                answer = _call(client, action, job_id)
                after = queue.get_job_by_id(job_id)
                changed = answer.status_code == 200 and (
                    after is None
                    or after.state is not before.state
                    or after.cancel_requested != before.cancel_requested
                )
                assert changed == (action in info["actions"]), (state, action, answer.text)
                assert answer.status_code in (200, 409), (state, action, answer.text)
            for action in BULK_ACTIONS:
                answer = client.post(f"/api/bulk/{action}", params={"state": state, "name": "-"})
                allowed = answer.status_code == 200
                assert allowed == (action in info["bulk"]), (state, action, answer.text)
    finally:
        hold.release.set()
        dispatcher.stop(grace_seconds=1)
        thread.join(15)


def test_pause_and_resume(queue: JobQueue, client: TestClient) -> None:
    assert client.post("/api/names/mail/pause").json() == {"paused": ["mail"]}
    assert client.post("/api/names/boom/pause").json() == {"paused": ["boom", "mail"]}
    assert queue.paused() == frozenset({"mail", "boom"})
    assert client.post("/api/names/mail/resume").json() == {"paused": ["boom"]}


def test_mounted_under_a_prefix(queue: JobQueue) -> None:
    host = Starlette(routes=[Mount("/jobqueue", app=create_app(queue, token=TOKEN))])
    client = Client(host, headers={"Authorization": f"Bearer {TOKEN}"})
    job = queue.submit_job("mail", 1)
    assert client.get(f"/jobqueue/api/jobs/{job.id}").json()["id"] == job.id
    csrf = client.get("/jobqueue/api/csrf").json()["token"]
    paused = client.post("/jobqueue/api/names/mail/pause", headers={"X-JobQueue-CSRF": csrf})
    assert paused.json() == {"paused": ["mail"]}


def test_openapi_lists_exactly_the_routes(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    assert document == OPENAPI and document["openapi"].startswith("3.")
    app = client.app
    assert isinstance(app, Starlette)
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith("/api/")
        for method in route.methods or ()
        if method != "HEAD"
    }
    described = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert served == described


# -- security ---------------------------------------------------------------------------------


def test_every_answer_carries_the_security_headers(queue: JobQueue, client: TestClient) -> None:
    refused = Client(create_app(queue))  # "testclient" is not loopback
    foreign = client.get("/api/stats", headers={"Host": "rebind.evil.example"})
    for response in (
        foreign,
        client.get("/api/stats"),
        client.get("/api/jobs/424242"),
        client.get("/api/jobs", params={"limit": "0"}),
        client.post("/api/names/mail/pause", headers={"X-JobQueue-CSRF": "wrong"}),
        refused.get("/api/stats"),
    ):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (response.status_code, name)


def test_without_credentials_only_loopback_is_served(queue: JobQueue) -> None:
    app = create_app(queue)
    assert_error(Client(app).get("/api/stats"), 403, "token=", "basic=", "authorize=")
    assert_error(Client(app, client=("10.1.2.3", 5)).get("/api/stats"), 403)
    for host in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert Client(app, client=(host, 5)).get("/api/stats").status_code == 200
    assert not any(is_loopback(h) for h in (None, "", "localhost", "10.0.0.1", "::ffff:10.0.0.1"))


def test_bearer_token(queue: JobQueue) -> None:
    client = Client(create_app(queue, token=TOKEN))  # any client address, given the token
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        response = client.get("/api/stats", headers=headers)
        assert_error(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    basic = base64.b64encode(f"x:{TOKEN}".encode()).decode()
    assert_error(client.get("/api/stats", headers={"Authorization": f"Basic {basic}"}), 401)


def test_basic_auth(queue: JobQueue) -> None:
    client = Client(create_app(queue, basic=("admin", "pässword")))
    response = client.get("/api/stats")
    assert_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Basic")
    assert client.get("/api/stats", auth=("admin", "pässword")).status_code == 200
    for wrong in (("admin", "nope"), ("root", "pässword")):
        assert_error(client.get("/api/stats", auth=wrong), 401)
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer x"):
        assert_error(client.get("/api/stats", headers={"Authorization": header}), 401)


def test_authorize_callable_decides(queue: JobQueue) -> None:
    def allow(request: Request) -> bool:
        return request.headers.get("x-user") == "ops"

    client = Client(create_app(queue, authorize=allow))
    assert client.get("/api/stats", headers={"X-User": "ops"}).status_code == 200
    assert_error(client.get("/api/stats", headers={"X-User": "guest"}), 403)


def test_bad_settings_are_refused(queue: JobQueue) -> None:
    for options in ({"token": ""}, {"basic": ("admin",)}, {"basic": ("", "x")}, {"authorize": 1}):
        with pytest.raises(InvalidSettingError):
            create_app(queue, **options)  # type: ignore[arg-type]


def test_read_only_refuses_every_change(queue: JobQueue) -> None:
    client = client_for(queue, read_only=True)
    job = queue.submit_job("mail", 1)
    assert client.get(f"/api/jobs/{job.id}").status_code == 200
    for response in (
        client.post(f"/api/jobs/{job.id}/cancel"),
        client.post(f"/api/jobs/{job.id}/retry"),
        client.delete(f"/api/jobs/{job.id}"),
        client.post("/api/names/mail/pause"),
        client.post("/api/names/mail/resume"),
    ):
        assert_error(response, 403, "read-only")
    assert queue.get_job_by_id(job.id).state.value == "waiting"  # type: ignore[union-attr]
    assert queue.paused() == frozenset()


def test_csrf_header_is_required(queue: JobQueue) -> None:
    client = Client(create_app(queue, token=TOKEN), headers={"Authorization": f"Bearer {TOKEN}"})
    job = queue.submit_job("mail", 1)
    assert_error(client.post(f"/api/jobs/{job.id}/cancel"), 403, "X-JobQueue-CSRF")
    wrong = {"X-JobQueue-CSRF": "not-the-token"}
    assert_error(client.delete(f"/api/jobs/{job.id}", headers=wrong), 403, "X-JobQueue-CSRF")
    other_app = Client(create_app(queue, token=TOKEN), headers=client.headers)
    assert other_app.get("/api/csrf").json()["token"] != client.get("/api/csrf").json()["token"]
    assert queue.get_job_by_id(job.id).state.value == "waiting"  # type: ignore[union-attr]
    right = {"X-JobQueue-CSRF": client.get("/api/csrf").json()["token"]}
    assert client.post(f"/api/jobs/{job.id}/cancel", headers=right).status_code == 200


def test_foreign_origin_is_refused(queue: JobQueue, client: TestClient) -> None:
    job = queue.submit_job("mail", 1)
    for origin in ("https://evil.example", "null", "http://testserver.evil.example"):
        response = client.post(f"/api/jobs/{job.id}/cancel", headers={"Origin": origin})
        assert_error(response, 403, "Origin")
    assert queue.get_job_by_id(job.id).state.value == "waiting"  # type: ignore[union-attr]
    # A GET from elsewhere changes nothing and, without CORS headers, is unreadable there.
    assert client.get("/api/stats", headers={"Origin": "https://evil.example"}).status_code == 200
    same = client.post(f"/api/jobs/{job.id}/cancel", headers={"Origin": "http://127.0.0.1"})
    assert same.status_code == 200


# DNS rebinding: a page on rebind.evil.example whose name now resolves to 127.0.0.1 talks to the
# dashboard from the user's browser. Its requests come from loopback, and its Origin names the
# same host as its Host, so only the Host's name tells them apart.
FOREIGN_HOSTS = [
    "rebind.evil.example:8080",
    "rebind.evil.example",
    "10.1.2.3",  # an address, not loopback
    "10.1.2.3:8080",
    "",
    " ",
    "localhost.evil.example",
    "127.0.0.1.evil.example",
    "evil@127.0.0.1",
    "127.0.0.1:8080/x",
    "[::2]:8080",
    "0.0.0.0",
]
LOOPBACK_HOSTS = [
    "localhost",
    "LocalHost:8080",
    "localhost.",
    "127.0.0.1",
    "127.0.0.1:8080",
    "127.8.9.10:80",
    "[::1]",
    "[::1]:8080",
    "[::ffff:127.0.0.1]:8080",
]
EVERY_KIND_OF_PATH = ["/", "/static/app.js", "/metrics", "/api/stats", "/api/jobs", "/api/csrf"]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_a_foreign_host_is_refused_before_anything_is_read_or_changed(
    queue: JobQueue, client: TestClient, host: str
) -> None:
    job = queue.submit_job("mail", {"to": "ada@example.com"})
    csrf = client.headers["X-JobQueue-CSRF"]
    for path in EVERY_KIND_OF_PATH:
        response = client.get(path, headers={"Host": host})
        assert_error(response, 400, "Host", "allowed_hosts")
        assert csrf not in response.text and "ada@example.com" not in response.text
    # A rebinding page sends its own name as Host and as Origin, and it has read no token;
    # even with the right token every change is refused.
    origin = {"Origin": f"http://{host.strip()}", "Host": host}
    for response in (
        client.post("/api/names/mail/pause", headers=origin),
        client.post(f"/api/jobs/{job.id}/cancel", headers=origin),
        client.delete(f"/api/jobs/{job.id}", headers=origin),
        client.post("/api/bulk/remove", params={"state": "waiting"}, headers=origin),
    ):
        assert_error(response, 400, "Host")
    assert queue.paused() == frozenset()
    assert queue.get_job_by_id(job.id).state.value == "waiting"  # type: ignore[union-attr]


def test_the_curl_of_the_report_gets_no_token(queue: JobQueue) -> None:
    """``curl -H 'Host: rebind.evil.example:8080' 127.0.0.1:8080/api/csrf`` answered 200 with
    the token, and a POST with that Host, its Origin and the token paused the name."""
    app = create_app(queue)
    token = app.state.csrf_token
    rebound = Client(app, client=LOCAL, headers={"Host": "rebind.evil.example:8080"})
    answer = rebound.get("/api/csrf")
    assert_error(answer, 400, "'rebind.evil.example:8080'")
    assert token not in answer.text
    pause = rebound.post(
        "/api/names/mail/pause",
        headers={"Origin": "http://rebind.evil.example:8080", "X-JobQueue-CSRF": token},
    )
    assert_error(pause, 400, "Host")
    assert queue.paused() == frozenset()


def test_several_host_headers_are_refused(client: TestClient) -> None:
    for pair in (["127.0.0.1", "rebind.evil.example"], ["127.0.0.1", "127.0.0.1"]):
        response = client.get("/api/csrf", headers=[("Host", host) for host in pair])
        assert_error(response, 400, "several Host headers")


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_loopback_hosts_are_served(queue: JobQueue, client: TestClient, host: str) -> None:
    headers = {"Host": host}
    for path in EVERY_KIND_OF_PATH:
        assert client.get(path, headers=headers).status_code == 200, path
    paused = client.post("/api/names/mail/pause", headers=headers)
    assert paused.json() == {"paused": ["mail"]}, paused.text
    resumed = client.post("/api/names/mail/resume", headers=headers)
    assert resumed.json() == {"paused": []}, resumed.text


def test_with_credentials_allowed_hosts_names_the_public_ones(queue: JobQueue) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # By default, loopback names only: a public name must be listed.
    default = Client(create_app(queue, token=TOKEN), headers=auth)
    assert default.get("/api/stats", headers={"Host": "localhost:8080"}).status_code == 200
    assert_error(default.get("/api/stats", headers={"Host": "jobs.example.com"}), 400)
    assert_error(default.get("/", headers={"Host": "10.1.2.3"}), 400)

    app = create_app(
        queue, token=TOKEN, allowed_hosts=["Jobs.Example.com.", ".ops.example", "10.0.0.5"]
    )
    listed = Client(app, headers=auth)
    for host in (
        "jobs.example.com",
        "JOBS.example.com:443",
        "ops.example",
        "a.b.ops.example",
        "10.0.0.5:8080",
        "[::1]",
    ):
        assert listed.get("/api/stats", headers={"Host": host}).status_code == 200, host
    for host in (
        "example.com",
        "evil.jobs.example.com",
        "opsx.example",
        "rebind.evil.example",
        "10.0.0.6",
        "",
    ):
        assert_error(listed.get("/api/stats", headers={"Host": host}), 400)
    # Credentials are still asked for on a listed name.
    assert_error(Client(app).get("/api/stats", headers={"Host": "jobs.example.com"}), 401)

    anywhere = Client(create_app(queue, token=TOKEN, allowed_hosts=["*"]), headers=auth)
    assert anywhere.get("/api/stats", headers={"Host": "whatever.example:81"}).status_code == 200
    assert_error(anywhere.get("/api/stats", headers={"Host": "evil@host"}), 400)  # malformed
    assert_error(anywhere.get("/api/stats", headers={"Host": ""}), 400)


def test_origin_is_checked_against_the_allowed_hosts(queue: JobQueue) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    app = create_app(queue, token=TOKEN, allowed_hosts=["jobs.example.com"])
    client = Client(app, headers={**auth, "X-JobQueue-CSRF": app.state.csrf_token})
    # A proxy that sends Host 127.0.0.1:8080 upstream: the browser's Origin is the public name.
    proxied = {"Host": "127.0.0.1:8080", "Origin": "https://jobs.example.com"}
    assert client.post("/api/names/mail/pause", headers=proxied).status_code == 200
    # An Origin naming the same (allowed) host as the Host it came with proves nothing by
    # itself: a foreign one is refused whatever the Host says.
    for origin in ("https://rebind.evil.example", "http://jobs.example.com.evil.example", "null"):
        for host in ("127.0.0.1:8080", "jobs.example.com"):
            refused = client.post(
                "/api/names/mail/resume", headers={"Host": host, "Origin": origin}
            )
            assert_error(refused, 403, "Origin")
    assert queue.paused() == frozenset({"mail"})
    # With "*" every name is allowed, so the Origin must be the request's own host and port.
    anywhere = create_app(queue, token=TOKEN, allowed_hosts=["*"])
    client = Client(anywhere, headers={**auth, "X-JobQueue-CSRF": anywhere.state.csrf_token})
    same = {"Host": "jobs.example.net:8443", "Origin": "https://jobs.example.net:8443"}
    assert client.post("/api/names/mail/resume", headers=same).status_code == 200
    other = {"Host": "jobs.example.net:8443", "Origin": "https://rebind.evil.example"}
    assert_error(client.post("/api/names/mail/pause", headers=other), 403, "Origin")
    assert queue.paused() == frozenset()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"allowed_hosts": ["jobs.example.com"]}, "need credentials"),
        ({"allowed_hosts": ["*"]}, "need credentials"),
        ({"token": TOKEN, "allowed_hosts": "jobs.example.com"}, "not a single str"),
        ({"token": TOKEN, "allowed_hosts": [""]}, "non-empty"),
        ({"token": TOKEN, "allowed_hosts": ["https://jobs.example.com"]}, "not a host name"),
        ({"token": TOKEN, "allowed_hosts": ["jobs.example.com:443"]}, "not a host name"),
        ({"token": TOKEN, "allowed_hosts": ["jobs.example.com/x"]}, "not a host name"),
        ({"token": TOKEN, "allowed_hosts": [None]}, "non-empty"),
    ],
)
def test_bad_allowed_hosts_are_refused(
    queue: JobQueue, options: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidSettingError, match=fragment):
        create_app(queue, **options)
    assert create_app(queue, allowed_hosts=["localhost", "127.0.0.1", "[::1]"]) is not None


def test_bad_input_never_gets_a_500(queue: JobQueue, client: TestClient) -> None:
    probes = [
        client.get("/api/jobs", params={"state": "%00"}),
        client.get("/api/jobs", params={"limit": "9" * 40}),
        client.get("/api/jobs", params={"cursor": "9" * 40}),
        client.get("/api/jobs/%20"),
        client.delete("/api/jobs/..%2F"),
        client.put("/api/jobs/1"),
    ]
    for response in probes:
        assert 400 <= response.status_code < 500, (response.request.url, response.text)
        assert "error" in response.json()


# -- what the pages need ------------------------------------------------------------------------


def test_stats_tell_the_server_time_latency_and_read_only(
    queue: JobQueue, client: TestClient
) -> None:
    before = queue.clock()
    queue.submit_job("mail", 1)
    body = client.get("/api/stats").json()
    assert before <= body["now"] <= queue.clock()
    assert 0 <= body["latency"]["mail"] <= queue.clock() - before + 1
    assert "boom" not in body["latency"] and body["read_only"] is False
    assert client_for(queue, read_only=True).get("/api/stats").json()["read_only"] is True


def test_throughput_per_minute_and_per_hour(queue: JobQueue, client: TestClient) -> None:
    queue.submit_jobs("mail", [1, 2, 3])
    queue.submit_job("boom", None)
    queue.work(burst=True)
    minutes = client.get("/api/throughput").json()
    assert minutes["period"] == "minute" and len(minutes["buckets"]) == 60
    assert sum(bucket["completed"] for bucket in minutes["buckets"]) == 3
    assert sum(bucket["failed"] for bucket in minutes["buckets"]) == 1
    starts = [bucket["start"] for bucket in minutes["buckets"]]
    assert starts == sorted(starts) and starts[-1] <= minutes["now"]
    hours = client.get("/api/throughput", params={"period": "hour"}).json()
    assert len(hours["buckets"]) == 24
    assert sum(bucket["completed"] for bucket in hours["buckets"]) == 3
    assert_error(client.get("/api/throughput", params={"period": "week"}), 400, "period")


def test_filter_by_id_or_title_text(queue: JobQueue, client: TestClient) -> None:
    jobs = [queue.submit_job("titled", {"title": f"Import of customer {n}"}) for n in range(5)]
    zebra = queue.submit_job("titled", {"title": "the ZEBRA account"})
    queue.submit_job("mail", "zebra in the data, not the title")
    found = client.get("/api/jobs", params={"q": "zebra"}).json()
    assert [job["id"] for job in found["jobs"]] == [zebra.id]
    by_id = client.get("/api/jobs", params={"q": jobs[2].id, "state": "waiting"}).json()
    assert by_id["jobs"][0]["id"] == jobs[2].id
    by_name = client.get("/api/jobs", params={"q": "mail"}).json()
    assert [job["name"] for job in by_name["jobs"]] == ["mail"]
    customers = client.get("/api/jobs", params={"q": "customer", "state": "waiting", "limit": 2})
    first = customers.json()
    assert len(first["jobs"]) == 2 and first["next"] is not None
    rest = client.get(
        "/api/jobs", params={"q": "customer", "state": "waiting", "cursor": first["next"]}
    ).json()
    assert [job["id"] for job in first["jobs"] + rest["jobs"]] == [job.id for job in jobs]
    assert rest["next"] is None


def test_a_filtered_search_reads_a_bounded_number_of_jobs(
    queue: JobQueue, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "SCAN_BUDGET", 10)
    monkeypatch.setattr(api, "SCAN_BATCH", 4)
    queue.submit_jobs("mail", list(range(25)))
    rare = queue.submit_job("boom", None)
    first = client.get("/api/jobs", params={"name": "boom", "state": "waiting"}).json()
    assert first["jobs"] == [] and first["scanned"] == 10 and first["next"] == "10"
    second = client.get(
        "/api/jobs", params={"name": "boom", "state": "waiting", "cursor": first["next"]}
    ).json()
    assert second["jobs"] == [] and second["next"] == "20"
    last = client.get(
        "/api/jobs", params={"name": "boom", "state": "waiting", "cursor": second["next"]}
    ).json()
    assert [job["id"] for job in last["jobs"]] == [rare.id] and last["next"] is None


def test_run_a_delayed_job_now(queue: JobQueue, client: TestClient) -> None:
    later = queue.submit_job("mail", 1, delay=3600)
    answer = client.post(f"/api/jobs/{later.id}/run-now")
    assert answer.status_code == 200 and answer.json()["state"] == "waiting"
    assert queue.get_job_by_id(later.id).state.value == "waiting"  # type: ignore[union-attr]
    assert_error(client.post(f"/api/jobs/{later.id}/run-now"), 409)
    assert_error(client.post("/api/jobs/424242/run-now"), 404, "424242")


def test_bulk_actions_answer_how_many_jobs_they_touched(
    queue: JobQueue, client: TestClient
) -> None:
    queue.submit_jobs("boom", [1, 2, 3])
    queue.submit_jobs("mail", [1, 2])
    queue.work(burst=True)
    queue.submit_jobs("mail", [3, 4, 5, 6])
    retried = client.post("/api/bulk/retry", params={"state": "failed", "name": "boom"})
    assert retried.json() == {"action": "retry", "state": "failed", "name": "boom", "count": 3}
    cancelled = client.post("/api/bulk/cancel", params={"state": "waiting", "name": "mail"})
    assert cancelled.json()["count"] == 4
    removed = client.post("/api/bulk/remove", params={"state": "completed"})
    assert removed.json()["count"] == 2
    counts = queue.count_by_name()
    assert counts["boom"][JobState.WAITING] == 3 and counts["mail"][JobState.CANCELLED] == 4
    assert counts["mail"][JobState.COMPLETED] == 0
    assert_error(client.post("/api/bulk/explode", params={"state": "failed"}), 404)
    assert_error(client.post("/api/bulk/retry"), 400, "state")
    assert_error(client.post("/api/bulk/retry", params={"state": "waiting"}), 400)
    assert_error(client.post("/api/bulk/remove", params={"state": "waiting"}), 400)
    assert_error(client.post("/api/bulk/cancel", params={"state": "completed"}), 400)
    assert_error(
        client_for(queue, read_only=True).post("/api/bulk/retry", params={"state": "failed"}),
        403,
        "read-only",
    )


IMPORT = re.compile(r"""^\s*import\s[^;]*?\sfrom\s+"(\.[^"]+)";""", re.MULTILINE | re.DOTALL)


def _page_modules(client: TestClient, entry: str) -> dict[str, Any]:
    """The page's ES modules as served: ``entry`` and every module it imports, followed to
    the end (relative imports, as the browser resolves them)."""
    found: dict[str, Any] = {}
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in found:
            continue
        found[path] = answer = client.get(path)
        for target in IMPORT.findall(answer.text):
            todo.append(posixpath.normpath(posixpath.join(posixpath.dirname(path), target)))
    return found


def test_every_page_module_is_served_and_none_is_left_out(client: TestClient) -> None:
    modules = _page_modules(client, "/static/app.js")
    assert all(answer.status_code == 200 for answer in modules.values()), modules
    static = Path(jobqueue.dashboard.__file__).with_name("static")
    shipped = {"/static/" + str(file.relative_to(static)) for file in static.rglob("*.js")}
    assert set(modules) == shipped
    assert {"/static/js/api.js", "/static/js/views/jobs.js"} <= shipped


def test_the_page_shell_and_its_files(queue: JobQueue, client: TestClient) -> None:
    shell = client.get("/")
    assert shell.status_code == 200 and shell.headers["content-type"].startswith("text/html")
    assert 'data-base="/"' in shell.text and 'src="/static/app.js"' in shell.text
    csp = shell.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and shell.headers["x-frame-options"] == "DENY"
    assert shell.headers["cache-control"] == "no-store"
    assert '<script type="module" src="/static/app.js">' in shell.text
    # Nothing in the page's scripts turns a string into markup or code.
    unsafe = r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function"
    for path, script in _page_modules(client, "/static/app.js").items():
        assert script.status_code == 200, path
        # A browser runs a module script only under a JavaScript MIME type.
        assert script.headers["content-type"].startswith("text/javascript"), path
        assert re.search(unsafe, script.text) is None, path
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/static/favicon.svg").status_code == 200
    assert client.get("/static/nothing.js").status_code == 404
    assert client.get("/api/stats").headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )


def test_the_shell_needs_no_token_but_the_api_does(queue: JobQueue) -> None:
    anyone = Client(create_app(queue, token=TOKEN))
    assert anyone.get("/").status_code == 200
    assert anyone.get("/static/app.js").status_code == 200
    assert_error(anyone.get("/api/stats"), 401)
    # Without credentials configured the loopback rule covers the pages too.
    assert_error(Client(create_app(queue), client=("10.1.2.3", 5)).get("/"), 403)
    # The host's own check covers them as well.
    refused = Client(create_app(queue, authorize=lambda request: False), client=LOCAL)
    assert_error(refused.get("/"), 403)


def test_the_shell_under_a_prefix(queue: JobQueue) -> None:
    host = Starlette(routes=[Mount("/jobqueue", app=create_app(queue))])
    client = Client(host, client=LOCAL)
    shell = client.get("/jobqueue/")
    assert 'data-base="/jobqueue/"' in shell.text
    assert 'src="/jobqueue/static/app.js"' in shell.text
    assert client.get("/jobqueue/static/app.js").status_code == 200
    moved = client.get("/jobqueue", follow_redirects=False)
    assert moved.status_code in (307, 308) and moved.headers["location"].endswith("/jobqueue/")


def test_metrics_beside_the_pages(queue: JobQueue) -> None:
    queue.submit_jobs("mail", [1, 2])
    queue.pause("boom")
    app = create_app(queue, token=TOKEN)
    assert_error(Client(app).get("/metrics"), 401)
    scraped = Client(app, headers={"Authorization": f"Bearer {TOKEN}"}).get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    assert 'jobqueue_jobs{name="mail",state="waiting"} 2.0' in scraped.text
    assert 'jobqueue_paused{name="boom"} 1.0' in scraped.text
    assert 'jobqueue_oldest_waiting_seconds{name="mail"}' in scraped.text
    assert (
        scraped.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )


def test_schedules_listed_paused_resumed_and_run(queue: JobQueue, client: TestClient) -> None:

    queue.add_schedule(
        Schedule(name="mail-every-minute", worker="mail", every=timedelta(minutes=1))
    )
    queue.scheduler().run_pending()
    (listed,) = client.get("/api/schedules").json()["schedules"]
    assert listed["name"] == "mail-every-minute" and listed["worker"] == "mail"
    assert listed["paused"] is False and listed["next_run"] % 60 == 0
    paused = client.post("/api/schedules/mail-every-minute/pause").json()["schedules"]
    assert paused[0]["paused"] is True
    resumed = client.post("/api/schedules/mail-every-minute/resume").json()["schedules"]
    assert resumed[0]["paused"] is False
    job = client.post("/api/schedules/mail-every-minute/run").json()
    assert job["name"] == "mail" and job["state"] == "waiting"
    assert_error(client.post("/api/schedules/nope/pause"), 404, "nope")
    assert_error(client.post("/api/schedules/nope/run"), 404, "nope")
    assert queue.backend.schedule_record("nope") is None
