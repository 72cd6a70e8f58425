"""The ``jobqueue`` command line: in-process through ``main()``, and as a real subprocess."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from jobqueue.cli import main

REPO = Path(__file__).resolve().parent.parent
APP = "tests.cli_app:queue"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``tests.cli_app`` with a fresh memory queue, importable the way ``--app`` imports it."""
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.delenv("JOBQUEUE_URL", raising=False)
    module = importlib.import_module("tests.cli_app")
    monkeypatch.setattr(module, "queue", module.make_queue())
    return module


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_job_jobs_stats_worker(app: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--app", APP, "submit", "greet", '{"who": "ada"}')
    assert code == 0
    job_id = out.strip()
    assert app.queue.get_job_by_id(job_id).name == "greet"

    code, out, _ = run(capsys, "--app", APP, "job", job_id)
    assert code == 0
    assert "state:     waiting" in out
    assert "Greet ada" in out

    code, out, _ = run(capsys, "--app", APP, "jobs", "--state", "waiting")
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "STATE"]
    assert row.split()[:3] == [job_id, "greet", "waiting"]

    code, out, _ = run(capsys, "--app", APP, "stats")
    assert code == 0
    assert "waiting    1" in out
    assert "total      1" in out

    code, _, _ = run(capsys, "--app", APP, "worker", "--burst")
    assert code == 0

    code, out, _ = run(capsys, "--app", APP, "job", job_id)
    assert code == 0
    assert "state:     completed" in out
    assert "attempts:  1 of 1" in out
    assert "progress:  50% half way" in out
    assert '"greeting": "hello ada"' in out
    assert "greeting ada" in out  # the handler's log line

    code, out, _ = run(capsys, "--app", APP, "jobs", "--state", "waiting")
    assert "(no waiting jobs)" in out


def test_json_output_parses(app: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--app", APP, "--json", "submit", "greet", '{"who": "bo"}')
    assert code == 0
    submitted = json.loads(out)
    assert submitted["state"] == "waiting"
    assert submitted["title"] == "Greet bo"

    code, out, _ = run(capsys, "--app", APP, "--json", "worker", "--burst")
    assert (code, json.loads(out)) == (0, {"processed": 1})

    code, out, _ = run(capsys, "--app", APP, "--json", "job", submitted["id"])
    job = json.loads(out)
    assert job["state"] == "completed"
    assert job["result"] == {"greeting": "hello bo"}
    assert [entry["message"] for entry in job["logs"]] == ["greeting bo"]

    code, out, _ = run(capsys, "--app", APP, "--json", "jobs", "--state", "completed")
    assert [j["id"] for j in json.loads(out)] == [submitted["id"]]

    code, out, _ = run(capsys, "--app", APP, "--json", "stats")
    assert json.loads(out) == {
        "waiting": 0,
        "delayed": 0,
        "active": 0,
        "completed": 1,
        "failed": 0,
    }


def test_submit_options(app: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--app", APP, "--json", "submit", "greet", '{"who": "cy"}', "--priority", "7"]
    argv += ["--delay", "3600", "--attempts", "4", "--timeout", "9", "--unique-key", "cy"]
    code, out, _ = run(capsys, *argv)
    job = json.loads(out)
    assert code == 0
    assert (job["state"], job["priority"], job["attempts"], job["timeout"]) == (
        "delayed",
        7,
        4,
        9.0,
    )
    code, out, _ = run(capsys, *argv)
    assert json.loads(out)["id"] == job["id"]  # same unique key: the pending job is returned


def test_failed_job_shows_error_and_traceback(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "--app", APP, "submit", "explode", "[1]")
    run(capsys, "--app", APP, "worker", "--burst", "--names", "explode")
    code, out, _ = run(capsys, "--app", APP, "job", out.strip())
    assert code == 0
    assert "state:     failed" in out
    assert "error:     ValueError: boom [1]" in out
    assert "traceback:" in out


def test_worker_runs_only_the_named_workers(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "--app", APP, "submit", "greet", '{"who": "di"}')
    run(capsys, "--app", APP, "submit", "explode", "null")
    code, out, _ = run(capsys, "--app", APP, "--json", "worker", "--burst", "--names", "greet")
    assert (code, json.loads(out)) == (0, {"processed": 1})
    counts = app.queue.count_by_state()
    assert (counts["completed"], counts["waiting"]) == (1, 1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "nope", "{}"], "no worker is registered under 'nope'"),
        (["worker", "--burst", "--names", "greet,nope"], "no worker is registered under 'nope'"),
        (["submit", "greet", "{not json"], "job data is not valid JSON"),
        (["submit", "greet", '{"who": "x"}', "--priority", "99999999"], "priority must be an int"),
        (["worker", "--burst", "--concurrency", "0"], "--concurrency must be >= 1"),
        (["jobs", "--state", "waiting", "--limit", "-1"], "--limit and --offset must be >= 0"),
    ],
)
def test_errors_exit_2_with_one_line(
    app: ModuleType, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "--app", APP, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert app.queue.count_by_state()["waiting"] == 0


def test_unknown_job_exits_1(app: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--app", APP, "job", "no-such-id")
    assert (code, out) == (1, "")
    assert "no job with id 'no-such-id'" in err
    code, out, _ = run(capsys, "--app", APP, "--json", "job", "no-such-id")
    assert (code, json.loads(out)) == (1, None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.cli_app", "must look like module:attribute"),
        ("tests.no_such_module:queue", "cannot import 'tests.no_such_module'"),
        ("tests.cli_app:missing", "has no 'missing'"),
        ("tests.cli_app:GREET", "expected a JobQueue, a Worker"),
    ],
)
def test_bad_app_exits_2(
    app: ModuleType, capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    code, _, err = run(capsys, "--url", "memory://", "--app", spec, "stats")
    assert code == 2
    assert err.startswith("error: ") and message in err


@pytest.mark.parametrize("spec", ["tests.cli_app:workers", "tests.cli_app:make_workers"])
def test_app_may_give_workers(
    app: ModuleType, capsys: pytest.CaptureFixture[str], spec: str
) -> None:
    code, out, _ = run(capsys, "--url", "memory://", "--app", spec, "submit", "explode", "{}")
    assert code == 0 and out.strip()


def test_worker_without_workers_exits_2(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--app", "tests.cli_app:empty_queue", "worker", "--burst")
    assert code == 2
    assert "no workers are registered; pass --app module:attribute" in err


def test_unknown_url_scheme_exits_2(app: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--url", "nosuch://x", "stats")
    assert code == 2 and "no backend for URL scheme 'nosuch'" in err


def test_usage_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "worker" in out and "submit" in out
    code, _, err = run(capsys, "jobs", "--state", "sleeping")
    assert code == 2 and "invalid choice" in err
    assert run(capsys)[0] == 2


# -- real processes ---------------------------------------------------------------------------


def jobqueue(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobqueue", *argv],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_subprocess_errors_without_traceback() -> None:
    done = jobqueue("--app", APP, "submit", "nope", "{}")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: no worker is registered under 'nope'")
    assert "Traceback" not in done.stderr

    done = jobqueue("--app", APP, "--json", "stats")
    assert done.returncode == 0
    assert json.loads(done.stdout)["waiting"] == 0


def _has_sqlite_backend() -> bool:
    try:
        from jobqueue.backends.sqlite import SQLiteBackend  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_sqlite_backend(), reason="the SQLite backend is not there yet")
def test_subprocess_end_to_end_on_sqlite(tmp_path: Path) -> None:
    """Separate processes share a SQLite file: submit, work, then read the result."""
    env = {"JOBQUEUE_URL": f"sqlite:///{tmp_path / 'jobs.db'}"}
    app = ["--app", "tests.cli_app:workers"]
    done = jobqueue(*app, "submit", "greet", '{"who": "eve"}', env=env)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()

    done = jobqueue("--json", "stats", env=env)
    assert json.loads(done.stdout)["waiting"] == 1

    done = jobqueue(*app, "worker", "--burst", env=env)
    assert done.returncode == 0, done.stderr
    assert f"completed greet {job_id}" in done.stderr  # the worker logs what it does

    done = jobqueue("--json", "job", job_id, env=env)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert (job["state"], job["result"]) == ("completed", {"greeting": "hello eve"})

    done = jobqueue("jobs", "--state", "completed", env=env)
    assert job_id in done.stdout


def test_worker_prefetch(app: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    for who in ("a", "b", "c"):
        assert run(capsys, "--app", APP, "submit", "greet", json.dumps({"who": who}))[0] == 0
    code, _, _ = run(capsys, "--app", APP, "worker", "--burst", "--prefetch", "2")
    assert code == 0
    assert app.queue.count_by_state()["completed"] == 3
    code, _, err = run(capsys, "--app", APP, "worker", "--burst", "--prefetch", "0")
    assert code == 2 and "--prefetch" in err
