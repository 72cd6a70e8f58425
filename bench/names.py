"""Claim cost vs. the number of worker names one dispatcher serves (issue 20 item 11: "a claim
costs the same for 1 worker name or 2,000").

    python3 bench/names.py                          # 1, 20, 200, 2,000 names x 10 jobs; 20,000 on 1
    python3 bench/names.py --jobqueue-src /tmp/x/src   # another checkout
    python3 bench/names.py --names 1,2000 --backends redis --max-seconds 10
    python3 bench/names.py --prefetch 1            # one job per claim, every case alike

For each case, one dispatcher in this process (``queue.dispatcher().run(burst=True)``, default
prefetch, concurrency 1) serves every name; the handlers do nothing. The rate is taken from the
first job's start to the last one's (the dispatcher's start-up left out); a case still running
after ``--max-seconds`` is stopped and its rate taken over what it did by then. On Redis (its
own ``redis-server`` on a free loopback port, no persistence, stopped at the end) it also
reports per job processed: commands (``total_commands_processed``, which counts each
``redis.call`` inside a script) and server CPU (``INFO cpu``,
user + sys), both over the dispatcher's whole run; and the commands per second an IDLE
dispatcher process serving 1 vs the largest number of names sends (over ``--idle-seconds``).
SQLite runs on a temporary file. The last line is the ratio largest-names vs 1 name at equal
job counts (the item's target: <= 1.5x).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    RedisServer,
    WorkerProcess,
    ensure_venv,
    jobqueue_source,
    use_jobqueue_source,
)

PER_NAME = 10


def names_for(count: int) -> list[str]:
    return [f"n{i:05d}" for i in range(count)]


class Marks:
    """Start times of the jobs one dispatcher ran (the handler does nothing else)."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def handle(self, job: Any) -> None:
        self.starts.append(time.perf_counter())

    def rate(self) -> float | None:
        if len(self.starts) < 2:
            return None
        return (len(self.starts) - 1) / (self.starts[-1] - self.starts[0])


def make_queue(url: str, names: list[str], marks: Marks | None) -> Any:
    from jobqueue import JobQueue

    queue = JobQueue(url)
    for name in names:
        queue.add_worker(name, marks.handle if marks else _noop)
    return queue


def _noop(job: Any) -> None:
    return None


def fill(queue: Any, names: list[str], per_name: int) -> None:
    for name in names:
        queue.submit_jobs(name, [{"i": i} for i in range(per_name)])


def run_case(
    url: str,
    names: list[str],
    per_name: int,
    options: argparse.Namespace,
    before_run: Any = None,
) -> dict[str, Any]:
    """Fill, call ``before_run``, then time one dispatcher serving ``names`` until drained (or
    the time cap)."""
    marks = Marks()
    queue = make_queue(url, names, marks)
    fill(queue, names, per_name)
    if before_run is not None:
        before_run()
    dispatcher = queue.dispatcher(prefetch=options.prefetch)
    # the cap stops the dispatcher from outside, as a signal handler would
    timer = threading.Timer(options.max_seconds, dispatcher.stop)
    timer.start()
    started = time.perf_counter()
    try:
        dispatcher.run(burst=True)
    finally:
        timer.cancel()
        queue.close()
    return {
        "jobs": len(marks.starts),
        "total": len(names) * per_name,
        "seconds": time.perf_counter() - started,
        "rate": marks.rate(),
    }


def redis_counters(client: Any) -> dict[str, float]:
    cpu = client.info("cpu")
    stats = client.info("stats")
    return {
        "cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        "commands": float(stats["total_commands_processed"]),
    }


def measure_redis(
    server: RedisServer, cases: list[tuple[int, int]], options: argparse.Namespace
) -> list[dict[str, Any]]:
    rows = []
    for count, per_name in cases:
        server.flush()
        names = names_for(count)
        # counters around the processing only: the fill is not a claim
        marks_before: dict[str, float] = {}
        row = run_case(
            server.url,
            names,
            per_name,
            options,
            lambda into=marks_before: into.update(redis_counters(server.client)),
        )
        after = redis_counters(server.client)
        jobs = max(row["jobs"], 1)
        row.update(
            backend="redis",
            names=count,
            per_name=per_name,
            commands_per_job=(after["commands"] - marks_before["commands"]) / jobs,
            cpu_us_per_job=(after["cpu"] - marks_before["cpu"]) * 1e6 / jobs,
        )
        rows.append(row)
        print(_line(row), flush=True)
    server.flush()
    return rows


def measure_sqlite(cases: list[tuple[int, int]], options: argparse.Namespace) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="jobqueue-bench-names-") as folder:
        for index, (count, per_name) in enumerate(cases):
            url = f"sqlite:///{folder}/names-{index}.db"
            row = run_case(url, names_for(count), per_name, options)
            row.update(backend="sqlite", names=count, per_name=per_name)
            rows.append(row)
            print(_line(row), flush=True)
    return rows


def measure_idle(server: RedisServer, counts: list[int], seconds: float) -> dict[int, float]:
    """Commands per second an idle dispatcher process serving ``count`` names sends."""
    found = {}
    for count in counts:
        server.flush()
        command = [sys.executable, str(Path(__file__).resolve()), "--serve", server.url]
        command += ["--serve-names", str(count)]
        with WorkerProcess(command, {}, f"names-idle-{count}") as worker:
            # past start-up: wait until the process has connected (our client is the other
            # one), then give it a second for its first polls and maintenance
            deadline = time.monotonic() + 30
            while int(server.client.info("clients")["connected_clients"]) < 2:
                if not worker.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"idle dispatcher did not start; see {worker.log_path}")
                time.sleep(0.05)
            time.sleep(1.0)
            first = float(server.client.info("stats")["total_commands_processed"])
            t0 = time.monotonic()
            time.sleep(seconds)
            last = float(server.client.info("stats")["total_commands_processed"])
            elapsed = time.monotonic() - t0
        # the INFO calls made while measuring are ours, not the dispatcher's
        found[count] = (last - first - 1) / elapsed
        print(
            f"  redis idle dispatcher, {count:>6,} names: {found[count]:,.1f} commands/s",
            flush=True,
        )
    return found


def serve(url: str, count: int) -> None:
    """The idle dispatcher process: every name registered, no jobs; runs until SIGTERM."""
    queue = make_queue(url, names_for(count), None)
    queue.run_worker(scheduler=False)


def _line(row: dict[str, Any]) -> str:
    rate = f"{row['rate']:,.0f}" if row["rate"] else "-"
    text = (
        f"  {row['backend']:<6} {row['names']:>6,} names x {row['per_name']:>6,}: "
        f"{rate:>7} jobs/s ({row['jobs']:,}/{row['total']:,} in {row['seconds']:.1f} s)"
    )
    if row["backend"] == "redis":
        text += (
            f", {row['commands_per_job']:.2f} commands/job, "
            f"server CPU {row['cpu_us_per_job']:.0f} us/job"
        )
    return text


def print_table(rows: list[dict[str, Any]], idle: dict[int, float], largest: int) -> None:
    print()
    head = "| backend | names x jobs each | jobs/s | Redis commands/job (Lua's included) |"
    print(head + " Redis CPU µs/job |")
    print("|---|---|---|---|---|")
    for row in rows:
        rate = f"{row['rate']:,.0f}" if row["rate"] else "-"
        done = "" if row["jobs"] == row["total"] else f" (capped: {row['jobs']:,} done)"
        extra = (
            f"{row['commands_per_job']:.1f} | {row['cpu_us_per_job']:.0f}"
            if row["backend"] == "redis"
            else "- | -"
        )
        case = f"{row['names']:,} x {row['per_name']:,}{done}"
        print(f"| {row['backend']} | {case} | {rate} | {extra} |")
    if idle:
        print()
        print("| idle dispatcher (Redis) | commands/s |")
        print("|---|---|")
        for count, value in idle.items():
            print(f"| {count:,} name{'s' if count > 1 else ''} | {value:,.1f} |")
    print()
    for backend in ("redis", "sqlite"):
        mine = [r for r in rows if r["backend"] == backend and r["rate"]]
        many = next((r for r in mine if r["names"] == largest and r["per_name"] == PER_NAME), None)
        # equal job counts: the 1-name variant holding as many jobs as the many-name case
        one = next((r for r in mine if r["names"] == 1 and r["per_name"] > PER_NAME), None)
        one = one or next((r for r in mine if r["names"] == 1), None)
        if many and one and largest != 1:
            slower = one["rate"] / many["rate"]
            verdict = "met" if slower <= 1.5 else "missed"
            print(
                f"{backend}: {largest:,} names is {slower:.2f}x slower per job than 1 name "
                f"({one['per_name']:,} jobs) — target <= 1.5x: {verdict}"
            )
    if len(idle) > 1:
        low, high = min(idle), max(idle)
        ratio = idle[high] / idle[low] if idle[low] else float("inf")
        print(f"redis idle: {high:,} names sends {ratio:.2f}x the commands/s of {low:,} name(s)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", default="1,20,200,2000", help="worker-name counts")
    parser.add_argument("--backends", default="redis,sqlite")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="cap per case")
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument(
        "--prefetch",
        type=int,
        help="claim this many ahead (default: adaptive, which claims a name's first jobs one "
        "at a time until they have shown they are short: 10 jobs a name never get there)",
    )
    parser.add_argument("--jobqueue-src", help="measure the jobqueue package in this folder")
    parser.add_argument(
        "--jobqueue-rev", help="measure jobqueue as of this git revision (e.g. HEAD)"
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the idle dispatcher process
    parser.add_argument("--serve-names", type=int, default=1, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    options = parse_args()
    if options.serve:
        use_jobqueue_source(None)  # BENCH_JOBQUEUE_SRC, inherited from the parent
        serve(options.serve, options.serve_names)
        return
    use_jobqueue_source(options.jobqueue_src, options.jobqueue_rev)
    counts = [int(n) for n in options.names.split(",")]
    largest = max(counts)
    cases = [(n, PER_NAME) for n in counts]
    if largest > 1:
        cases.append((1, largest * PER_NAME))  # equal job counts on one name
    backends = options.backends.split(",")
    prefetch = "adaptive" if options.prefetch is None else options.prefetch
    print(f"jobqueue {jobqueue_source()}; prefetch {prefetch}; load {os.getloadavg()}", flush=True)
    rows: list[dict[str, Any]] = []
    idle: dict[int, float] = {}
    if "redis" in backends:
        with RedisServer() as server:
            print(f"Redis {server.version()} on {server.url}", flush=True)
            rows += measure_redis(server, cases, options)
            idle = measure_idle(server, sorted({1, largest}), options.idle_seconds)
    if "sqlite" in backends:
        rows += measure_sqlite(cases, options)
    print_table(rows, idle, largest)


if __name__ == "__main__":
    ensure_venv()  # re-runs this command inside bench/.venv
    main()
