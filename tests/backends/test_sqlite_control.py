"""The SQLite control plane where the shared contract cannot look: reads while another
process holds the write lock, and a resume committed by another process waking a waiter."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from jobqueue.backend import BackendOptions, DispatcherInfo, WorkSpec
from jobqueue.backends.sqlite import SQLiteBackend
from jobqueue.engine import Engine
from jobqueue.job import Job, JobState


def _open(path: Path) -> Engine:
    # A short busy timeout: a read that wrongly waited for the write lock fails fast.
    return Engine(SQLiteBackend.from_url(f"sqlite:///{path}?busy_timeout=0.2", BackendOptions()))


def test_reads_work_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    backend = _open(path)
    try:
        job = backend.submit(Job(id="", name="a", data=1))
        backend.pause("b")
        backend.heartbeat(DispatcherInfo("d1", "h", 1, ("a",), 1, started_at=0.0), [], 60)
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # what another process's transition holds
            assert backend.count_by_state()[JobState.WAITING] == 1
            assert [j.id for j in backend.list_jobs(JobState.WAITING)] == [job.id]
            got = backend.get(job.id)
            assert got is not None and got.state is JobState.WAITING
            assert backend.paused() == frozenset({"b"})
            assert [d.id for d in backend.dispatchers()] == ["d1"]
        finally:
            other.execute("ROLLBACK")
            other.close()
    finally:
        backend.close()


def test_a_resume_in_another_process_wakes_an_idle_waiter(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    backend = _open(path)
    try:
        backend.pause("a")
        backend.submit(Job(id="", name="a", data=1))
        assert backend.wait_for_work(["a"], 0.1) is False  # paused: nothing to wake for
        woke: list[bool] = []
        waiter = threading.Thread(target=lambda: woke.append(backend.wait_for_work(["a"], 30)))
        waiter.start()
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from jobqueue.backends.sqlite import SQLiteBackend; "
                "b = SQLiteBackend(sys.argv[1]); b.set_paused('worker', 'a', False); b.close()",
                str(path),
            ],
            check=True,
            timeout=60,
        )
        waiter.join(20)
        assert not waiter.is_alive() and woke == [True]
        assert backend.claim(WorkSpec(("a",))) is not None
    finally:
        backend.close()
