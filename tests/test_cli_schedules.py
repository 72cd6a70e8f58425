"""The schedule commands: schedules, schedule pause/resume/run, scheduler, worker
--no-scheduler; mistakes are one line and exit status 2."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import pytest

from jobqueue import JobQueue, JobState, Schedule
from jobqueue.cli.main import main
from tests.reliability.support import wait_until

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``tests.cli_app`` whose queue declares a schedule of its greet worker."""
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.delenv("JOBQUEUE_URL", raising=False)
    module = importlib.import_module("tests.cli_app")
    queue = module.make_queue()
    queue.add_schedule(
        Schedule(name="greet-nightly", worker="greet", cron="0 0 * * *", data={"who": "night"})
    )
    monkeypatch.setattr(module, "queue", queue)
    return module


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


APP = ("--app", "tests.cli_app:queue")


def test_list_pause_resume_and_run(app: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schedules", *APP)
    assert code == 0 and "greet-nightly" in out and "0 0 * * * (UTC)" in out
    code, out, _ = run(capsys, "schedules", "--json", *APP)
    (listed,) = json.loads(out)
    assert listed["name"] == "greet-nightly" and listed["paused"] is False
    assert listed["next_run"] % 86400 == 0
    assert run(capsys, "schedule", "pause", "greet-nightly", *APP)[0] == 0
    assert json.loads(run(capsys, "schedules", "--json", *APP)[1])[0]["paused"] is True
    assert run(capsys, "schedule", "resume", "greet-nightly", *APP)[0] == 0
    code, out, _ = run(capsys, "schedule", "run", "greet-nightly", *APP)
    assert code == 0 and "submitted job" in out
    assert app.queue.count_by_state()[JobState.WAITING] == 1


def test_mistakes_are_one_line_and_exit_2(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ("schedule", "pause", "no-such-schedule", *APP),
        ("schedule", "run", "no-such-schedule", *APP),
        ("scheduler", "--app", "tests.cli_app:empty_queue"),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


def _ticking_app(tmp_path: Path) -> tuple[str, dict[str, str]]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    (tmp_path / "ticking_app.py").write_text(
        "from datetime import timedelta\n"
        "from jobqueue import JobQueue, Schedule\n"
        f"queue = JobQueue({url!r}, load_entrypoints=False)\n"
        "queue.add_worker('ping', lambda job: None)\n"
        "queue.add_schedule(Schedule(name='ping', worker='ping', every=timedelta(seconds=1),"
        " overlap='allow'))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO / "src")])}
    return url, env


@pytest.mark.parametrize(
    ("command", "state"),
    [("scheduler", JobState.WAITING), ("worker", JobState.COMPLETED)],
)
def test_scheduler_and_worker_processes_tick_and_stop_on_sigterm(
    tmp_path: Path, command: str, state: JobState
) -> None:
    # `jobqueue scheduler` only submits; `jobqueue worker` runs a scheduler beside its
    # dispatcher, so the ticks' jobs also complete.
    url, env = _ticking_app(tmp_path)
    argv = [sys.executable, "-m", "jobqueue", command, "--app", "ticking_app:queue"]
    process = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:
        with JobQueue(url, load_entrypoints=False) as reader:
            wait_until(lambda: reader.count_by_state()[state] >= 2, 30, f"two {state} jobs")
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.stderr is not None
    assert "Traceback" not in process.stderr.read()


def test_worker_no_scheduler_option(app: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    app.queue.submit_job("greet", {"who": "ada"})
    code, _, _ = run(capsys, "worker", "--burst", "--no-scheduler", *APP)
    assert code == 0 and app.queue.count_by_state()[JobState.COMPLETED] == 1
    assert app.queue.backend.schedule_records() == []  # no scheduler ran


def test_schedules_every_and_unknown_records(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    app.queue.add_worker("tick", lambda job: None)
    app.queue.add_schedule(Schedule(name="tick", worker="tick", every=timedelta(seconds=30)))
    app.queue.scheduler().run_pending()
    code, out, _ = run(capsys, "schedules", *APP)
    assert code == 0 and "every 30 s" in out
