"""Run by test_sqlite_processes in real child processes: a submitter or a dispatcher.

    python sqlite_process_worker.py submit URL COUNT
    python sqlite_process_worker.py work URL RUNS_FILE LEASE_SECONDS
    python sqlite_process_worker.py ticks URL COUNT

A "ticks" process is a scheduler: it prints "ready", then claims ticks 1..COUNT of one
schedule in order, each when a line arrives on stdin (so that all schedulers claim each tick
at once), printing "tick outcome job-id" after each claim.

Every handler run appends "job-id attempt pid" to RUNS_FILE (O_APPEND: one write per line, so
lines from several processes never interleave).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from jobqueue import JobQueue
from jobqueue.backend import BackendOptions, TickClaim
from jobqueue.backends.sqlite import SQLiteBackend
from jobqueue.engine import Engine
from jobqueue.job import Job


def record(runs: str) -> Any:
    def handle(job: Any) -> dict[str, int]:
        fd = os.open(runs, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{job.id} {job.attempts_made} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
        key = "sleep_first" if job.attempts_made == 1 else "sleep"
        time.sleep(float(job.data.get(key, job.data.get("sleep", 0.0))))
        return {"pid": os.getpid()}

    return handle


def main() -> None:
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "submit":
        with JobQueue(url, load_entrypoints=False) as queue:
            queue.add_worker("record", lambda job: None)
            for n in range(int(sys.argv[3])):
                queue.submit_job("record", {"n": n, "sleep": 0.005})
                time.sleep(0.002)
        return
    if mode == "ticks":
        scheduler(url, int(sys.argv[3]))
        return
    runs, lease = sys.argv[3], float(sys.argv[4])
    queue = JobQueue(url, lease_seconds=lease, grace_seconds=2, load_entrypoints=False)
    queue.add_worker("record", record(runs))
    print("ready", flush=True)
    queue.run_worker()
    queue.close()


def scheduler(url: str, count: int) -> None:
    backend = Engine(SQLiteBackend.from_url(url, BackendOptions()))
    try:
        print("ready", flush=True)
        for n in range(1, count + 1):
            sys.stdin.readline()  # every scheduler claims this tick at once
            now = time.time()
            job = Job(id="", name="record", data={"tick": n}, created_at=now, run_at=now)
            result = backend.claim_tick(TickClaim("race", "{}", 60 * n, job, overlap="allow"))
            print(n, result.outcome.value, result.job.id if result.job else "-", flush=True)
    finally:
        backend.close()


if __name__ == "__main__":
    main()
