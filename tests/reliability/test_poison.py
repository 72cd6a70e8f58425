"""Issue 18 -- poison-proof: no job can stop the queue or crash a reader.

Data nested deeper than ``MAX_JSON_DEPTH`` is refused at submit (and a handler's result that
deep fails its job), whatever the caller's recursion limit. Records a foreign writer (or an
older version) stored anyway -- planted here with a SQLite ``UPDATE`` or a Redis ``HSET`` --
read as corrupt on every path: a claim fails the job with ``CorruptJobError`` and goes on,
``get_job_by_id`` raises it, listings (``list_jobs``, ``jobqueue jobs``, the dashboard) show
the job marked. Time settings and options are finite and bounded; the CLI prints any stored
time; ``jobqueue jobs | head -1`` ends quietly.
"""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from jobqueue import JobQueue
from jobqueue.cli import main
from jobqueue.dashboard import create_app
from jobqueue.errors import (
    CorruptJobError,
    InvalidOptionError,
    InvalidSettingError,
    NotSerializableError,
)
from jobqueue.job import MAX_JSON_DEPTH, UNREADABLE_TITLE, Backoff, JobState
from tests.backends.redis_fixtures import delete_namespace, new_namespace
from tests.reliability.support import key

ROOT = Path(__file__).resolve().parents[2]
DEEP = 3000
"""Deeper than any decoder manages at the default recursion limit (1000)."""


def nested(depth: int) -> Any:
    """A value of ``depth`` nested lists: ``nested(2) == [[]]``."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@dataclass
class Store:
    """A queue's URL, and a way to overwrite one stored field as a foreign writer would."""

    url: str
    plant: Callable[[str, str, str], None]
    """``plant(job_id, field, text)``: field is "data", "run_at" or "created_at"."""


def _sqlite_store(path: Path) -> Store:
    def plant(job_id: str, field: str, text: str) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        value: object = text if field == "data" else float(text)
        conn.execute(f"UPDATE jobqueue_jobs SET {field} = ? WHERE id = ?", (value, int(job_id)))
        conn.close()

    return Store(f"sqlite:///{path}", plant)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield _sqlite_store(tmp_path / "jobs.db")
        return
    base = request.getfixturevalue("redis_url")
    namespace = new_namespace()
    client = redis.Redis.from_url(base)
    fields = {"data": "d", "run_at": "r", "created_at": "c"}

    def plant(job_id: str, field: str, text: str) -> None:
        client.hset(key(namespace, f"j:{job_id}"), fields[field], text)

    yield Store(f"{base}?namespace={namespace}", plant)
    delete_namespace(client, namespace)
    client.close()


def dashboard(queue: JobQueue) -> TestClient:
    """The dashboard app as a loopback client sees it (no credentials needed)."""
    return TestClient(create_app(queue), base_url="http://127.0.0.1", client=("127.0.0.1", 1234))


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- refused at submit ------------------------------------------------------------------------


@pytest.mark.parametrize("recursion_limit", [None, 20_000])
def test_data_deeper_than_the_limit_is_refused_whatever_the_recursion_limit(
    backend_url: str, recursion_limit: int | None
) -> None:
    with JobQueue(backend_url, load_entrypoints=False) as queue:
        queue.add_worker("w", lambda job: job.data)
        before = queue.count_by_state()
        old = sys.getrecursionlimit()
        if recursion_limit is not None:
            sys.setrecursionlimit(recursion_limit)
        try:
            for depth in (MAX_JSON_DEPTH + 1, DEEP, 50_000):
                with pytest.raises(NotSerializableError, match="more than 100 levels"):
                    queue.submit_job("w", {"d": nested(depth - 1)})
                with pytest.raises(NotSerializableError, match="more than 100 levels"):
                    queue.submit_jobs("w", [1, nested(depth)])
        finally:
            sys.setrecursionlimit(old)
        assert queue.count_by_state() == before, "a refused submit stored something"
        # At the limit: stored, run, and read back everywhere.
        deepest = {"d": nested(MAX_JSON_DEPTH - 1)}
        job = queue.submit_job("w", deepest)
        assert queue.work(burst=True) == 1
        done = queue.get_job_by_id(job.id)
        assert done is not None and done.state is JobState.COMPLETED
        assert done.data == deepest and done.result == deepest
        assert [j.id for j in queue.list_jobs("completed")] == [job.id]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, DEEP])
def test_the_cli_refuses_deep_data_in_one_line(tmp_path: Path, depth: int) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "jobqueue", "--url", url, "submit", "w", "-"],
        input="[" * depth + "]" * depth,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: job data nests") and done.stderr.count("\n") == 1
    with JobQueue(url, load_entrypoints=False) as queue:
        assert sum(queue.count_by_state().values()) == 0


def test_a_result_too_deep_fails_its_job_with_a_clear_error(backend_url: str) -> None:
    with JobQueue(backend_url, load_entrypoints=False) as queue:
        queue.add_worker("w", lambda job: nested(job.data), attempts=1)
        deep, fine = queue.submit_job("w", DEEP), queue.submit_job("w", 3)
        assert queue.work(burst=True) == 2
        failed = queue.get_job_by_id(deep.id)
        assert failed is not None and failed.state is JobState.FAILED and failed.result is None
        assert failed.error is not None and failed.error.type == "NotSerializableError"
        assert "more than 100 levels" in failed.error.message
        done = queue.get_job_by_id(fine.id)
        assert done is not None and done.state is JobState.COMPLETED and done.result == [[[]]]


# -- stored by a foreign writer: corrupt on every path ----------------------------------------


@pytest.mark.parametrize("prefetch", [None, 10])
def test_deep_stored_data_is_corrupt_on_every_path_and_holds_nothing_up(
    store: Store, capsys: pytest.CaptureFixture[str], prefetch: int | None
) -> None:
    with JobQueue(store.url, load_entrypoints=False) as queue:
        queue.add_worker("w", lambda job: job.data)
        bad = queue.submit_job("w", {"n": 1}, priority=5)  # first in line
        good = queue.submit_job("w", {"n": 2})
        store.plant(bad.id, "data", "[" * DEEP + "]" * DEEP)

        with pytest.raises(CorruptJobError, match="nests deeper than 100 levels"):
            queue.get_job_by_id(bad.id)
        listed = {job.id: job for job in queue.list_jobs("waiting")}
        assert set(listed) == {bad.id, good.id}
        marked = listed[bad.id]
        assert marked.unreadable and marked.title == UNREADABLE_TITLE and marked.data is None
        assert marked.name == "w" and marked.state is JobState.WAITING
        assert marked.error is not None and marked.error.type == "CorruptJobError"
        assert not listed[good.id].unreadable and listed[good.id].data == {"n": 2}
        assert {job.id for job in queue.list_jobs()} == {bad.id, good.id}
        assert good.name in queue.queue_latency()  # the unreadable job's unknown times left out

        code, out, err = cli(capsys, "--url", store.url, "jobs", "--state", "waiting")
        assert code == 0 and err == ""
        assert bad.id in out and good.id in out and UNREADABLE_TITLE in out
        code, out, err = cli(capsys, "--url", store.url, "job", bad.id)
        assert code == 2 and out == ""
        assert err.startswith("error: ") and err.count("\n") == 1 and "100 levels" in err
        code, out, _ = cli(capsys, "--url", store.url, "--json", "jobs")
        assert code == 0 and bad.id in out

        client = dashboard(queue)
        page = client.get("/api/jobs", params={"state": "waiting"})
        assert page.status_code == 200
        shown = {job["id"]: job for job in page.json()["jobs"]}
        assert set(shown) == {bad.id, good.id}
        assert shown[bad.id]["error"]["type"] == "CorruptJobError"
        assert shown[bad.id]["title"] == UNREADABLE_TITLE
        assert client.get("/api/jobs", params={"q": bad.id}).status_code == 200
        one = client.get(f"/api/jobs/{bad.id}")
        assert one.status_code == 500 and "100 levels" in one.json()["error"]
        assert client.get(f"/api/jobs/{good.id}").json()["data"] == {"n": 2}
        assert client.get("/metrics").status_code == 200

        # The claim fails the poisoned job with its reason; the good one runs.
        assert queue.work(burst=True, prefetch=prefetch) == 1
        done = queue.get_job_by_id(good.id)
        assert done is not None and done.state is JobState.COMPLETED
        counts = queue.count_by_state()
        assert counts[JobState.FAILED] == 1 and counts[JobState.WAITING] == 0
        assert counts[JobState.ACTIVE] == 0
        [failed] = queue.list_jobs("failed")
        assert failed.id == bad.id and failed.error is not None
        assert failed.error.type == "CorruptJobError" and "100 levels" in failed.error.message
        code, out, _ = cli(capsys, "--url", store.url, "jobs", "--state", "failed")
        assert code == 0 and bad.id in out


# -- bounded settings and times ---------------------------------------------------------------


@pytest.mark.parametrize("setting", ["lease_seconds", "grace_seconds"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0, -1, 1e300, 86_401])
def test_time_settings_are_finite_and_bounded(setting: str, value: float) -> None:
    with pytest.raises(InvalidSettingError, match=setting):
        JobQueue("memory://", load_entrypoints=False, **{setting: value})


def test_the_largest_time_settings_are_accepted() -> None:
    with JobQueue(
        "memory://", lease_seconds=86_400, grace_seconds=86_400, load_entrypoints=False
    ) as queue:
        assert queue.lease_seconds == queue.grace_seconds == 86_400.0


BAD_OPTIONS: list[dict[str, Any]] = [
    {"delay": 1e300},
    {"delay": 101 * 365 * 86400},
    {"delay": math.inf},
    {"delay": math.nan},
    {"run_at": 1e300},
    {"run_at": -1e300},
    {"run_at": -1.0},
    {"run_at": math.nan},
    {"timeout": 1e300},
    {"timeout": 31 * 86400},
    {"backoff": 1e300},
    {"backoff": {"kind": "exponential", "delay": 1, "max_delay": 1e300}},
]


@pytest.mark.parametrize("options", BAD_OPTIONS, ids=lambda o: repr(o))
def test_submit_times_are_finite_and_bounded(options: dict[str, Any]) -> None:
    with JobQueue("memory://", load_entrypoints=False) as queue:
        queue.add_worker("w", lambda job: None)
        with pytest.raises(InvalidOptionError):
            queue.submit_job("w", 1, **options)
        assert sum(queue.count_by_state().values()) == 0


def test_bounded_times_within_range_are_accepted() -> None:
    with JobQueue("memory://", load_entrypoints=False) as queue:
        queue.add_worker("w", lambda job: None)
        far = queue.submit_job("w", 1, delay=99 * 365 * 86400, timeout=30 * 86400)
        assert far.state is JobState.DELAYED
        assert queue.submit_job("w", 1, run_at=0).state is JobState.WAITING
        assert Backoff.exponential(1, max_delay=86400).max_delay == 86400


@pytest.mark.parametrize("absurd", ["1e300", "-1e300", "inf", "-inf", "1e18"])
def test_any_stored_time_is_shown_by_the_cli_and_the_dashboard(
    store: Store, capsys: pytest.CaptureFixture[str], absurd: str
) -> None:
    with JobQueue(store.url, load_entrypoints=False) as queue:
        queue.add_worker("w", lambda job: None)
        job = queue.submit_job("w", 1)
        store.plant(job.id, "run_at", absurd)
        store.plant(job.id, "created_at", absurd)
        client = dashboard(queue)
        for path in ("/api/jobs", f"/api/jobs/{job.id}", "/api/stats", "/metrics"):
            assert client.get(path).status_code == 200, path
        shown = client.get(f"/api/jobs/{job.id}").json()["run_at"]
        assert shown == (float(absurd) if math.isfinite(float(absurd)) else None)
    code, out, err = cli(capsys, "--url", store.url, "job", job.id)
    assert code == 0 and err == ""
    assert f"runs at:   {float(absurd)!r} (not a date)" in out
    code, out, err = cli(capsys, "--url", store.url, "jobs")
    assert code == 0 and err == "" and "(not a date)" in out and job.id in out


# -- a closed pipe ----------------------------------------------------------------------------


def test_jobs_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    with JobQueue(url, load_entrypoints=False) as queue:
        queue.add_worker("w", lambda job: None)
        queue.submit_jobs("w", list(range(3000)))  # far more output than a pipe buffers
    process = subprocess.Popen(
        [sys.executable, "-m", "jobqueue", "--url", url, "jobs", "--limit", "3000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().startswith(b"ID")  # what head -1 reads
        process.stdout.close()  # ... before it exits
        err = process.stderr.read()
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert err == b"", err.decode(errors="replace")
    assert status == 141
