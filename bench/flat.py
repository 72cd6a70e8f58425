"""Claim cost stays flat: jobqueue's processing rate with 1,000,000 jobs waiting vs 1,000.

For each size, the queue holds ``waiting + window + 100`` jobs when a fresh worker starts; the
rate is timed from the start of job 101 (past the worker's warm-up) to the start of job
``window + 100``, so at least ``waiting`` jobs stay queued while it is timed. The large queue is
filled once (bulk) and shared by the repeats; the small one is refilled each time. Repeats
alternate sizes and adapters, as the main rounds do.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import body
from common import RedisServer, WorkerProcess, spread

SKIP = 100  # jobs left out of the timing at each worker start
BATCH = 10_000


def measure_flat(adapters: list[Any], server: RedisServer, options: argparse.Namespace) -> dict:
    small, large, window = options.flat_small, options.flat_large, options.flat_window
    per_run = window + SKIP
    rates: dict[str, dict[str, list[float]]] = {
        a.name: {"small": [], "large": []} for a in adapters
    }
    figures: dict[str, Any] = {"small_waiting": small, "large_waiting": large, "window": window}
    producer = adapters[0]

    # the small queue first, each repeat on a fresh database
    for repeat in range(options.flat_repeats):
        for adapter in _rotated(adapters, repeat):
            server.flush()
            fill(producer, small + per_run)
            rates[adapter.name]["small"].append(timed_run(adapter, server, per_run, "small"))
            print(
                f"  flat: {adapter.name} with ~{small:,} waiting: "
                f"{rates[adapter.name]['small'][-1]:,.0f} jobs/s",
                flush=True,
            )

    # the large queue, filled once for every repeat
    server.flush()
    before = server.used_memory()
    total = large + per_run * options.flat_repeats * len(adapters)
    seconds = fill(producer, total)
    figures["large_fill_per_s"] = total / seconds
    figures["large_bytes_per_job"] = (server.used_memory() - before) / total
    print(
        f"  flat: filled {total:,} jobs at {total / seconds:,.0f} jobs/s, "
        f"{figures['large_bytes_per_job']:,.0f} bytes/job",
        flush=True,
    )
    for repeat in range(options.flat_repeats):
        for adapter in _rotated(adapters, repeat):
            server.client.delete(body.COUNTER, body.MARKS)
            rates[adapter.name]["large"].append(timed_run(adapter, server, per_run, "large"))
            print(
                f"  flat: {adapter.name} with ~{large:,} waiting: "
                f"{rates[adapter.name]['large'][-1]:,.0f} jobs/s",
                flush=True,
            )
    server.flush()

    for name, found in rates.items():
        figures[name] = {size: spread(values) for size, values in found.items()}
        figures[name]["raw"] = found
    return figures


def fill(adapter: Any, count: int) -> float:
    """Bulk-submit ``count`` jobs; returns the seconds it took."""
    started = time.perf_counter()
    for offset in range(0, count, BATCH):
        size = min(BATCH, count - offset)
        adapter.submit_bulk([{"user": "u1", "n": offset + i} for i in range(size)])
    return time.perf_counter() - started


def timed_run(adapter: Any, server: RedisServer, jobs: int, tag: str) -> float:
    """Run a fresh worker until ``jobs`` jobs started; the rate from job SKIP+1 to the last."""
    env = {
        "BENCH_REDIS_URL": server.url,
        "BENCH_MODE": "rate",
        "BENCH_TARGET": str(jobs),
        "BENCH_STEP": str(SKIP),
    }
    client = server.client
    with WorkerProcess(adapter.worker_command(), env, f"{adapter.name}-flat-{tag}") as worker:
        deadline = time.monotonic() + 120
        while int(client.get(body.COUNTER) or 0) < jobs:
            if not worker.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"flat phase stalled; see {worker.log_path}")
            time.sleep(0.02)
    marks = {}
    for entry in client.lrange(body.MARKS, 0, -1):
        n, stamp = entry.split()
        marks[int(n)] = float(stamp)
    return (jobs - SKIP - 1) / (marks[jobs] - marks[SKIP + 1])


def _rotated(items: list[Any], shift: int) -> list[Any]:
    shift %= len(items)
    return items[shift:] + items[:shift]
