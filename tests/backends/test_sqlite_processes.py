"""Real processes sharing one SQLite file: a submitter, two dispatchers, one of them SIGKILLed."""

from __future__ import annotations

import collections
import contextlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue import JobQueue
from jobqueue.job import JobState

WORKER = str(Path(__file__).with_name("sqlite_process_worker.py"))
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:  # never leave a child behind, whatever failed
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _dispatcher(
    processes: list[subprocess.Popen[str]], url: str, runs: Path, lease: float
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, WORKER, "work", url, str(runs), str(lease)],
        stdout=subprocess.PIPE,
        text=True,
    )
    processes.append(process)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def _runs(path: Path) -> list[tuple[str, int, int]]:
    if not path.exists():
        return []
    return [
        (job_id, int(attempt), int(pid))
        for job_id, attempt, pid in (line.split() for line in path.read_text().splitlines())
    ]


def _wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_submitter_and_two_dispatchers_run_each_job_once(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    runs = tmp_path / "runs.txt"
    with JobQueue(url, load_entrypoints=False) as queue:  # creates the file
        first = _dispatcher(processes, url, runs, 30)
        second = _dispatcher(processes, url, runs, 30)
        count = 200
        submitter = subprocess.run(
            [sys.executable, WORKER, "submit", url, str(count)], timeout=60, check=True
        )
        assert submitter.returncode == 0
        _wait_until(
            lambda: queue.count_by_state()[JobState.COMPLETED] == count, 60, "all jobs done"
        )
        for process in (first, second):
            process.send_signal(signal.SIGTERM)
        for process in (first, second):
            assert process.wait(timeout=30) == 0

        recorded = _runs(runs)
        per_attempt = collections.Counter((job_id, attempt) for job_id, attempt, _ in recorded)
        assert len(per_attempt) == count and set(per_attempt.values()) == {1}
        assert {attempt for _, attempt in per_attempt} == {1}
        assert {pid for _, _, pid in recorded} == {first.pid, second.pid}  # both worked
        done = queue.list_jobs("completed", 0, count)
        assert len(done) == count and all(job.attempts_made == 1 for job in done)
        assert sum(queue.count_by_state().values()) == count


def test_a_killed_dispatchers_job_is_recovered_and_completed_by_the_other(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    runs = tmp_path / "runs.txt"
    with JobQueue(url, lease_seconds=1, load_entrypoints=False) as queue:
        queue.add_worker("record", lambda job: None)
        victim = _dispatcher(processes, url, runs, 1)
        job = queue.submit_job("record", {"sleep_first": 60, "sleep": 0})
        _wait_until(lambda: len(_runs(runs)) == 1, 30, "the first attempt to start")
        first_deadline = _lease_deadline(tmp_path / "jobs.db", job.id)
        survivor = _dispatcher(processes, url, runs, 1)
        # The victim's heartbeat keeps its lease alive: wait until it was renewed twice past
        # its first deadline (a heartbeat that stopped would fail this wait), by which time
        # a survivor able to steal live leases would have recovered the job.
        _wait_until(
            lambda: _lease_deadline(tmp_path / "jobs.db", job.id) > first_deadline + 1.0,
            30,
            "the victim to renew its lease",
        )
        assert len(_runs(runs)) == 1, "the survivor took a job whose lease was live"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)

        done = queue.wait_for(job.id, timeout=30)
        assert done is not None and done.state is JobState.COMPLETED
        assert done.result == {"pid": survivor.pid}
        assert (done.attempts_made, done.stalls) == (2, 1)
        assert _runs(runs) == [(job.id, 1, victim.pid), (job.id, 2, survivor.pid)]
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=30) == 0


def _lease_deadline(path: Path, job_id: str) -> float:
    """The active job's lease deadline as stored (read-only, from outside the backend)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT lease_expires_at FROM jobqueue_jobs WHERE id = ?", (job_id,))
        found = row.fetchone()
    return float(found[0]) if found and found[0] is not None else 0.0


def test_racing_scheduler_processes_submit_each_tick_once(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    count, racers = 40, 4
    with JobQueue(url, load_entrypoints=False) as queue:  # creates the file
        for _ in range(racers):
            process = subprocess.Popen(
                [sys.executable, WORKER, "ticks", url, str(count)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            processes.append(process)
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        outcomes = []
        for n in range(count):  # lockstep: every scheduler claims each tick at the same time
            for process in processes[n % racers :] + processes[: n % racers]:  # first in turn
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
            for process in processes:
                assert process.stdout is not None
                outcomes.append(process.stdout.readline().split())
        for process in processes:
            assert process.wait(timeout=30) == 0
        assert len(outcomes) == count * racers
        won = collections.Counter(int(n) for n, outcome, _ in outcomes if outcome == "submitted")
        assert won == dict.fromkeys(range(1, count + 1), 1)
        assert {outcome for _, outcome, _ in outcomes} <= {"submitted", "already_claimed"}
        assert queue.count_by_state()[JobState.WAITING] == count
        jobs = {job_id for _, outcome, job_id in outcomes if outcome == "submitted"}
        assert len(jobs) == count
