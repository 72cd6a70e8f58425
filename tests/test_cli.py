"""The ``jobqueue`` command line: in-process through ``main()``, and as a real subprocess."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from jobqueue.cli import main

REPO = Path(__file__).resolve().parent.parent
APP = "tests.cli_app:queue"
WORKED_ONE = {"jobs": 1, "attempts": 1, "completed": 1, "failed": 0, "retrying": 0}
WORKED_ONE |= {"snoozed": 0, "cancelled": 0, "lost": 0}


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
    assert (code, json.loads(out)) == (0, WORKED_ONE)

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
        "cancelled": 0,
        "blocked": 0,
        "total": 1,
    }

    code, out, _ = run(capsys, "--app", APP, "--json", "stats", "--by-name")
    assert code == 0
    assert json.loads(out) == {
        "greet": {
            "waiting": 0,
            "delayed": 0,
            "active": 0,
            "completed": 1,
            "failed": 0,
            "cancelled": 0,
            "blocked": 0,
        }
    }
    code, out, _ = run(capsys, "--app", APP, "stats", "--by-name")
    assert code == 0 and "NAME" in out and "greet" in out and "COMPLETED" in out


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
    assert job["deduplicated"] is False
    code, out, err = run(capsys, *argv)
    again = json.loads(out)
    assert again["id"] == job["id"]  # same unique key: the pending job is returned
    assert again["deduplicated"] is True
    assert f"note: job {job['id']} (delayed) already holds unique key 'cy'" in err
    assert app.queue.count_by_state()["delayed"] == 1


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
    assert (code, json.loads(out)) == (0, WORKED_ONE)
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
        ("tests.no_such_module:queue", "no module named 'tests.no_such_module'"),
        ("tests.cli_app:missing", "has no 'missing'"),
        ("tests.cli_app:GREET", "expected a JobQueue, a Worker"),
        ("tests.cli_app:explode", "needs argument(s) job"),
        ("tests.cli_app:explode", "did you mean --app tests.cli_app:queue"),
        ("tests.cli_app:queue_for", "needs argument(s) url"),
        ("tests.cli_app:broken_factory", "calling it raised RuntimeError: no config"),
        ("tests.cli_app_broken:queue", "importing tests.cli_app_broken raised ZeroDivisionError"),
        ("tests.cli_app_needs_missing:queue", "importing tests.cli_app_needs_missing failed"),
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
    code, _, _ = run(capsys, "--app", APP, "worker", "--burst", "--prefetch", "auto")
    assert code == 0
    for bad in ("0", "1001", "many"):
        code, _, err = run(capsys, "--app", APP, "worker", "--burst", "--prefetch", bad)
        assert code == 2 and "--prefetch must be auto or from 1 to 1000" in err


def test_worker_prefetch_is_adaptive_unless_given(
    app: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[int | None] = []
    real = app.queue.dispatcher

    def dispatcher(**options: Any) -> Any:
        seen.append(options["prefetch"])
        return real(**options)

    monkeypatch.setattr(app.queue, "dispatcher", dispatcher)
    for given in ([], ["--prefetch", "auto"], ["--prefetch", "AUTO"], ["--prefetch", "7"]):
        assert run(capsys, "--app", APP, "worker", "--burst", *given)[0] == 0
    assert seen == [None, None, None, 7]


# -- first contact: options where people type them, the app's own queue ---------------------


def test_global_options_after_the_command(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "submit", "greet", '{"who": "fi"}', "--app", APP, "--json")
    assert code == 0 and json.loads(out)["name"] == "greet"
    code, out, _ = run(capsys, "worker", "--app", APP, "--burst", "--json")
    assert (code, json.loads(out)) == (0, WORKED_ONE)
    code, out, _ = run(capsys, "stats", "--json", "--app", APP)
    assert json.loads(out)["completed"] == 1
    code, out, _ = run(capsys, "--app", APP, "stats", "--url", "sqlite:///:memory:", "--json")
    assert json.loads(out)["total"] == 0  # --url after the command counts too


def test_url_given_twice_differently_is_an_error(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--url", "memory://", "stats", "--url", "sqlite:///:memory:")
    assert code == 2 and "--url is given twice" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import jobqueue

    code, out, _ = run(capsys, "--version")
    assert (code, out.strip()) == (0, f"jobqueue {jobqueue.__version__}")


def test_help_has_no_markup(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], *([name, "--help"] for name in COMMANDS)):
        code, out, _ = run(capsys, *argv)
        assert code == 0
        assert "``" not in out and ":class:" not in out, argv
        if argv[0] != "--help":
            assert "--url" in out and "--app" in out and "--json" in out


COMMANDS = ("worker", "submit", "job", "jobs", "stats", "cancel", "retry", "purge", "pause")
COMMANDS += ("resume", "workers")


def test_jobs_lists_every_state_and_filters_by_name(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "--app", APP, "submit", "explode", "1")
    run(capsys, "--app", APP, "worker", "--burst")  # explode -> failed
    run(capsys, "--app", APP, "submit", "greet", '{"who": "gi"}')
    run(capsys, "--app", APP, "submit", "greet", '{"who": "ho"}', "--delay", "600")
    code, out, _ = run(capsys, "--app", APP, "--json", "jobs")
    assert code == 0
    listed = json.loads(out)
    assert sorted(job["state"] for job in listed) == ["delayed", "failed", "waiting"]
    code, out, _ = run(capsys, "--app", APP, "--json", "jobs", "--name", "greet")
    assert sorted(job["state"] for job in json.loads(out)) == ["delayed", "waiting"]
    code, out, _ = run(capsys, "--app", APP, "jobs", "--name", "greet", "--state", "failed")
    assert "(no failed 'greet' jobs)" in out
    code, out, _ = run(capsys, "--app", APP, "jobs", "--limit", "1")
    assert len(out.splitlines()) == 2  # the header and the one most recent job


def test_app_queue_pointed_at_url_keeps_its_settings(
    app: ModuleType, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch = pytest.MonkeyPatch()
    configured = app.make_configured_queue()
    monkeypatch.setattr(app, "configured", configured)
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    try:
        spec = "tests.cli_app:configured"
        code, out, err = run(capsys, "--app", spec, "--url", url, "submit", "greet", '{"who": "i"}')
        assert code == 0, err
        code, _, err = run(capsys, "worker", "--app", spec, "--url", url, "--burst")
        assert code == 0, err
    finally:
        monkeypatch.undo()
    # One queue, the app's: its backend is the --url one, its settings and plugins kept.
    assert configured.url == url
    assert configured.backend.options.retention.completed_count == 5  # type: ignore[attr-defined]
    assert (configured.lease_seconds, configured.grace_seconds) == (7.0, 3.0)
    assert configured.get_job_by_id(out.strip()).state == "completed"
    assert out.strip() in app.RECORDER.completed  # the app's own plugin saw the completion
    assert "plugin-reindex" not in configured.registry  # load_entrypoints=False kept


def test_app_with_plugins_and_url_registers_nothing_twice(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's command with plugins installed: --app queue --url used to fail with
    "worker name ... is already registered"."""
    code, out, err = run(
        capsys,
        "--app",
        "tests.cli_app:with_plugins",
        "--url",
        "memory://",
        "submit",
        "plugin-reindex",
        '{"index": "users"}',
    )
    assert code == 0, err
    assert app.with_plugins.get_job_by_id(out.strip()).title == "Reindex users"


def test_two_app_queues_on_different_backends_are_an_error(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--app", APP, "--app", "tests.cli_app:other_backend"]
    code, _, err = run(capsys, *argv, "stats")
    assert code == 2
    assert "uses memory:// but --app tests.cli_app:other_backend uses sqlite:///:memory:" in err
    code, _, err = run(capsys, *argv, "--url", "memory://", "--json", "stats")
    assert code == 0, err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://[::1", "bad backend URL"),
        ("redis://localhost:6379/0?namspace=x", "unknown Redis URL parameter(s) namspace"),
        ("redis://localhost:6379/0?bogus=1", "known: namespace, cluster"),
        ("redis://localhost:6379/abc", "the path names a database by number"),
        ("redis://localhost:port/0", "Port could not be cast"),
        ("memory://somewhere", "bad memory URL"),
        ("sqlite:///jobs.db?synchronus=full", "unknown sqlite URL parameter(s) synchronus"),
    ],
)
def test_bad_urls_exit_2_with_one_line(
    app: ModuleType, capsys: pytest.CaptureFixture[str], url: str, message: str
) -> None:
    code, out, err = run(capsys, "--url", url, "stats")
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_get_title_that_raises_is_one_line(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--app", APP, "submit", "greet", '{"name": "x"}')
    assert (code, out) == (2, "")
    assert "worker 'greet' cannot use this job data: its get_title(data) raised KeyError" in err
    assert app.queue.count_by_state()["waiting"] == 0


def test_subprocess_app_mistakes_without_traceback() -> None:
    for spec in ("tests.cli_app_broken:queue", "tests.cli_app:explode", "tests.cli_app:queue_for"):
        done = jobqueue("--app", spec, "stats")
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
@pytest.mark.parametrize(
    ("command", "app", "ready"),
    [
        ("worker", "tests.cli_app:workers", "worker on"),
        ("scheduler", "tests.reliability.schedule_app:queue", "scheduler on"),
    ],
)
def test_exit_status_on_signals(
    tmp_path: Path, signum: int, status: int, command: str, app: str, ready: str
) -> None:
    """SIGTERM is the planned stop (exit 0); Ctrl-C exits 130, as shells expect: for a worker
    and for a scheduler run alone."""
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    env = {**os.environ, "JQ_REL_URL": url}
    env.pop("JQ_REL_NAMESPACE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "jobqueue", command, "--app", app, "--url", url],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:  # signal handlers are in place once this line is out
            if ready in line:
                break
        process.send_signal(signum)
        _, rest = process.communicate(timeout=30)
        assert process.returncode == status, rest
        assert "Traceback" not in rest
    finally:
        process.kill()
        process.wait()
