"""Run by test_postgres_migrations and test_postgres_wakeups in real child processes.

    python postgres_process_worker.py open URL HOLD_SECONDS
    python postgres_process_worker.py submit URL NAME
    python postgres_process_worker.py submit-many URL NAME COUNT
    python postgres_process_worker.py submit-unique URL NAME COUNT
    python postgres_process_worker.py claim URL NAME TOTAL BATCH [CAP]

``open``: prints ``ready``, waits for a line on stdin (the parent releases every child at once:
a barrier, not a sleep), opens the backend on URL (an empty schema: this creates it, or finds
another process did) and prints one JSON line: whether this process created the schema, and
the version it then sees. Creating holds its transaction HOLD_SECONDS longer, so the others
are certainly queued on the schema's lock meanwhile rather than arriving after the commit.
``submit``: submits one job of NAME and prints its id; ``submit-many``: COUNT jobs one by one
after the barrier, then prints their ids as one JSON list; ``submit-unique``: the same with
unique keys ``key-0`` .. ``key-<COUNT-1>``.
``claim``: after the barrier, claims jobs of NAME (BATCH a claim; with BATCH 1 each completion
claims the next in the same step), prints each claimed id on a line with when it "ran" (the
system-wide monotonic clock, read after its claim returned and before its completion was
asked for: inside the time it was held) and completes it, until
TOTAL jobs are completed in the schema; CAP: at most that many of NAME active at once
(``max_active``). ``claim-seeking``: the same with the claim cursor in cursor mode from the
first claim (every full scan counts as slow): claims seek past the jobs claimed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from jobqueue.backend import WorkSpec
from jobqueue.backends.postgres import PostgresBackend
from jobqueue.backends.postgres.dialect import PostgresDialect
from jobqueue.backends.sql.dialect import Connection
from jobqueue.backends.sql.migrate import Step
from jobqueue.engine import Engine
from jobqueue.job import Job, JobState


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def open_once(url: str, hold: float) -> None:
    plain_run = PostgresDialect.run

    def held_run(self: PostgresDialect, conn: Connection, step: Step) -> None:
        plain_run(self, conn, step)
        time.sleep(hold)  # widen the race window (see the module docstring)

    PostgresDialect.run = held_run  # type: ignore[method-assign]
    collect = Collect()
    logger = logging.getLogger("jobqueue.backends.postgres")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(collect)
    print("ready", flush=True)
    sys.stdin.readline()
    backend = PostgresBackend(url)
    try:
        with backend._reading() as db:
            (version,) = db.conn.execute(
                "SELECT value FROM jobqueue_meta WHERE key = 'schema_version'"
            ).fetchone()
    finally:
        backend.close()
    created = any("created the jobqueue schema" in m for m in collect.messages)
    print(json.dumps({"created": created, "version": version}), flush=True)


def submit(url: str, name: str) -> None:
    backend = PostgresBackend(url)
    try:
        now = time.time()
        (job,) = backend.insert([Job(id="", name=name, data={}, created_at=now, run_at=now)])
    finally:
        backend.close()
    print(job.id, flush=True)


def submit_many(url: str, name: str, count: int, unique: bool = False) -> None:
    backend = PostgresBackend(url)
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        ids = []
        for n in range(count):
            now = time.time()
            key = f"key-{n}" if unique else None
            new = Job(id="", name=name, data={}, created_at=now, run_at=now, unique_key=key)
            (job,) = backend.insert([new])
            ids.append(job.id)
    finally:
        backend.close()
    print(json.dumps(ids), flush=True)


def claim(
    url: str, name: str, total: int, batch: int, cap: int | None, seeking: bool = False
) -> None:
    backend = PostgresBackend(url)
    if seeking:
        assert backend.claim_cursor is not None
        backend.claim_cursor.slow_scan = 0.0
        backend.claim_cursor.enter_after = 1
    engine = Engine(backend)
    names = tuple(name.split(","))  # "c,d,e": a claim across names (a scan past two)
    spec = WorkSpec(
        names=names,
        lease_seconds=300,
        dispatcher=f"worker-{os.getpid()}",
        max_active={} if cap is None else {name: cap},
    )
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        held = []
        while True:
            if not held:
                held = engine.claim_many(spec, batch)
            if not held:
                if engine.count_by_state()[JobState.COMPLETED] >= total:
                    break
                engine.wait_for_work(names, 0.5)
                continue
            job = held.pop(0)
            began = time.monotonic()  # after the claim committed (one clock for every process)
            seen = engine.get(job.job.id)  # the "work": a read of its own job, held
            assert seen is not None and seen.state is JobState.ACTIVE, seen
            ended = time.monotonic()  # before the completion commits
            print(job.job.id, began, ended, flush=True)
            if batch == 1:
                after = engine.complete(job.job.id, job.token, None, spec)
                held = [] if after is None else [after]
            else:
                engine.complete(job.job.id, job.token, None, None)
    finally:
        engine.close()


if __name__ == "__main__":
    if sys.argv[1] == "open":
        open_once(sys.argv[2], float(sys.argv[3]))
    elif sys.argv[1] in ("submit-many", "submit-unique"):
        submit_many(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[1] == "submit-unique")
    elif sys.argv[1] in ("claim", "claim-seeking"):
        cap = int(sys.argv[6]) if len(sys.argv) > 6 else None
        seeking = sys.argv[1] == "claim-seeking"
        claim(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), cap, seeking)
    else:
        submit(sys.argv[2], sys.argv[3])
