"""Prometheus metrics: what the backend holds, read at scrape time, and what this process's
dispatchers did; the exporter in-process and as ``jobqueue metrics``."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jobqueue import JobQueue, JobState
from jobqueue.metrics import instrument, start_metrics_server

REPO = Path(__file__).resolve().parent.parent


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture(params=["memory", "sqlite"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobQueue]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'jobs.db'}"
    with JobQueue(url, load_entrypoints=False) as queue:
        yield queue


def _boom(job: Any) -> None:
    raise ValueError("boom")


def test_backend_and_process_metrics(queue: JobQueue) -> None:
    registry = instrument(queue)
    queue.add_worker("mail", lambda job: "sent")
    queue.add_worker("boom", _boom, attempts=2)
    for n in range(3):
        queue.submit_job("mail", n)
    queue.submit_job("boom", None)
    queue.work(burst=True)  # 3 completed; boom: retried once, then failed
    cancelled = queue.submit_job("mail", "never")
    queue.cancel_job(cancelled.id)
    queue.submit_job("mail", "later")
    queue.pause("mail")
    got = samples(generate_latest(registry).decode())

    def jobs(name: str, state: str) -> float:
        return got[("jobqueue_jobs", (("name", name), ("state", state)))]

    assert (jobs("mail", "completed"), jobs("mail", "waiting"), jobs("mail", "cancelled")) == (
        3,
        1,
        1,
    )
    assert jobs("boom", "failed") == 1 and jobs("boom", "waiting") == 0
    assert got[("jobqueue_paused", (("name", "mail"),))] == 1
    assert got[("jobqueue_dispatchers", ())] == 0  # the burst dispatcher left on exit
    assert got[("jobqueue_oldest_waiting_seconds", (("name", "mail"),))] >= 0
    assert ("jobqueue_oldest_waiting_seconds", (("name", "boom"),)) not in got

    def attempts(name: str, outcome: str) -> float:
        return got.get(("jobqueue_attempts_total", (("name", name), ("outcome", outcome))), 0)

    assert attempts("mail", "completed") == 3
    assert (attempts("boom", "retried"), attempts("boom", "failed")) == (1, 1)
    assert attempts("mail", "cancelled") == 0  # cancelled while waiting: nothing ran here
    assert got[("jobqueue_job_duration_seconds_count", (("name", "mail"),))] == 3
    assert got[("jobqueue_job_duration_seconds_count", (("name", "boom"),))] == 2
    assert got[("jobqueue_job_wait_seconds_count", (("name", "mail"),))] == 3


def test_scrapes_never_write(queue: JobQueue) -> None:
    registry = instrument(queue)
    queue.add_worker("mail", lambda job: None)
    queue.submit_job("mail", 1, delay=0)
    before = queue.count_by_state()
    for _ in range(3):
        generate_latest(registry)
    assert queue.count_by_state() == before
    assert queue.count_by_state()[JobState.WAITING] == 1


def test_exporter_serves_metrics_over_http(queue: JobQueue) -> None:
    queue.add_worker("mail", lambda job: None)
    queue.submit_job("mail", 1)
    server, thread = start_metrics_server(queue, 0)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert samples(text)[("jobqueue_jobs", (("name", "mail"), ("state", "waiting")))] == 1


def test_jobqueue_metrics_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    with JobQueue(url, load_entrypoints=False) as queue:
        queue.add_worker("mail", lambda job: None)
        queue.submit_job("mail", 1)
    exporter = subprocess.Popen(
        [sys.executable, "-m", "jobqueue", "metrics", "--url", url, "--port", "0"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert exporter.stderr is not None
        line = exporter.stderr.readline()  # printed once it listens
        assert line.startswith("serving metrics on http://127.0.0.1:"), line
        with urllib.request.urlopen(line.split()[-1], timeout=10) as reply:
            text = reply.read().decode()
        assert samples(text)[("jobqueue_jobs", (("name", "mail"), ("state", "waiting")))] == 1
        exporter.send_signal(signal.SIGTERM)
        _, rest = exporter.communicate(timeout=30)
        assert exporter.returncode == 0, rest
    finally:
        exporter.kill()
        exporter.wait()


def test_metrics_command_refuses_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    from jobqueue.cli import main

    assert main(["metrics", "--url", "memory://", "--port", "70000"]) == 2
    assert "--port must be from 0 to 65535" in capsys.readouterr().err
    assert main(["metrics", "--url", "memory://", "--host", "not a host"]) == 2
    assert "--host must be an IP address" in capsys.readouterr().err


def test_worker_process_serves_its_own_metrics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    command = [sys.executable, "-m", "jobqueue", "worker", "--app", "tests.cli_app:workers"]
    worker = subprocess.Popen(
        [*command, "--url", url, "--metrics-port", "0"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stderr is not None
        address = None
        for line in worker.stderr:
            if line.startswith("serving metrics on "):
                address = line.split()[-1]
            if "worker on" in line:  # signal handlers are in place
                break
        assert address is not None
        with urllib.request.urlopen(address, timeout=10) as reply:
            text = reply.read().decode()
        assert "jobqueue_dispatchers" in text
        worker.send_signal(signal.SIGTERM)
        _, rest = worker.communicate(timeout=30)
        assert worker.returncode == 0, rest
    finally:
        worker.kill()
        worker.wait()


def test_missed_and_skipped_ticks_are_counted_by_schedule() -> None:
    from datetime import timedelta

    from prometheus_client import generate_latest

    from jobqueue import JobQueue, Schedule
    from jobqueue.metrics import instrument

    with JobQueue("memory://", load_entrypoints=False) as queue:
        queue.add_worker("ping", lambda job: None)
        queue.add_schedule(Schedule(name="ping", worker="ping", every=timedelta(seconds=1)))
        scheduler = queue.scheduler()
        scheduler.run_pending(now=1_800_000_000.0)
        scheduler.run_pending(now=1_800_000_010.2)  # nine missed, the tenth runs
        scheduler.run_pending(now=1_800_000_011.2)  # skipped: the previous job still waits
        text = generate_latest(instrument(queue)).decode()
    assert 'jobqueue_schedule_missed_ticks_total{schedule="ping"} 9.0' in text
    assert 'jobqueue_schedule_skipped_ticks_total{schedule="ping"} 1.0' in text
