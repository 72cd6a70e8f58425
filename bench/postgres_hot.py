"""PostgreSQL backend, the hot paths: submit one by one and in bulk, processed/s at the
defaults and with ``prefetch=1`` (one worker process, concurrency 1, a no-op handler), the
PostgreSQL transactions (``pg_stat_database.xact_commit``) and psycopg statements per job,
and submit→start latency with LISTEN.

    .venv/bin/python bench/postgres_hot.py                      # all of it
    .venv/bin/python bench/postgres_hot.py --jobs 5000 --no-latency
    .venv/bin/python bench/postgres_hot.py --flat 1000,100000   # claim cost vs waiting jobs
    .venv/bin/python bench/postgres_hot.py --soak 180           # throughput, xmin pinned

Runs on the PostgreSQL at ``--server`` (default 127.0.0.1:5432, user postgres) in a database of
its own, created at the start and dropped at the end; it never touches another database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from jobqueue import JobQueue
from jobqueue.backend import BackendOptions, WorkSpec
from jobqueue.backends.postgres import PostgresBackend
from jobqueue.engine import Engine
from jobqueue.job import Job


class Counters:
    """psycopg statements sent by this process (``Cursor.execute`` and ``executemany``, a
    pipeline's statements each counted) while ``counting``."""

    def __init__(self) -> None:
        self.statements = 0

    @contextmanager
    def counting(self) -> Iterator[None]:
        cursor = psycopg.Cursor
        execute, executemany = cursor.execute, cursor.executemany

        def counted_execute(self_: Any, *args: Any, **kwargs: Any) -> Any:
            self.statements += 1
            return execute(self_, *args, **kwargs)

        def counted_many(self_: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            params = list(params_seq)
            self.statements += len(params)
            return executemany(self_, query, params, **kwargs)

        cursor.execute = counted_execute  # type: ignore[method-assign]
        cursor.executemany = counted_many  # type: ignore[method-assign]
        try:
            yield
        finally:
            cursor.execute = execute  # type: ignore[method-assign]
            cursor.executemany = executemany  # type: ignore[method-assign]


class Server:
    def __init__(self, base: str, database: str) -> None:
        self.base = base
        self.database = database
        self.url = f"{base}/{database}"

    def admin(self, sql: str) -> None:
        with psycopg.connect(f"{self.base}/postgres", autocommit=True) as conn:
            conn.execute(sql)

    def commits(self) -> int:
        """Committed transactions of the bench's database so far (every backend that
        ended has flushed its counts; live ones flush within a second)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (self.database,)
            ).fetchone()
        return int(row[0]) if row else 0


def measured(
    server: Server, counters: Counters, run: Callable[[], int]
) -> tuple[int, float, int, int]:
    """(items, seconds, transactions, statements) of ``run`` (which returns its items), with
    every connection it opened closed by the time it returns."""
    before_commits = server.commits()
    before_statements = counters.statements
    with counters.counting():
        started = time.perf_counter()
        items = run()
        took = time.perf_counter() - started
    time.sleep(1.2)  # backends still connected flush their statistics at most once a second
    commits = server.commits() - before_commits - 1  # the reading connection's own
    return items, took, commits, counters.statements - before_statements


def submit_one_by_one(url: str, jobs: int) -> int:
    with JobQueue(url, load_entrypoints=False) as queue:
        queue.add_worker("noop", lambda job: None)
        for i in range(jobs):
            queue.submit_job("noop", {"i": i})
    return jobs


def submit_bulk(url: str, jobs: int) -> int:
    with JobQueue(url, load_entrypoints=False) as queue:
        queue.add_worker("noop", lambda job: None)
        queue.submit_jobs("noop", [{"i": i} for i in range(jobs)])
    return jobs


def processed(url: str, prefetch: int | None) -> int:
    with JobQueue(url, load_entrypoints=False) as queue:
        queue.add_worker("noop", lambda job: None)
        return queue.work(burst=True, concurrency=1, prefetch=prefetch)


def fill(url: str, jobs: int) -> None:
    with JobQueue(url, load_entrypoints=False) as queue:
        queue.add_worker("noop", lambda job: None)
        for start in range(0, jobs, 50_000):
            queue.submit_jobs("noop", [{"i": i} for i in range(start, min(jobs, start + 50_000))])


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
    """Submit here, run in a dispatcher process; ms from submit to handler start."""
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
                time.sleep(0.02 + (n % 5) * 0.02)
                job = queue.submit_job("ping", n)
                done = queue.wait_for(job.id, timeout=10)
                assert done is not None and done.started_at is not None
                results.append((done.started_at - job.created_at) * 1000)
            return results
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def flat(url: str, sizes: list[int], rounds: int = 300) -> None:
    """Median complete-and-claim-next with ``size`` jobs waiting (kept level)."""
    spec = WorkSpec(names=("flat",), lease_seconds=60)
    for size in sizes:
        schema_url = f"{url}?schema=flat_{size}"
        backend = Engine(PostgresBackend(schema_url, BackendOptions()))
        try:
            now = time.time()
            for start in range(0, size, 50_000):
                n = min(50_000, size - start)
                backend.submit_many(
                    [Job(id="", name="flat", data={}, created_at=now, run_at=now) for _ in range(n)]
                )
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"VACUUM ANALYZE flat_{size}.jobqueue_jobs")
            claim = backend.claim_many(spec, 1)[0]
            assert claim is not None
            times = []
            for _ in range(rounds):
                backend.submit(Job(id="", name="flat", data={}, created_at=now, run_at=now))
                t0 = time.perf_counter()
                nxt = backend.complete(claim.job.id, claim.token, None, spec)
                times.append(time.perf_counter() - t0)
                assert nxt is not None
                claim = nxt
            print(
                f"complete+claim-next with {size:>9,} waiting: "
                f"{statistics.median(times) * 1000:.3f} ms median"
            )
        finally:
            backend.close()


def soak(url: str, seconds: float, batch: int) -> None:
    """Rounds of ``batch`` jobs submitted in bulk then drained (processed/s at the defaults)
    for ``seconds``, while another session holds a snapshot open the whole time (the xmin
    horizon pinned: vacuum can remove no row version dead since): does throughput hold?
    Each round prints its processed/s and the dead row versions so far (``n_dead_tup``);
    the end, the rates first to last and the dead rows and waiting index left."""
    soak_url = f"{url}?schema=soak"
    with JobQueue(soak_url, load_entrypoints=False):
        pass
    pin = psycopg.connect(url, autocommit=True)
    rates: list[float] = []
    try:
        pin.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        pin.execute("SELECT txid_current()")  # an xid and a snapshot, held to the end
        started = time.perf_counter()
        round_no = 0
        while time.perf_counter() - started < seconds:
            round_no += 1
            fill(soak_url, batch)
            time.sleep(1.2)  # the submitter's statistics flushed
            read_before = entries_read(url)
            t0 = time.perf_counter()
            done = processed(soak_url, None)
            rates.append(done / (time.perf_counter() - t0))
            time.sleep(1.2)
            read = entries_read(url) - read_before
            dead = dead_rows(url)
            print(
                f"soak round {round_no:>2} ({time.perf_counter() - started:5.0f} s, xmin "
                f"pinned): {rates[-1]:>7,.0f} processed/s, {read / max(done, 1):7,.1f} "
                f"waiting-index entries read per job; dead rows: jobs "
                f"{dead.get('jobqueue_jobs', 0):,}, count deltas "
                f"{dead.get('jobqueue_count_deltas', 0):,}",
                flush=True,
            )
        time.sleep(1.2)  # the workers' statistics flushed (at most once a second)
        dead = dead_rows(url)
        with psycopg.connect(url, autocommit=True) as conn:
            index = conn.execute(
                "SELECT pg_size_pretty(pg_relation_size('soak.jobqueue_waiting'))"
            ).fetchone()
        print(
            f"soak end ({round_no} rounds of {batch:,}, xmin pinned throughout): processed/s "
            f"{' -> '.join(f'{rate:,.0f}' for rate in rates)} (last/first "
            f"{rates[-1] / rates[0]:.2f}); n_dead_tup jobs {dead.get('jobqueue_jobs', 0):,}, "
            f"count deltas {dead.get('jobqueue_count_deltas', 0):,}; waiting index "
            f"{index[0] if index else '?'}",
            flush=True,
        )
    finally:
        pin.close()


def entries_read(url: str) -> int:
    """Entries the soak's claims have read from the waiting index so far (``idx_tup_read``:
    dead ones included, which is what a claim that steps over them costs). Unlike a rate on
    a shared machine, this does not depend on what else runs."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT idx_tup_read FROM pg_stat_user_indexes WHERE schemaname = 'soak' "
            "AND indexrelname = 'jobqueue_waiting'"
        ).fetchone()
    return int(row[0]) if row else 0


def dead_rows(url: str) -> dict[str, int]:
    """``n_dead_tup`` of the soak schema's tables."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            str(name): int(dead)
            for name, dead in conn.execute(
                "SELECT relname, n_dead_tup FROM pg_stat_user_tables WHERE schemaname = 'soak'"
            ).fetchall()
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per processing run")
    parser.add_argument("--submits", type=int, default=3_000, help="one-by-one submits")
    parser.add_argument("--bulk", type=int, default=50_000, help="jobs in the bulk submit")
    parser.add_argument("--samples", type=int, default=100, help="latency samples")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--flat", default="", help="comma-separated waiting-job counts")
    parser.add_argument("--soak", type=float, default=0, help="seconds of the xmin soak")
    parser.add_argument("--soak-batch", type=int, default=20_000)
    args = parser.parse_args()
    server = Server(args.server, f"jobqueue_bench_{os.getpid()}")
    server.admin(f"CREATE DATABASE {server.database}")
    counters = Counters()
    rows: list[tuple[str, str, str, str]] = []

    def row(label: str, items: int, took: float, commits: int, statements: int, unit: str) -> None:
        rows.append(
            (
                label,
                f"{items / took:,.0f} {unit}",
                f"{commits / items:.2f}",
                f"{statements / items:.2f}",
            )
        )
        print(
            f"{label:<24} {items / took:>8,.0f} {unit}  xact/job {commits / items:.2f}  "
            f"statements/job {statements / items:.2f}",
            flush=True,
        )

    try:
        url = server.url
        with JobQueue(url, load_entrypoints=False):
            pass  # the schema, created outside the measurements
        row(
            "submit one by one",
            *measured(server, counters, lambda: submit_one_by_one(url, args.submits)),
            "jobs/s",
        )
        row(
            "bulk submit",
            *measured(server, counters, lambda: submit_bulk(url, args.bulk)),
            "jobs/s",
        )
        for label, prefetch in (("processed, defaults", None), ("processed, prefetch=1", 1)):
            run_url = f"{url}?schema=run_{'d' if prefetch is None else prefetch}"  # a fresh queue
            fill(run_url, args.jobs)
            done, took, commits, statements = measured(
                server, counters, lambda u=run_url, p=prefetch: processed(u, p)
            )
            assert done == args.jobs, (done, args.jobs)
            row(label, done, took, commits, statements, "jobs/s")
        if not args.no_latency:
            lat = sorted(latency(url, args.samples))
            p50 = statistics.median(lat)
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"submit→start (LISTEN): p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
        if args.flat:
            flat(url, [int(size) for size in args.flat.split(",")])
        if args.soak:
            soak(url, args.soak, args.soak_batch)
    finally:
        server.admin(f"DROP DATABASE {server.database} WITH (FORCE)")
    print(f"cpus: {os.cpu_count()}, psycopg {psycopg.__version__}")


if __name__ == "__main__":
    main()
