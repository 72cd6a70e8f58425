"""Run by test_sqlite_full_disk inside a small tmpfs mounted for this process alone (a private
mount namespace): fill the disk for real and report, as one JSON line, what the SQLite backend
did. Assertions are the parent's; this only observes.

    python sqlite_full_disk_worker.py DIRECTORY

1. ``restart``: a file closed cleanly (no WAL left), then the disk filled by another file, then
   a new process (backend) opens it: reads, and the error class of a submit and a claim.
2. ``running``: a backend that fills the disk itself with submits: the error class of the
   failing submit, of a submit_many and of a complete; what was stored; reads meanwhile.
3. ``freed``: after space is freed, the same backend completes and submits again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

from jobqueue.backend import BackendOptions, WorkSpec
from jobqueue.backends.sqlite import SQLiteBackend
from jobqueue.engine import Engine
from jobqueue.job import Job, JobState

SPEC = WorkSpec(names=("a",))


def attempt(call: Callable[[], Any]) -> Any:
    """The call's value, or the name of the exception it raised."""
    try:
        return call()
    except Exception as exc:
        return f"raised {type(exc).__name__}: {exc}"


def fill(path: str) -> None:
    """Write ``path`` until the disk refuses (ENOSPC)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def reads(backend: Engine, job_id: str) -> dict[str, Any]:
    job = attempt(lambda: backend.get(job_id))
    return {
        "get": job.state.value if hasattr(job, "state") else job,
        "waiting": attempt(lambda: len(backend.list_jobs(JobState.WAITING, limit=1000))),
        "counts": attempt(lambda: {s.value: n for s, n in backend.count_by_state().items()}),
        "by_name": attempt(
            lambda: {k: v[JobState.WAITING] for k, v in backend.count_by_name().items()}
        ),
    }


def stored(path: str) -> list[int]:
    """How many jobs the file holds and its job-id counter, read by a plain connection."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT COUNT(*), (SELECT value FROM jobqueue_meta WHERE key = 'job_id') "
            "FROM jobqueue_jobs"
        ).fetchone()
        return [int(row[0]), int(row[1])]
    finally:
        conn.close()


def main() -> None:
    directory = sys.argv[1]
    path = os.path.join(directory, "jobs.db")
    url = f"sqlite:///{path}"
    report: dict[str, Any] = {}

    backend = Engine(SQLiteBackend.from_url(url, BackendOptions()))
    ids = [backend.submit(Job(id="", name="a", data=n)).id for n in range(5)]
    backend.close()  # cleanly: the WAL is copied into the file and removed
    report["wal_after_close"] = os.path.exists(path + "-wal")
    filler = os.path.join(directory, "filler")
    fill(filler)

    opened = attempt(lambda: Engine(SQLiteBackend.from_url(url, BackendOptions())))
    restart: dict[str, Any] = {
        "open": type(opened.store).__name__ if isinstance(opened, Engine) else opened
    }
    if isinstance(opened, Engine):
        restart.update(reads(opened, ids[0]))
        restart["submit"] = attempt(lambda: opened.submit(Job(id="", name="a", data=None)))
        restart["claim"] = attempt(lambda: opened.claim(SPEC))
        opened.close()
    report["restart"] = restart
    os.remove(filler)

    backend = Engine(SQLiteBackend.from_url(url, BackendOptions()))
    claim = backend.claim(SPEC)
    assert claim is not None
    reserve = os.path.join(directory, "reserve")
    with open(reserve, "wb") as handle:  # room to give back at the end
        handle.write(b"\0" * 256 * 1024)
    running: dict[str, Any] = {}
    submitted, last_id = 0, int(ids[-1])
    while "submit" not in running:
        outcome = attempt(lambda: backend.submit(Job(id="", name="a", data="x" * 2000)))
        if isinstance(outcome, str):
            running["submit"] = outcome
        elif submitted > 10_000:
            running["submit"] = "never full"
        if not isinstance(outcome, str):
            submitted, last_id = submitted + 1, int(outcome.id)
    running["submitted"] = submitted
    running["stored_before_many"] = stored(path)
    running["submit_many"] = attempt(
        lambda: backend.submit_many([Job(id="", name="a", data="y" * 2000) for _ in range(20)])
    )
    running["stored_after_many"] = stored(path)
    running["complete"] = attempt(lambda: backend.complete(claim.job.id, claim.token, 1, None))
    running.update(reads(backend, claim.job.id))
    report["running"] = running

    os.remove(reserve)
    freed: dict[str, Any] = {}
    freed["complete"] = attempt(lambda: backend.complete(claim.job.id, claim.token, 1, None))
    done = backend.get(claim.job.id)
    freed["state"] = None if done is None else done.state.value
    new = attempt(lambda: backend.submit(Job(id="", name="a", data=None)))
    freed["submitted_id"] = getattr(new, "id", new)
    freed["last_id_before"] = last_id
    backend.close()
    report["freed"] = freed
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
