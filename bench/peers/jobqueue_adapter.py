"""jobqueue itself: Redis backend (default settings, and with ``prefetch``), SQLite backend,
PostgreSQL backend (default settings, and ``prefetch=1``) in the bench's PostgreSQL database.

Worker process: ``python -m peers.jobqueue_adapter URL [--prefetch N]``, which calls
``JobQueue(url).run_worker()`` (adaptive prefetch, the default) or ``run_worker(prefetch=N)``
— the public API at concurrency 1.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import body

from jobqueue import JobQueue
from peers import Adapter, python

WORKER = "bench"
DEFAULT_PREFETCH = 50


def make_queue(url: str, exclusive: bool = False) -> JobQueue:
    queue = JobQueue(url)
    queue.add_worker(WORKER, handle, exclusive=exclusive)
    return queue


def handle(job: Any) -> None:
    body.run(job.data)


class JobqueueAdapter(Adapter):
    name = "jobqueue"
    label = "jobqueue (Redis)"
    package = "jobqueue"
    bulk_api = "submit_jobs"
    prefetch: ClassVar[int | None] = None  # the default: adaptive

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.queue = make_queue(self.backend_url())

    def backend_url(self) -> str:
        return self.url

    def submit(self, data: dict[str, Any]) -> None:
        self.queue.submit_job(WORKER, data)

    def submit_bulk(self, payloads: Sequence[dict[str, Any]]) -> None:
        self.queue.submit_jobs(WORKER, payloads)

    def close(self) -> None:
        self.queue.close()

    def worker_command(self) -> list[str]:
        command = [python(), "-m", "peers.jobqueue_adapter", self.backend_url()]
        return command if self.prefetch is None else [*command, "--prefetch", str(self.prefetch)]


class JobqueuePrefetchAdapter(JobqueueAdapter):
    name = "jobqueue-prefetch"
    label = f"jobqueue (Redis), prefetch={DEFAULT_PREFETCH}"
    prefetch = DEFAULT_PREFETCH

    @classmethod
    def configure(cls, prefetch: int) -> None:
        cls.prefetch = prefetch
        cls.label = f"jobqueue (Redis), prefetch={prefetch}"


class JobqueueSqliteAdapter(JobqueueAdapter):
    """The SQLite backend on a local file (the body still INCRs the benchmark's Redis)."""

    name = "jobqueue-sqlite"
    label = "jobqueue (SQLite file)"
    on_redis = False

    def __init__(self, url: str) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="jobqueue-bench-sqlite-"))
        super().__init__(url)

    def backend_url(self) -> str:
        return f"sqlite:///{self.directory / 'jobs.db'}"

    def reset(self) -> None:
        self.queue.close()
        for path in self.directory.iterdir():
            path.unlink()
        self.queue = make_queue(self.backend_url())

    def close(self) -> None:
        super().close()
        for path in self.directory.iterdir():
            path.unlink()
        os.rmdir(self.directory)


class JobqueuePostgresAdapter(JobqueueAdapter):
    """The PostgreSQL backend in the schema ``jobqueue_pg`` of the bench database (``?schema=``),
    dropped before each phase and re-created by the queue itself as it opens."""

    name = "jobqueue-pg"
    label = "jobqueue (PostgreSQL)"
    on_redis = False
    on_postgres = True
    schema = "jobqueue_pg"

    def __init__(self, url: str) -> None:
        self.url = url
        self.queue: JobQueue | None = None  # opened by reset(), once the database exists

    def backend_url(self) -> str:
        from postgres import with_query

        from peers.postgres_base import database_url

        return with_query(database_url(), schema=self.schema)

    def submit(self, data: dict[str, Any]) -> None:
        assert self.queue is not None
        self.queue.submit_job(WORKER, data)

    def submit_bulk(self, payloads: Sequence[dict[str, Any]]) -> None:
        assert self.queue is not None
        self.queue.submit_jobs(WORKER, payloads)

    def reset(self) -> None:
        from peers.postgres_base import recreate_schema

        self.release()
        recreate_schema(self.schema)
        self.queue = make_queue(self.backend_url())  # creates its tables

    def release(self) -> None:
        if self.queue is not None:
            self.queue.close()
            self.queue = None

    def close(self) -> None:
        self.release()


class JobqueuePostgresPrefetch1Adapter(JobqueuePostgresAdapter):
    name = "jobqueue-pg-prefetch1"
    label = "jobqueue (PostgreSQL), prefetch=1"
    prefetch = 1


class JobqueuePostgresNoListenAdapter(JobqueuePostgresAdapter):
    """``?listen=false`` (PgBouncer in transaction mode): wake-ups by polling alone (5 ms
    doubling to 50 ms), so its latency is the figure to hold against twice the poll."""

    name = "jobqueue-pg-nolisten"
    label = "jobqueue (PostgreSQL), listen=false"

    def backend_url(self) -> str:
        from postgres import with_query

        return with_query(super().backend_url(), listen="false")


ADAPTERS: list[type[JobqueueAdapter]] = [
    JobqueueAdapter,
    JobqueuePrefetchAdapter,
    JobqueueSqliteAdapter,
    JobqueuePostgresAdapter,
    JobqueuePostgresPrefetch1Adapter,
    JobqueuePostgresNoListenAdapter,
]


def main() -> None:
    parser = argparse.ArgumentParser(description="a jobqueue worker process for the benchmark")
    parser.add_argument("url")
    parser.add_argument("--prefetch", type=int, help="a fixed depth (default: adaptive)")
    parser.add_argument("--exclusive", action="store_true", help="register exclusive=True")
    parser.add_argument("--barrier", help="Redis URL: say ready, wait for the go (scale.py)")
    args = parser.parse_args()
    queue = make_queue(args.url, exclusive=args.exclusive)
    if args.barrier:
        wait_for_go(args.barrier)
    # Without the argument when adaptive: an older checkout (--jobqueue-src) runs its own default.
    if args.prefetch is None:
        queue.run_worker()
    else:
        queue.run_worker(prefetch=args.prefetch)


READY, GO = "bench:ready", "bench:go"


def wait_for_go(url: str) -> None:
    """Start together: count this process ready, then wait for the harness's go."""
    import time

    import redis

    client = redis.Redis.from_url(url)
    client.incr(READY)
    while not client.exists(GO):
        time.sleep(0.001)
    client.close()


if __name__ == "__main__":
    main()
