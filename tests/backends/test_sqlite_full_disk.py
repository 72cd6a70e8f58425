"""A full disk under the SQLite backend (issue 18, item 7): writes raise BackendFullError and
store nothing of the refused call, reads go on working, even in a process that opens the file
on the full disk, and writes resume once space is freed.

The real test fills a small tmpfs mounted in a private mount namespace (``unshare``), so no
mount outlives the child and nothing else on the machine fills up. The others use SQLite's own
size limit (``PRAGMA max_page_count``), which fails writes with the same SQLITE_FULL."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from jobqueue.backend import BackendOptions, WorkSpec
from jobqueue.backends.sqlite import SQLiteBackend
from jobqueue.engine import Engine
from jobqueue.errors import BackendFullError
from jobqueue.job import Job, JobState

WORKER = str(Path(__file__).with_name("sqlite_full_disk_worker.py"))
NO_MOUNT = 77  # the child's exit status when it may not mount a tmpfs here


def test_a_real_full_disk(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1): cannot mount a private small filesystem")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f'mount -t tmpfs -o size=1m tmpfs "$1" || exit {NO_MOUNT}; exec "$2" "$3" "$1"'
    command = ["unshare", "--map-root-user", "--mount", "sh", "-c", script, "sh", str(disk)]
    child = subprocess.run(
        [*command, sys.executable, WORKER],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if child.returncode == NO_MOUNT or "unshare:" in child.stderr:
        pytest.skip(f"cannot mount a private tmpfs here: {child.stderr.strip()}")
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.strip().splitlines()[-1])
    full = "raised BackendFullError"

    # A process opening the file on the full disk reads it (SQLite could not make its WAL
    # index there, and every read failed with "disk I/O error"), and is refused writes.
    assert report["wal_after_close"] is False
    restart = report["restart"]
    assert restart["open"] == "SQLiteBackend"
    assert restart["get"] == "waiting" and restart["waiting"] == 5
    assert restart["counts"]["waiting"] == 5 and restart["by_name"] == {"a": 5}
    assert restart["submit"].startswith(full) and restart["claim"].startswith(full)

    # The backend that filled the disk: the refused calls stored nothing, reads work.
    running = report["running"]
    assert running["submit"].startswith(full) and "database or disk is full" in running["submit"]
    assert running["submitted"] > 0
    assert running["submit_many"].startswith(full)
    assert running["stored_after_many"] == running["stored_before_many"]  # jobs and id counter
    assert running["complete"].startswith(full)
    assert running["get"] == "active"
    waiting = running["stored_before_many"][0] - 1  # all but the claimed one
    assert running["waiting"] == waiting and running["counts"]["waiting"] == waiting
    assert running["by_name"] == {"a": waiting}

    # Space freed: the same lease completes, and ids go on above the last one stored.
    freed = report["freed"]
    assert freed["complete"] is None and freed["state"] == "completed"
    assert int(freed["submitted_id"]) > freed["last_id_before"]


def _limit(backend: Engine, pages: int) -> None:
    """Cap the file as a full disk would (per connection: the backend's own, this thread's)."""
    backend.store._pool.get().execute(f"PRAGMA max_page_count = {pages}")


@pytest.mark.parametrize("where", ["file", "memory"])
def test_a_full_database_refuses_writes_whole_and_still_reads(tmp_path: Path, where: str) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}" if where == "file" else "sqlite:///:memory:"
    backend = Engine(SQLiteBackend.from_url(url, BackendOptions()))
    try:
        first = backend.submit(Job(id="", name="a", data=0))
        claim = backend.claim(WorkSpec(names=("a",)))
        assert claim is not None
        (pages,) = backend.store._pool.get().execute("PRAGMA page_count").fetchone()
        _limit(backend, pages + 2)
        with pytest.raises(BackendFullError, match="database or disk is full"):
            for n in range(1000):
                backend.submit(Job(id="", name="a", data="x" * 3000 + str(n)))
        counts = backend.count_by_state()
        with pytest.raises(BackendFullError):
            backend.submit_many([Job(id="", name="a", data="y" * 3000) for _ in range(10)])
        assert backend.count_by_state() == counts  # nothing of the batch
        with pytest.raises(BackendFullError):
            backend.complete(claim.job.id, claim.token, "z" * 20_000, None)
        job = backend.get(first.id)
        assert job is not None and job.state is JobState.ACTIVE
        assert len(backend.list_jobs(JobState.WAITING, limit=1000)) == counts[JobState.WAITING]
        assert backend.count_by_name()["a"][JobState.ACTIVE] == 1

        _limit(backend, 1_000_000)
        backend.complete(claim.job.id, claim.token, 1, None)
        ids = [int(j.id) for j in backend.submit_many([Job(id="", name="a", data=1)] * 2)]
        assert ids[1] == ids[0] + 1 and ids[0] > int(first.id)
    finally:
        backend.close()


def test_an_io_error_with_room_on_the_disk_is_not_called_full(tmp_path: Path) -> None:
    from jobqueue.backends.sqlite import dialect
    from jobqueue.errors import BackendUnavailableError

    error = sqlite3.OperationalError("disk I/O error")
    translated = dialect.translate(error, str(tmp_path / "jobs.db"))
    assert type(translated) is BackendUnavailableError
