"""Workflows measured: a fan-out/fan-in flow of N jobs completes with every job run once, and a
failure in the middle of a flow of chains cancels exactly its dependents -- on SQLite,
PostgreSQL and Redis, with several dispatcher processes.

    .venv/bin/python bench/flows.py                       # 1,000 jobs, 2 processes, all stores
    .venv/bin/python bench/flows.py --jobs 200 --stores sqlite

Each store is private to the run (a temporary SQLite file, a redis-server of its own on a free
loopback port, a PostgreSQL schema of its own that is dropped after). The handlers record
every run in the store's own jobs (each job's attempt history), so "once" is checked on what
was stored: one attempt per job, every job completed (or cancelled exactly where expected).
Prints, per store: the flow's size, seconds from submit to the gather's end, jobs per second,
and the checks.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RedisServer

from jobqueue import Flow, JobQueue, JobState

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def build(url: str) -> JobQueue:
    queue = JobQueue(url)
    queue.add_worker("part", lambda job: job.data)
    queue.add_worker("gather", lambda job: len(job.dependency_results()))
    queue.add_worker("chain", _chain)
    return queue


def _chain(job: Any) -> str:
    if job.data == "fail":
        raise RuntimeError("a failure in the middle")
    return "ok"


def work(url: str, stop: Any) -> None:
    """A dispatcher process: runs jobs until the parent sets ``stop``."""
    queue = build(url)
    dispatcher = queue.dispatcher(idle_timeout=0.05)
    import threading

    def watch() -> None:
        stop.wait()
        dispatcher.stop(grace_seconds=1)

    threading.Thread(target=watch, daemon=True).start()
    dispatcher.run()
    queue.close()


@contextmanager
def dispatchers(url: str, count: int) -> Iterator[None]:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    processes = [context.Process(target=work, args=(url, stop)) for _ in range(count)]
    for process in processes:
        process.start()
    try:
        yield
    finally:
        stop.set()
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()


def fan_out_in(queue: JobQueue, url: str, jobs: int, processes: int) -> dict[str, Any]:
    flow = Flow()
    root = flow.add("part", 0)
    parts = [flow.add("part", n, depends_on=[root]) for n in range(1, jobs - 1)]
    flow.add("gather", depends_on=parts)
    started = time.perf_counter()
    stored = queue.submit_flow(flow)
    with dispatchers(url, processes):
        gathered = queue.wait_for(stored[-1].id, timeout=600)
    seconds = time.perf_counter() - started
    assert gathered is not None, "the gather did not finish in 10 minutes"
    final = [queue.get_job_by_id(job.id) for job in stored]
    once = all(
        job is not None and job.state is JobState.COMPLETED and len(job.history) == 1
        for job in final
    )
    return {
        "jobs": len(stored),
        "seconds": round(seconds, 3),
        "jobs_per_second": round(len(stored) / seconds, 1),
        "every_job_once": once,
        "gathered": gathered.result,
    }


def failure_in_the_middle(queue: JobQueue, url: str, processes: int) -> dict[str, Any]:
    """Ten chains of ten; the fifth link of chain 3 fails: exactly its five successors are
    cancelled, everything else completes."""
    flow = Flow()
    expected: dict[int, JobState] = {}
    position = 0
    for chain in range(10):
        previous = None
        for link in range(10):
            data = "fail" if (chain, link) == (3, 4) else f"{chain}.{link}"
            step = flow.add("chain", data, depends_on=[previous] if previous else [], attempts=1)
            if chain == 3 and link == 4:
                expected[position] = JobState.FAILED
            elif chain == 3 and link > 4:
                expected[position] = JobState.CANCELLED
            else:
                expected[position] = JobState.COMPLETED
            previous, position = step, position + 1
    stored = queue.submit_flow(flow)
    with dispatchers(url, processes):
        deadline = time.monotonic() + 300
        while any(
            (job := queue.get_job_by_id(s.id)) is not None and not job.state.is_finished
            for s in stored
        ):
            if time.monotonic() > deadline:
                raise SystemExit("the chains did not finish in 5 minutes")
            time.sleep(0.05)
    states = [queue.get_job_by_id(job.id) for job in stored]
    exact = all(job is not None and job.state is expected[i] for i, job in enumerate(states))
    return {"jobs": len(stored), "exactly_its_dependents_cancelled": exact}


@contextmanager
def store(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="jobqueue-bench-flows-") as folder:
            yield f"sqlite:///{folder}/jobs.db"
    elif kind == "redis":
        with RedisServer() as server:
            yield server.url
    else:
        import psycopg

        schema = f"bench_flows_{uuid.uuid4().hex[:12]}"
        try:
            yield f"{POSTGRES}?schema={schema}"
        finally:
            with psycopg.connect(POSTGRES, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the fan-out flow")
    parser.add_argument("--processes", type=int, default=2, help="dispatcher processes")
    parser.add_argument("--stores", default="sqlite,postgres,redis")
    args = parser.parse_args()
    scenarios: list[tuple[str, Callable[[JobQueue, str], dict[str, Any]]]] = [
        ("fan-out/fan-in", lambda q, u: fan_out_in(q, u, args.jobs, args.processes)),
        ("failure in the middle", lambda q, u: failure_in_the_middle(q, u, args.processes)),
    ]
    for kind in args.stores.split(","):
        for title, scenario in scenarios:
            with store(kind) as url:
                queue = build(url)
                try:
                    print(f"{kind:9} {title:22} {scenario(queue, url)}", flush=True)
                finally:
                    queue.close()


if __name__ == "__main__":
    main()
