"""The scale benchmark (see scale.py): P dispatcher processes on one queue, plain and exclusive."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import time
from datetime import datetime, timezone
from typing import Any

import body
from common import (
    RESULTS,
    RedisServer,
    WorkerProcess,
    jobqueue_source,
    machine,
    process_cpu_seconds,
    spread,
    use_jobqueue_source,
    versions,
)


def main() -> None:
    options = parse_args()
    use_jobqueue_source(options.jobqueue_src, options.jobqueue_rev)
    from peers.jobqueue_adapter import GO, READY, WORKER, make_queue

    counts = [int(p) for p in options.processes.split(",")]
    points = [(p, exclusive) for exclusive in (False, True) for p in counts]
    found: dict[str, list[dict[str, Any]]] = {_key(p, e): [] for p, e in points}
    with RedisServer() as server:
        os.environ["BENCH_REDIS_URL"] = server.url
        print(f"Redis {server.version()} on {server.url}; load {os.getloadavg()}", flush=True)
        producer = make_queue(server.url)
        for round_no in range(options.rounds):
            shift = round_no % len(points)
            for processes, exclusive in points[shift:] + points[:shift]:
                server.flush()
                for start in range(0, options.jobs, 10_000):
                    size = min(10_000, options.jobs - start)
                    producer.submit_jobs(
                        WORKER, [{"user": "u1", "n": start + i} for i in range(size)]
                    )
                figures = run_point(server, options, processes, exclusive, READY, GO)
                found[_key(processes, exclusive)].append(figures)
                print(
                    f"round {round_no + 1}: {_key(processes, exclusive)}: {_brief(figures)}",
                    flush=True,
                )
        producer.close()
    results = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "jobqueue_source": jobqueue_source(),
        "options": vars(options),
        "rounds": found,
        "summary": {
            key: {
                metric: spread([r.get(metric) for r in rounds])
                for metric in (
                    "jobs_per_s",
                    "redis_cpu_pct",
                    "workers_cpu_pct",
                    "overlaps",
                    "script_calls_per_job",
                )
            }
            for key, rounds in found.items()
        },
        "load_after": os.getloadavg(),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"scale-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"raw results: {path}\n")
    print(table(results, counts))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="dispatcher processes on one queue")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per point (10000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--processes", default="1,2,4,8", help="process counts (1,2,4,8)")
    parser.add_argument("--prefetch", type=int, default=1, help="each dispatcher's prefetch (1)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="cap per point (30)")
    parser.add_argument("--jobqueue-src", help="measure the jobqueue package in this folder")
    parser.add_argument(
        "--jobqueue-rev", help="measure jobqueue as of this git revision (e.g. HEAD)"
    )
    return parser.parse_args()


def run_point(
    server: RedisServer,
    options: argparse.Namespace,
    processes: int,
    exclusive: bool,
    ready_key: str,
    go_key: str,
) -> dict[str, Any]:
    n = options.jobs
    env = {
        "BENCH_REDIS_URL": server.url,
        "BENCH_MODE": "intervals" if exclusive else "rate",
        "BENCH_TARGET": str(n),
        "BENCH_STEP": "1000",
    }
    command = [sys.executable, "-m", "peers.jobqueue_adapter", server.url,
               "--prefetch", str(options.prefetch), "--barrier", server.url]  # fmt: skip
    if exclusive:
        command.append("--exclusive")
    client = server.client
    tag = f"scale-{processes}{'-exclusive' if exclusive else ''}"
    with contextlib.ExitStack() as stack:
        workers = [
            stack.enter_context(WorkerProcess(command, env, f"{tag}-{i}")) for i in range(processes)
        ]
        deadline = time.monotonic() + 60
        while int(client.get(ready_key) or 0) < processes:
            if time.monotonic() > deadline or not all(w.alive() for w in workers):
                return {"error": f"workers did not start; see {workers[0].log_path}"}
            time.sleep(0.01)
        cpu0 = [w.cpu_seconds() for w in workers]
        redis0, wall0 = process_cpu_seconds(server.pid), time.perf_counter()
        server.reset_stats()
        client.set(go_key, 1)
        capped = False
        while int(client.get(body.COUNTER) or 0) < n:
            if time.perf_counter() - wall0 > options.max_seconds:
                capped = True
                break
            time.sleep(0.02)
        wall = time.perf_counter() - wall0
        count = int(client.get(body.COUNTER) or 0)
        sampled_at = time.time()
        workers_cpu = sum(w.cpu_seconds() for w in workers) - sum(cpu0)
        redis_cpu = process_cpu_seconds(server.pid) - redis0
        calls = server.command_calls()
    figures: dict[str, Any] = {
        "processes": processes,
        "exclusive": exclusive,
        "processed": count,
        "capped": capped,
        "redis_cpu_pct": 100 * redis_cpu / wall,
        "workers_cpu_pct": 100 * workers_cpu / wall,
        "script_calls_per_job": calls.get("evalsha", 0) / max(count, 1),
        "blocking_waits_per_job": calls.get("blpop", 0) / max(count, 1),
    }
    if exclusive:
        intervals = sorted(
            tuple(map(float, entry.split())) for entry in client.lrange(body.INTERVALS, 0, -1)
        )
        overlaps = sum(1 for a, b in itertools.pairwise(intervals) if b[0] < a[1])
        figures["overlaps"] = overlaps
        figures["checked_intervals"] = len(intervals)
        first, last = intervals[0][0], intervals[-1][0]
        figures["jobs_per_s"] = (len(intervals) - 1) / (last - first)
    else:
        marks = {}
        for entry in client.lrange(body.MARKS, 0, -1):
            k, stamp = entry.split()
            marks[int(k)] = float(stamp)
        if n in marks:
            figures["jobs_per_s"] = (n - 1) / (marks[n] - marks[1])
        else:
            figures["jobs_per_s"] = (count - 1) / (sampled_at - marks[1])
    return figures


def table(results: dict[str, Any], counts: list[int]) -> str:
    summary = results["summary"]
    base = summary[_key(counts[0], False)]["jobs_per_s"]
    lines = [
        "| processes | jobs/s [min-max] | vs 1 | Redis CPU % | workers CPU % "
        "| exclusive jobs/s [min-max] | Lua calls/job, exclusive | overlaps (intervals checked) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in counts:
        plain, excl = summary[_key(p, False)], summary[_key(p, True)]
        checked = sum(r.get("checked_intervals", 0) for r in results["rounds"][_key(p, True)])
        overlaps = sum(r.get("overlaps", 0) for r in results["rounds"][_key(p, True)])
        lines.append(
            f"| {p} | {_range(plain['jobs_per_s'])} "
            f"| {plain['jobs_per_s']['median'] / base['median']:.2f}x "
            f"| {plain['redis_cpu_pct']['median']:.0f} | {plain['workers_cpu_pct']['median']:.0f} "
            f"| {_range(excl['jobs_per_s'])} | {excl['script_calls_per_job']['median']:.1f} "
            f"| {overlaps} ({checked:,}) |"
        )
    return "\n".join(lines)


def _range(cell: dict[str, float] | None) -> str:
    if not cell:
        return "—"
    return f"{cell['median']:,.0f} [{cell['min']:,.0f}-{cell['max']:,.0f}]"


def _key(processes: int, exclusive: bool) -> str:
    return f"{processes}{' exclusive' if exclusive else ''}"


def _brief(figures: dict[str, Any]) -> str:
    if "error" in figures:
        return figures["error"]
    text = f"{figures['jobs_per_s']:,.0f} jobs/s, Redis CPU {figures['redis_cpu_pct']:.0f}%, "
    text += f"workers CPU {figures['workers_cpu_pct']:.0f}%, "
    text += f"{figures['script_calls_per_job']:.2f} script calls/job"
    if figures["exclusive"]:
        text += f", {figures['overlaps']} overlaps in {figures['checked_intervals']:,} jobs"
    if figures["capped"]:
        text += f" (capped at {figures['processed']:,} jobs)"
    return text
