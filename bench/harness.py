"""The main benchmark: every library, every phase, interleaved rounds (see run.py)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import body
from common import (
    RESULTS,
    RedisServer,
    WorkerProcess,
    jobqueue_source,
    machine,
    percentile,
    process_cpu_seconds,
    spread,
    use_jobqueue_source,
    versions,
)
from postgres import DEFAULT_URL as DEFAULT_POSTGRES_URL

METRICS = (
    "submit_per_s",
    "bulk_per_s",
    "processed_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "bytes_per_job",
    "commands_per_job",
    "scripts_per_job",
    "worker_cpu_us_per_job",
    "redis_cpu_us_per_job",
    "xacts_per_job",
)
DEFAULT_PEERS = (
    "jobqueue,jobqueue-prefetch,jobqueue-sqlite,huey,huey-quiet,celery,saq,dramatiq,rq,arq,"
    "bullmq,kue"
)
POSTGRES_PEERS = (
    "jobqueue-pg,jobqueue-pg-prefetch1,jobqueue-pg-nolisten,procrastinate,pgqueuer,"
    "pgqueuer-batch1,pgqueuer-batch10,chancy,oban,oban-limit10"
)
GROUPS = {"redis": DEFAULT_PEERS, "postgres": POSTGRES_PEERS}  # names usable in --peers
CHART = Path(__file__).resolve().parent.parent / "docs" / "images" / "benchmarks.png"
CHART_POSTGRES = CHART.with_name("benchmarks-postgres.png")  # a run of PostgreSQL peers only
HARNESS_COMMANDS = {"info", "config|resetstat", "config", "flushdb", "ping"}


def main() -> None:
    options = parse_args()
    if options.from_json:
        report(json.loads(Path(options.from_json).read_text()), options)
        return
    use_jobqueue_source(options.jobqueue_src, options.jobqueue_rev)
    if options.pin == "one-core":  # Redis, workers and producer all inherit this
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with RedisServer() as server, contextlib.ExitStack() as stack:
        os.environ["BENCH_REDIS_URL"] = server.url
        if options.pin == "split":  # Redis on one core, producer and workers on another
            cpus = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(server.pid, {cpus[-1]})
            os.sched_setaffinity(0, {cpus[0]})
        import peers
        from peers.jobqueue_adapter import JobqueuePrefetchAdapter

        JobqueuePrefetchAdapter.configure(options.prefetch)
        available = peers.adapters()
        names = peer_names(options.peers, available)
        names = skip_unavailable(names, available)
        names, database = open_postgres(names, available, options, stack)
        adapters = [available[name](server.url) for name in names]
        results: dict[str, Any] = {
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(),
            "versions": (found := versions()),
            "jobqueue_source": jobqueue_source(),
            "redis_version": server.version(),
            "options": vars(options),
            "labels": {a.name: f"{a.label} {found.get(a.package, '')}" for a in adapters},
            "bulk_api": {a.name: a.bulk_api for a in adapters},
            "stores": {a.name: store(a) for a in adapters},
            "one_at_a_time": {a.name: a.one_at_a_time for a in adapters},
            "rounds": {a.name: [] for a in adapters},
        }
        if database is not None:
            results["postgres"] = {
                "version": database.version(),
                "settings": database.settings(),
                "database": database.name,
            }
        print(
            f"Redis {results['redis_version']} on {server.url}; load {os.getloadavg()}; "
            f"jobqueue from {results['jobqueue_source']}"
        )
        if database is not None:
            print(f"PostgreSQL {results['postgres']['version']}, database {database.name}")
        try:
            if not options.flat_only:
                for round_no in range(options.rounds):
                    shift = round_no % len(adapters)
                    for adapter in adapters[shift:] + adapters[:shift]:
                        print(
                            f"round {round_no + 1}/{options.rounds}: {adapter.name} ...", flush=True
                        )
                        figures = measure(adapter, server, options, round_no, database)
                        adapter.release()  # no connection of its own while others are measured
                        results["rounds"][adapter.name].append(figures)
                        print("   ", _brief(figures), flush=True)
            if options.flat or options.flat_only:
                from flat import measure_flat

                flat_adapters = [a for a in adapters if a.name in ("jobqueue", "jobqueue-prefetch")]
                results["flat"] = measure_flat(flat_adapters, server, options)
        finally:
            for adapter in adapters:
                adapter.close()
        results["load_after"] = os.getloadavg()
    results["summary"] = {
        name: {metric: spread([r.get(metric) for r in rounds]) for metric in METRICS}
        for name, rounds in results["rounds"].items()
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"run-{stamp}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"raw results: {path}")
    report(results, options)


def peer_names(wanted: str, available: dict[str, Any]) -> list[str]:
    """The adapters named in ``--peers``, a group name (``redis``, ``postgres``) standing for
    its members; each name once, in the order given."""
    names: list[str] = []
    for name in (part.strip() for part in wanted.split(",")):
        for member in GROUPS[name].split(",") if name in GROUPS else [name]:
            if member and member not in names:
                names.append(member)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise SystemExit(
            f"unknown --peers {unknown}; known: {', '.join(available)} "
            f"and the groups {', '.join(GROUPS)}"
        )
    return names


def store(adapter: Any) -> str:
    """Where the adapter's library keeps its jobs."""
    if adapter.on_postgres:
        return "postgres"
    return "redis" if adapter.on_redis else "other"


def open_postgres(
    names: list[str],
    available: dict[str, Any],
    options: argparse.Namespace,
    stack: contextlib.ExitStack,
) -> tuple[list[str], Any]:
    """Create the bench's own database when a PostgreSQL peer is wanted (dropped when
    ``stack`` closes); where the server does not answer, leave those peers out with one
    message."""
    wanted = [name for name in names if available[name].on_postgres]
    if not wanted:
        return names, None
    from postgres import BenchDatabase, unavailable

    reason = unavailable(options.postgres_url)
    if reason is not None:
        print(f"skipping {', '.join(wanted)}: {reason}; the other libraries are measured")
        return [name for name in names if name not in wanted], None
    return names, stack.enter_context(BenchDatabase(options.postgres_url))


def skip_unavailable(names: list[str], available: dict[str, Any]) -> list[str]:
    """Leave out, with one message per reason, the libraries that cannot run here: the Node
    peers without ``node`` (or when their npm packages would not install), oban-py without a
    Python 3.12. Installs what they need on first use."""
    reasons: dict[str, list[str]] = {}
    for name in names:
        reason = available[name].unavailable()
        if reason is not None:
            reasons.setdefault(reason, []).append(name)
    for reason, skipped in reasons.items():
        print(
            f"skipping {', '.join(skipped)}: {reason}; the other libraries are measured",
            flush=True,
        )
    left_out = {name for skipped in reasons.values() for name in skipped}
    return [name for name in names if name not in left_out]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="jobqueue against its peers (Python, and BullMQ and Kue on Node), on one "
        "private Redis, interleaved"
    )
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per phase (20000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument(
        "--peers",
        default=DEFAULT_PEERS,
        help=f"comma list of libraries and groups ({', '.join(GROUPS)}) ({DEFAULT_PEERS})",
    )
    parser.add_argument(
        "--postgres",
        dest="peers",
        action="store_const",
        const="postgres",
        help=f"the PostgreSQL peers only: --peers postgres ({POSTGRES_PEERS})",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_ADMIN_URL", DEFAULT_POSTGRES_URL),
        help="the PostgreSQL server of the PostgreSQL peers, as a URL to a database to connect "
        "to while the bench creates and drops one of its own there; no other database is "
        f"touched ({DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument("--prefetch", type=int, default=50, help="the prefetch row's N (50)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=30.0,
        help="cap on one processing phase; a slower library's rate is taken over what it "
        "processed by then (30)",
    )
    parser.add_argument(
        "--pin",
        choices=("none", "one-core", "split"),
        default="none",
        help="CPU placement: none (the scheduler's choice, default), one-core (everything on "
        "one CPU) or split (Redis on one CPU, the rest on another). A round trip between "
        "processes on two CPUs of a VM can cost twice one on the same CPU",
    )
    parser.add_argument("--latency-jobs", type=int, default=200, help="spaced submits (200)")
    parser.add_argument("--latency-interval", type=float, default=0.010, help="seconds (0.01)")
    parser.add_argument("--flat", action="store_true", help="also the claim-cost phase")
    parser.add_argument("--flat-only", action="store_true", help="only the claim-cost phase")
    parser.add_argument("--flat-large", type=int, default=1_000_000, help="(1000000)")
    parser.add_argument("--flat-small", type=int, default=1_000, help="(1000)")
    parser.add_argument("--flat-window", type=int, default=5_000, help="jobs timed (5000)")
    parser.add_argument("--flat-repeats", type=int, default=5, help="(5)")
    parser.add_argument(
        "--chart",
        help=f"PNG to draw ({CHART}; {CHART_POSTGRES.name} beside it for a run of "
        "PostgreSQL peers only)",
    )
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument(
        "--jobqueue-src",
        help="measure the jobqueue package in this folder (e.g. `git archive` of a commit "
        "into DIR, then DIR/src) instead of the working tree",
    )
    parser.add_argument(
        "--jobqueue-rev", help="measure jobqueue as of this git revision (e.g. HEAD)"
    )
    parser.add_argument("--from-json", help="print the table and draw the chart of a results file")
    return parser.parse_args()


# -- one library, one round ------------------------------------------------------------------


def measure(
    adapter: Any, server: RedisServer, options: argparse.Namespace, round_no: int, database: Any
) -> dict:
    n = options.jobs
    payloads = [{"user": "u1", "n": i} for i in range(n)]
    figures: dict[str, Any] = {}

    # (a) one by one, and (d) the memory those queued jobs take. One job first, then a
    # flush: the library's one-off loads (its Lua scripts or Redis Functions, kept by a
    # flush) are not counted as memory per job.
    fresh(adapter, server)
    adapter.submit_each([{"user": "u1", "n": -1}])
    fresh(adapter, server)
    before = server.used_memory()
    started = time.perf_counter()
    adapter.submit_each(payloads)
    figures["submit_per_s"] = n / (time.perf_counter() - started)
    if adapter.on_redis:
        figures["bytes_per_job"] = (server.used_memory() - before) / n

    # (b) one worker process at concurrency 1 works through them
    log_name = f"{adapter.name}-r{round_no}-rate"
    if adapter.on_postgres:
        figures.update(counting_transactions(adapter, server, options, n, log_name, database))
    else:
        figures.update(process(adapter, server, options, n, log_name))

    # (a') bulk
    if adapter.bulk_api:
        fresh(adapter, server)
        started = time.perf_counter()
        adapter.submit_bulk(payloads)
        figures["bulk_per_s"] = n / (time.perf_counter() - started)

    # (c) spaced submits to an idle worker
    fresh(adapter, server)
    figures.update(latency(adapter, server, options, f"{adapter.name}-r{round_no}-latency"))
    fresh(adapter, server)
    return figures


def fresh(adapter: Any, server: RedisServer) -> None:
    server.flush()
    adapter.reset()


def worker_env(server: RedisServer, mode: str, target: int = 0, step: int = 1000) -> dict:
    return {
        "BENCH_REDIS_URL": server.url,
        "BENCH_MODE": mode,
        "BENCH_TARGET": str(target),
        "BENCH_STEP": str(step),
    }


def process(
    adapter: Any, server: RedisServer, options: argparse.Namespace, n: int, log_name: str
) -> dict[str, Any]:
    """Start the worker on ``n`` queued jobs; time from the first job's start to the last's
    (or to the ``--max-seconds`` cap). Also counts Redis commands and CPU per job."""
    client = server.client
    env = worker_env(server, "rate", target=n)
    polls = 0
    with WorkerProcess(adapter.worker_command(), env, log_name) as worker:
        count = wait_for_count(client, 1, worker, timeout=60)
        if count is None:
            return {"error": f"no job started; see {worker.log_path}"}
        server.reset_stats()
        count0 = count = int(client.get(body.COUNTER) or 0)
        worker_cpu0, redis_cpu0 = worker.cpu_seconds(), process_cpu_seconds(server.pid)
        watch_from = time.perf_counter()
        capped = False
        while count < n:
            time.sleep(0.05)
            count = int(client.get(body.COUNTER) or 0)
            polls += 1
            if time.perf_counter() - watch_from > options.max_seconds:
                capped = True
                break
            if not worker.alive():
                return {"error": f"worker exited; see {worker.log_path}"}
        sampled_at = time.time()
        worker_cpu, redis_cpu = worker.cpu_seconds(), process_cpu_seconds(server.pid)
        calls = server.command_calls()
    marks = read_marks(client)
    window = count - count0
    figures: dict[str, Any] = {"processed": count, "capped": capped}
    top = max(marks)
    if not capped:
        figures["processed_per_s"] = (n - 1) / (marks[n] - marks[1])
    elif top >= 1000:
        figures["processed_per_s"] = (top - 1) / (marks[top] - marks[1])
    else:  # too slow to reach a mark: count at the cap / time since the first start
        figures["processed_per_s"] = (count - 1) / (sampled_at - marks[1])
    # leave out the harness's own polls and the body's INCR (sent as INCRBY) and mark pushes
    calls["get"] = calls.get("get", 0) - polls - 1
    calls["incrby"] = calls.get("incrby", 0) - window
    calls["rpush"] = calls.get("rpush", 0) - sum(1 for k in marks if k > count0)
    library_calls = sum(v for k, v in calls.items() if k not in HARNESS_COMMANDS)
    if window > 0:
        figures["worker_cpu_us_per_job"] = (worker_cpu - worker_cpu0) / window * 1e6
    if window > 0 and adapter.on_redis:
        figures["commands_per_job"] = library_calls / window  # inside Lua scripts too
        scripts = sum(calls.get(k, 0) for k in ("evalsha", "eval", "fcall", "evalsha_ro"))
        figures["scripts_per_job"] = scripts / window
        figures["redis_cpu_us_per_job"] = (redis_cpu - redis_cpu0) / window * 1e6
        figures["commands"] = {k: round(v / window, 3) for k, v in sorted(calls.items()) if v > 0}
    return figures


def counting_transactions(
    adapter: Any,
    server: RedisServer,
    options: argparse.Namespace,
    n: int,
    log_name: str,
    database: Any,
) -> dict[str, Any]:
    """:func:`process` for a PostgreSQL peer, counting the transactions its worker made in the
    bench database over its whole life (start-up and shutdown included) per job it ran. The
    producer lets go of its connections first, and the counts are read only when no backend
    is left connected, when every one has reported its transactions."""
    adapter.release()
    if not database.settled():
        return {"error": "connections to the bench database stayed open before the worker"}
    before = database.transactions()
    figures = process(adapter, server, options, n, log_name)
    ran = int(server.client.get(body.COUNTER) or 0)
    if not database.settled():
        figures["error"] = "the worker's connections stayed open after it stopped"
    elif ran:
        figures["xacts_per_job"] = (database.transactions() - before) / ran
    return figures


def latency(
    adapter: Any, server: RedisServer, options: argparse.Namespace, log_name: str
) -> dict[str, Any]:
    """Warm an idle worker up, then submit jobs ``--latency-interval`` apart; the latency of
    each is its body's start time minus the time taken just before its submit call."""
    client = server.client
    warmups = 3
    total = warmups + options.latency_jobs
    with WorkerProcess(adapter.worker_command(), worker_env(server, "latency"), log_name) as worker:
        adapter.submit_each([{"user": "u1", "n": -k} for k in range(1, warmups + 1)])
        if wait_for_count(client, warmups, worker, timeout=60) is None:
            return {"error": f"warm-up jobs did not run; see {worker.log_path}"}
        time.sleep(0.3)  # let the worker go idle
        payloads = [{"user": "u1", "n": i} for i in range(options.latency_jobs)]
        stamps = adapter.submit_each(payloads, interval=options.latency_interval)
        wait_for_count(client, total, worker, timeout=options.max_seconds)
    starts = {int(k): float(v) for k, v in client.hgetall(body.STARTS).items()}
    latencies = [(starts[i] - stamps[i]) * 1000 for i in range(len(stamps)) if i in starts]
    if not latencies:
        return {"error": "no latency job started"}
    return {
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p99_ms": percentile(latencies, 99),
        "latency_max_ms": max(latencies),
        "latency_missing": len(stamps) - len(latencies),
    }


def wait_for_count(client: Any, wanted: int, worker: WorkerProcess, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = int(client.get(body.COUNTER) or 0)
        if count >= wanted:
            return count
        if not worker.alive():
            return None
        time.sleep(0.005)
    return None


def read_marks(client: Any) -> dict[int, float]:
    marks = {}
    for entry in client.lrange(body.MARKS, 0, -1):
        n, stamp = entry.split()
        marks[int(n)] = float(stamp)
    return marks


def _brief(figures: dict[str, Any]) -> str:
    shown = []
    for key in (
        "submit_per_s",
        "bulk_per_s",
        "processed_per_s",
        "latency_p50_ms",
        "latency_p99_ms",
        "bytes_per_job",
        "commands_per_job",
        "xacts_per_job",
        "error",
    ):
        if key in figures:
            value = figures[key]
            shown.append(f"{key}={value:,.1f}" if isinstance(value, float) else f"{key}={value}")
    if figures.get("capped"):
        shown.append(f"(capped at {figures['processed']} jobs)")
    return " ".join(shown)


def report(results: dict[str, Any], options: argparse.Namespace) -> None:
    from report import print_report

    print_report(results)
    if not options.no_chart and results.get("summary"):
        from chart import draw

        stores = results.get("stores", {})
        only_postgres = bool(stores) and all(s == "postgres" for s in stores.values())
        path = Path(options.chart or (CHART_POSTGRES if only_postgres else CHART))
        draw(results, path)
        print(f"chart: {path}")
