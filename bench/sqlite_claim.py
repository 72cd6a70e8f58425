"""SQLite backend measurements: claim cost vs. table size, jobs/s, submit-to-start latency.

    .venv/bin/python bench/sqlite_claim.py            # full run (1,000,000 waiting jobs)
    .venv/bin/python bench/sqlite_claim.py --large 100000 --jobs 2000   # quicker

Prints each figure and, where a peer runs in the same process, the ratio to the in-memory
reference backend.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from jobqueue import JobQueue
from jobqueue.backend import BackendOptions, WorkSpec
from jobqueue.backends.sqlite import SQLiteBackend
from jobqueue.job import Job

SPEC = WorkSpec(names=("bench",), lease_seconds=60)


def fill(backend: SQLiteBackend, count: int) -> float:
    """Bulk-insert ``count`` waiting jobs; returns seconds taken."""
    started = time.perf_counter()
    now = time.time()
    chunk = 100_000
    for offset in range(0, count, chunk):
        n = min(chunk, count - offset)
        backend.submit_many(
            [
                Job(id="", name="bench", data={"i": offset + i}, created_at=now, run_at=now)
                for i in range(n)
            ]
        )
    return time.perf_counter() - started


def claim_times(backend: SQLiteBackend, rounds: int) -> tuple[float, float]:
    """Median claim() and complete(…, next_spec) latency in ms, the waiting count kept level."""
    claims, completes = [], []
    now = time.time()
    for _ in range(rounds):
        backend.submit(Job(id="", name="bench", data={}, created_at=now, run_at=now))
        t0 = time.perf_counter()
        claim = backend.claim(SPEC)
        t1 = time.perf_counter()
        assert claim is not None
        backend.submit(Job(id="", name="bench", data={}, created_at=now, run_at=now))
        t2 = time.perf_counter()
        nxt = backend.complete(claim.job.id, claim.token, None, SPEC)
        t3 = time.perf_counter()
        assert nxt is not None
        backend.release(nxt.job.id, nxt.token)
        claims.append(t1 - t0)
        completes.append(t3 - t2)
    return statistics.median(claims) * 1000, statistics.median(completes) * 1000


def measure_claims(directory: Path, sizes: list[int]) -> None:
    for size in sizes:
        path = directory / f"claim-{size}.db"
        backend = SQLiteBackend(str(path), BackendOptions())
        took = fill(backend, size)
        claim_ms, complete_ms = claim_times(backend, 300)
        print(
            f"claim with {size:>9,} waiting: {claim_ms:.3f} ms median claim, "
            f"{complete_ms:.3f} ms complete+claim-next   (bulk insert {size / took:,.0f} jobs/s, "
            f"file {path.stat().st_size / 1e6:.0f} MB)"
        )
        backend.close()


def throughput(url: str, jobs: int, prefetch: int = 1) -> float:
    with JobQueue(url, load_entrypoints=False) as queue:
        queue.add_worker("noop", lambda job: None)
        queue.submit_jobs("noop", [{"i": i} for i in range(jobs)])
        started = time.perf_counter()
        done = queue.work(burst=True, concurrency=1, prefetch=prefetch)
        took = time.perf_counter() - started
        assert done == jobs, done
        return jobs / took


WORKER = textwrap.dedent(
    """
    import sys
    from jobqueue import JobQueue
    queue = JobQueue(sys.argv[1], load_entrypoints=False)
    queue.add_worker("ping", lambda job: None)
    print("ready", flush=True)
    queue.run_worker()
    """
)


def latency(url: str, samples: int) -> list[float]:
    """Submit in this process, run in a dispatcher process; ms from submit to handler start."""
    with JobQueue(url, load_entrypoints=False) as queue:
        queue.add_worker("ping", lambda job: None)
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER, url], stdout=subprocess.PIPE, text=True
        )
        try:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
            time.sleep(0.5)
            results = []
            for n in range(samples):
                time.sleep(0.05 + (n % 10) * 0.05)  # idle gaps of 50-500 ms: back-off at work
                job = queue.submit_job("ping", n)
                done = queue.wait_for(job.id, timeout=10)
                assert done is not None and done.started_at is not None
                results.append((done.started_at - job.created_at) * 1000)
            return results
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    print(f"sqlite {__import__('sqlite3').sqlite_version}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="jobqueue-bench-") as name:
        directory = Path(name)
        measure_claims(directory, [10, args.large])

        sqlite_rate = throughput(f"sqlite:///{directory}/tp.db", args.jobs)
        memory_rate = throughput("memory://", args.jobs)
        print(
            f"jobs/s at concurrency 1 (no-op handler, {args.jobs:,} jobs): sqlite file "
            f"{sqlite_rate:,.0f}/s, memory {memory_rate:,.0f}/s, "
            f"ratio sqlite/memory {sqlite_rate / memory_rate:.2f}"
        )
        batched = throughput(f"sqlite:///{directory}/tp50.db", args.jobs, prefetch=50)
        memory_batched = throughput("memory://", args.jobs, prefetch=50)
        print(
            f"jobs/s at concurrency 1 with prefetch=50: sqlite file {batched:,.0f}/s, "
            f"memory {memory_batched:,.0f}/s, ratio {batched / memory_batched:.2f}"
        )

        lat = latency(f"sqlite:///{directory}/lat.db", args.samples)
        lat.sort()
        print(
            f"submit→start across processes ({len(lat)} samples, idle gaps 50-500 ms): "
            f"median {statistics.median(lat):.1f} ms, p90 {lat[int(len(lat) * 0.9) - 1]:.1f} ms, "
            f"max {lat[-1]:.1f} ms"
        )
    print(f"cpus: {os.cpu_count()}")


if __name__ == "__main__":
    main()
