"""examples/starlette_app.py through Starlette's test client, on SQLite and memory, and its
jobs run by a dispatcher (in this process, and by the CLI command its docstring gives)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from starlette.testclient import TestClient

from jobqueue import JobQueue, JobState

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "starlette_app.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("starlette_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()


@pytest.fixture(params=["memory", "sqlite"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobQueue]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/jobs.db"
    with JobQueue(url, load_entrypoints=False, max_data_bytes=200) as queue:
        yield queue


@pytest.fixture
def client(queue: JobQueue) -> Iterator[TestClient]:
    with TestClient(example.create_app(queue)) as client:  # runs the lifespan
        yield client


def test_import_answers_201_with_the_job_id_and_a_dispatcher_runs_it(
    client: TestClient, queue: JobQueue
) -> None:
    answer = client.post("/contacts/import", json={"user": "alice", "type": "google"})
    assert answer.status_code == 201
    job_id = answer.json()["job_id"]
    assert answer.json() == {"job_id": job_id}

    shown = client.get(f"/jobs/{job_id}")
    assert shown.status_code == 200
    assert shown.json()["state"] == "waiting"
    assert shown.json()["title"] == "Import google contacts for user alice"
    assert shown.json()["data"] == {"user": "alice", "type": "google"}

    assert queue.work(burst=True) == 1
    done = client.get(f"/jobs/{job_id}").json()
    assert (done["state"], done["result"]) == ("completed", {"imported_for": "alice"})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "must be JSON"),
        (b"\xff\xfe", "must be JSON"),
        (b'["alice"]', '"user" string'),
        (b'{"type": "google"}', '"user" string'),
        (b'{"user": "alice", "notes": "' + b"x" * 300 + b'"}', "over the limit of 200"),
    ],
)
def test_bad_input_answers_400_and_stores_nothing(
    client: TestClient, queue: JobQueue, body: bytes, message: str
) -> None:
    answer = client.post(
        "/contacts/import", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert sum(queue.count_by_state().values()) == 0


def test_unknown_job_answers_404(client: TestClient) -> None:
    answer = client.get("/jobs/4242")
    assert answer.status_code == 404
    assert answer.json() == {"error": "no such job"}


def test_the_documented_dispatcher_command_runs_the_jobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    queue = JobQueue(url, load_entrypoints=False)
    with queue, TestClient(example.create_app(queue)) as client:
        job_id = client.post("/contacts/import", json={"user": "bob"}).json()["job_id"]
    # As the example's docstring says, from the example's directory (plus --burst).
    command = [sys.executable, "-m", "jobqueue", "--url", url, "--app"]
    command += ["starlette_app:WORKERS", "worker", "--burst"]
    env = {k: v for k, v in os.environ.items() if k != "JOBQUEUE_URL"}
    done = subprocess.run(
        command, cwd=EXAMPLE.parent, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    with JobQueue(url, load_entrypoints=False) as queue:
        job = queue.get_job_by_id(job_id)
    assert job is not None and job.state is JobState.COMPLETED
    assert job.result == {"imported_for": "bob"}
