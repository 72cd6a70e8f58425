"""How long the dashboard's API takes to answer with a million jobs stored.

    python3 bench/dashboard_scale.py                    # 1,000,000 jobs, Redis and SQLite
    python3 bench/dashboard_scale.py --jobs 100000 --backend sqlite

Stores the jobs with ``submit_jobs`` (most waiting, some completed, some failed, a few of a
rare worker name), then times each request the pages make, in this process through
Starlette's test client (so the figures are the server's time, no network): the overview
(stats, throughput, dispatchers), the first and a deep page of a list, a list filtered by a
rare worker name and by title text (bounded searches), and one job. Prints the median and
the worst of a few tries per request. Redis: its own namespace on the server of
``--redis`` (deleted after, nothing else touched). SQLite: a file in a temp folder.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from starlette.testclient import TestClient

from jobqueue import JobQueue
from jobqueue.dashboard import create_app

BATCH = 10_000
TRIES = 5


def _noop(job: object) -> None:
    return None


def _boom(job: object) -> None:
    raise RuntimeError("boom")


class _Titled:
    def __call__(self, job: object) -> None:
        return None

    def get_title(self, data: dict[str, int]) -> str:
        return f"contact import {data['n']}"


def fill(queue: JobQueue, jobs: int) -> str:
    """Store ``jobs`` jobs; returns the id of one to open."""
    finished = max(jobs // 20, 1)
    started = time.perf_counter()
    queue.submit_jobs("boom", [{"n": n} for n in range(finished)])
    queue.submit_jobs("import", [{"n": n} for n in range(finished)])
    queue.work(burst=True)  # 5% failed, 5% completed
    left = jobs - 2 * finished
    for start in range(0, left, BATCH):
        count = min(BATCH, left - start)
        queue.submit_jobs("import", [{"n": start + n} for n in range(count)])
    rare = queue.submit_job("rare", {"n": -1})
    print(f"  stored {jobs:,} jobs in {time.perf_counter() - started:.0f} s", flush=True)
    return rare.id


def timed(call: Callable[[], object]) -> tuple[float, float]:
    samples = []
    for _ in range(TRIES):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def measure(url: str, jobs: int) -> list[tuple[str, float, float]]:
    with JobQueue(url, load_entrypoints=False) as queue:
        queue.add_worker("import", _Titled())
        queue.add_worker("boom", _boom, attempts=1)
        queue.add_worker("rare", _noop)
        job_id = fill(queue, jobs)
        client = TestClient(create_app(queue), client=("127.0.0.1", 1))

        def get(path: str, **params: str) -> Callable[[], object]:
            def call() -> object:
                answer = client.get(path, params=params)
                assert answer.status_code == 200, answer.text
                return answer

            return call

        requests = [
            ("overview: /api/stats", get("/api/stats")),
            ("overview: /api/throughput", get("/api/throughput")),
            ("overview: /api/throughput?period=hour", get("/api/throughput", period="hour")),
            ("overview: /api/workers", get("/api/workers")),
            ("list: waiting, first page", get("/api/jobs", state="waiting")),
            ("list: waiting, page at 500,000", get("/api/jobs", state="waiting", cursor="500000")),
            ("list: failed, first page", get("/api/jobs", state="failed")),
            ("list: every state, first page", get("/api/jobs")),
            ("list: waiting of a rare name", get("/api/jobs", state="waiting", name="rare")),
            ("list: title search", get("/api/jobs", state="waiting", q="import 999999")),
            ("list: search by id", get("/api/jobs", q=job_id)),
            ("job page: /api/jobs/{id}", get(f"/api/jobs/{job_id}")),
        ]
        return [(label, *timed(call)) for label, call in requests]


def main() -> None:
    logging.getLogger("jobqueue").setLevel(logging.ERROR)  # 50,000 failures on purpose
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["redis", "sqlite", "both"], default="both")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    options = parser.parse_args()
    results: dict[str, list[tuple[str, float, float]]] = {}
    if options.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            print(f"SQLite, {options.jobs:,} jobs", flush=True)
            results["SQLite"] = measure(f"sqlite:///{Path(folder) / 'jobs.db'}", options.jobs)
    if options.backend in ("redis", "both"):
        import redis

        namespace = f"bench-dashboard-{uuid.uuid4().hex[:8]}"
        print(f"Redis, {options.jobs:,} jobs (namespace {namespace})", flush=True)
        try:
            results["Redis"] = measure(f"{options.redis}?namespace={namespace}", options.jobs)
        finally:
            client = redis.Redis.from_url(options.redis)
            pattern = f"jq:{{{namespace}}}:*"  # the backend's keys of that namespace only
            for keys in _batches(client.scan_iter(match=pattern, count=10_000)):
                client.delete(*keys)
    print(f"\nServer time per request with {options.jobs:,} jobs stored (median / worst of 5)")
    backends = list(results)
    print("| Request | " + " | ".join(backends) + " |")
    print("|---|" + "---:|" * len(backends))
    for index, (label, _, _) in enumerate(next(iter(results.values()))):
        cells = [f"{results[b][index][1]:.1f} / {results[b][index][2]:.1f} ms" for b in backends]
        print(f"| {label} | " + " | ".join(cells) + " |")


def _batches(keys: object, size: int = 1000) -> list[list[bytes]]:
    batch: list[bytes] = []
    out: list[list[bytes]] = []
    for key in keys:  # type: ignore[attr-defined]
        batch.append(key)
        if len(batch) == size:
            out.append(batch)
            batch = []
    if batch:
        out.append(batch)
    return out


if __name__ == "__main__":
    sys.exit(main())
