"""The processes of the Sentinel failover test (test_redis_failover.py).

``python -m jobqueue --app tests.reliability.failover_app:queue worker``: a dispatcher whose
``effect`` worker appends "ID N TIME" to the file ``JQ_FO_RUNS`` (a local file, not Redis:
it must outlive the failover). ``python -m tests.reliability.failover_app URL COUNT ACKS
ERRORS``: a submitter of COUNT jobs, one at a time; each acknowledged submit appends "ID N
TIME" to ACKS at once (TIME: when the acknowledgement came back), each error its class name
to ERRORS, and the same job is submitted again (its ``unique_key`` makes that safe) until it
is acknowledged.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from jobqueue import JobQueue
from jobqueue.errors import BackendError


def build(url: str, lease: float = 2.0) -> JobQueue:
    jobs = JobQueue(url, lease_seconds=lease, grace_seconds=2, load_entrypoints=False)
    runs = os.environ.get("JQ_FO_RUNS", os.devnull)

    @jobs.worker("effect", attempts=20, backoff=0.1)
    def effect(job: Any) -> None:
        with open(runs, "a", encoding="utf-8") as out:  # one short append: one line
            out.write(f"{job.id} {job.data['n']} {time.time()!r}\n")
        time.sleep(0.01)  # slower than the submitter: a backlog, finishing while it lags

    return jobs


def queue() -> JobQueue:
    return build(os.environ["JQ_FO_URL"])


def submit(url: str, count: int, ackfile: str, errfile: str) -> None:
    jobs = build(url)
    with open(ackfile, "a", encoding="utf-8") as acks, open(errfile, "a") as errors:
        for n in range(count):
            while True:
                try:
                    job = jobs.submit_job("effect", {"n": n}, unique_key=f"n{n}")
                    break
                except BackendError as exc:
                    errors.write(f"{type(exc).__name__} {time.time()!r}\n")
                    errors.flush()
                    time.sleep(0.05)
            acks.write(f"{job.id} {n} {time.time()!r}\n")
            acks.flush()
            time.sleep(0.005)  # a steady stream rather than one burst
    jobs.close()


if __name__ == "__main__":
    submit(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
