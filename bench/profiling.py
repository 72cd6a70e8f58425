"""The worker profile (see profile_worker.py)."""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

from common import (
    RESULTS,
    RedisServer,
    process_cpu_seconds,
    python_path,
    use_jobqueue_source,
)

GROUPS = (  # (label, substring of the function's file or name), first match wins
    ("waiting for Redis (socket reads)", "recv_into"),
    ("socket writes", "sendall"),
    ("jobqueue", "/jobqueue/"),
    ("redis-py", "/redis/"),
    ("hiredis", "hiredis"),
    ("pluggy (hooks)", "/pluggy/"),
    ("json", "/json/"),
    ("threading, locks", "threading"),
    ("asyncio", "asyncio"),
    ("body (the job)", "/bench/body"),
    ("logging", "/logging/"),
)


def main() -> None:
    options = parse_args()
    use_jobqueue_source(options.jobqueue_src, options.jobqueue_rev)
    with RedisServer() as server:
        os.environ.update(
            BENCH_REDIS_URL=server.url,
            BENCH_MODE="rate",
            BENCH_TARGET=str(options.jobs),
            BENCH_STEP="1000",
        )
        from peers.jobqueue_adapter import make_queue

        queue = make_queue(server.url)
        print(f"Redis {server.version()}; jobqueue from {sys.modules['jobqueue'].__file__}")
        print(f"{options.jobs:,} jobs, prefetch {options.prefetch}; load {os.getloadavg()}\n")

        plain = run(queue, server, options, profile=None)
        print(f"without profiler: {plain['jobs_per_s']:,.0f} jobs/s; "
              f"this process {plain['cpu_us']:.0f} µs CPU/job, Redis {plain['redis_us']:.0f} µs "
              f"CPU/job; {plain['round_trips']:.2f} dispatcher round trips/job "
              f"(+1 for the body's INCR)")  # fmt: skip

        profiler = cProfile.Profile()
        profiled = run(queue, server, options, profile=profiler)
        print(f"with cProfile:    {profiled['jobs_per_s']:,.0f} jobs/s\n")
        stats = pstats.Stats(profiler)
        report(stats, options.jobs, options.top)
        RESULTS.mkdir(exist_ok=True)
        dump = RESULTS / f"worker-prefetch{options.prefetch}.pstats"
        stats.dump_stats(dump)
        print(f"\nprofile saved: {dump} (python -m pstats {dump})")
        if options.py_spy:
            py_spy(server, options)
        queue.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="profile one jobqueue worker")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--prefetch", type=int, default=1)
    parser.add_argument("--top", type=int, default=25, help="functions listed (25)")
    parser.add_argument("--py-spy", action="store_true", help="also py-spy a worker process")
    parser.add_argument("--jobqueue-src", help="measure the jobqueue package in this folder")
    parser.add_argument(
        "--jobqueue-rev", help="measure jobqueue as of this git revision (e.g. HEAD)"
    )
    return parser.parse_args()


def run(
    queue: Any, server: RedisServer, options: argparse.Namespace, profile: Any
) -> dict[str, float]:
    import body
    import redis.connection

    try:  # the slot's loop: runtime.slot since 0.2, Dispatcher._run_slot before
        from jobqueue.runtime.slot import Slot as looping

        loop_name = "work"
    except ImportError:
        from jobqueue.dispatcher import Dispatcher as looping  # type: ignore[no-redef]

        loop_name = "_run_slot"

    server.flush()
    body._client = None  # a fresh connection for the body, as in a new worker
    n = options.jobs
    for start in range(0, n, 10_000):
        size = min(10_000, n - start)
        queue.submit_jobs("bench", [{"user": "u1", "n": start + i} for i in range(size)])
    sends = 0
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        nonlocal sends
        sends += 1
        original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    cpu0, redis0 = time.process_time(), process_cpu_seconds(server.pid)
    started = time.perf_counter()
    # The jobs run in the dispatcher's slot thread: the profile is taken there (a profiler
    # enabled here would see this thread wait for the slot, and nothing else).
    run_slot = getattr(looping, loop_name)

    def profiled_slot(self: Any, burst: bool, max_jobs: int | None) -> None:
        assert profile is not None
        profile.enable()
        try:
            run_slot(self, burst, max_jobs)
        finally:
            profile.disable()

    if profile is not None:
        setattr(looping, loop_name, profiled_slot)
    try:
        processed = queue.work(burst=True, prefetch=options.prefetch)
    finally:
        redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
        setattr(looping, loop_name, run_slot)
    wall = time.perf_counter() - started
    cpu, redis_cpu = time.process_time() - cpu0, process_cpu_seconds(server.pid) - redis0
    assert processed == n, f"processed {processed} of {n}"
    marks = len(server.client.lrange(body.MARKS, 0, -1))
    return {
        "jobs_per_s": n / wall,
        "cpu_us": cpu / n * 1e6,
        "redis_us": redis_cpu / n * 1e6,
        "round_trips": (sends - n - marks) / n,  # less the body's INCR and its mark pushes
    }


def report(stats: pstats.Stats, jobs: int, top: int) -> None:
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in entries.values())
    groups: dict[str, float] = defaultdict(float)
    for (filename, _, name), (_, _, tt, _, _) in entries.items():
        where = f"{filename}:{name}"
        label = next((g for g, key in GROUPS if key in where), "other (stdlib, builtins)")
        groups[label] += tt
    print(f"profiled time: {total / jobs * 1e6:,.0f} µs per job, by where it was spent:")
    for label, tt in sorted(groups.items(), key=lambda item: -item[1]):
        print(f"  {tt / jobs * 1e6:8.1f} µs/job  {tt / total:5.1%}  {label}")
    print(f"\ntop {top} functions by own time (µs per job; calls per job):")
    ranked = sorted(entries.items(), key=lambda item: -item[1][2])[:top]
    for (filename, line, name), (_, calls, tt, ct, _) in ranked:
        short = filename.split("/site-packages/")[-1].split("/src/")[-1]
        print(f"  {tt / jobs * 1e6:7.1f} own {ct / jobs * 1e6:7.1f} cum  {calls / jobs:6.2f}x  "
              f"{name}  ({short}:{line})")  # fmt: skip


def py_spy(server: RedisServer, options: argparse.Namespace) -> None:
    """Record a worker process with py-spy (needs ptrace permission)."""
    spy = shutil.which("py-spy", path=os.path.dirname(sys.executable))
    if spy is None:
        print("py-spy is not installed in bench/.venv")
        return
    from peers.jobqueue_adapter import make_queue

    server.flush()
    queue = make_queue(server.url)
    n = options.jobs
    for start in range(0, n, 10_000):
        size = min(10_000, n - start)
        queue.submit_jobs("bench", [{"user": "u1", "n": start + i} for i in range(size)])
    out = RESULTS / f"worker-prefetch{options.prefetch}.svg"
    script = (
        "from peers.jobqueue_adapter import make_queue; import os; "
        f"make_queue({server.url!r}).work(burst=True, prefetch={options.prefetch})"
    )
    command = [spy, "record", "--rate", "500", "--output", str(out), "--",
               sys.executable, "-c", script]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": python_path()}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"py-spy failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    else:
        print(f"py-spy flame graph: {out}")
    queue.close()
