"""The application of the PostgreSQL reliability tests' dispatcher processes:
``python -m jobqueue --app tests.reliability.postgres_app:queue worker``.

Settings from the environment: ``JQ_REL_URL`` (a PostgreSQL URL with its own ``?schema=``),
``JQ_REL_TABLE`` (the test's tables ``public.<table>_runs`` and ``public.<table>_effects``,
made by ``create_tables``), ``JQ_REL_ANNOUNCED`` (a directory where each process appends the
completions announced to it, one file per process: files survive a PostgreSQL outage),
and ``JQ_REL_LEASE``. (A host with a skewed clock: ``tests.reliability.skewed_clock``.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psycopg

from jobqueue import JobQueue, hookimpl
from jobqueue.backends.postgres.url import parse
from jobqueue.job import Job


def queue() -> JobQueue:
    return build(
        os.environ["JQ_REL_URL"],
        os.environ["JQ_REL_TABLE"],
        Path(os.environ["JQ_REL_ANNOUNCED"]),
        lease_seconds=float(os.environ.get("JQ_REL_LEASE", "1")),
    )


def create_tables(url: str, table: str) -> None:
    """``<table>_runs``: every run's start and end on the database's clock (autocommit, so
    a killed run leaves its start). ``<table>_effects``: the effects written in the same
    transaction as the job's completion (``job.transaction()``)."""
    with psycopg.connect(parse(url).conninfo, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE public.{table}_runs (job text NOT NULL, pid int NOT NULL, "
            "attempt int NOT NULL, event text NOT NULL, "
            "at float8 NOT NULL DEFAULT extract(epoch FROM clock_timestamp()))"
        )
        conn.execute(f"CREATE TABLE public.{table}_effects (job text NOT NULL, attempt int)")


def build(url: str, table: str, announced: Path, **options: Any) -> JobQueue:
    jobs = JobQueue(url, load_entrypoints=False, **options)
    conninfo = parse(url).conninfo
    jobs.plugins.register(Announced(announced))

    @jobs.worker("steps", attempts=3)
    def steps(job: Any) -> dict[str, int]:
        """Records its start, works ``data["seconds"]`` in 50 ms steps (forever on its first
        attempt when ``data["hang_first"]``: the test kills it there), records its end."""
        record_run(conninfo, table, job, "start")
        until = time.monotonic() + job.data["seconds"]
        while time.monotonic() < until or (job.data.get("hang_first") and job.attempts_made == 1):
            time.sleep(0.05)
        record_run(conninfo, table, job, "end")
        return {"pid": os.getpid()}

    # Retried: while PostgreSQL restarts, the effect's transaction fails like any call.
    @jobs.worker("effect", attempts=100, backoff=0.05)
    def effect(job: Any) -> dict[str, str]:
        """Writes one effect row and completes in one transaction: exactly one row per
        completed job, however often an attempt is interrupted."""
        with job.transaction(result={"done": job.id}) as conn:
            conn.execute(
                f"INSERT INTO public.{table}_effects (job, attempt) VALUES (%s, %s)",
                (job.id, job.attempts_made),
            )
        return {"done": job.id}

    return jobs


def record_run(conninfo: str, table: str, job: Any, event: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO public.{table}_runs (job, pid, attempt, event) VALUES (%s, %s, %s, %s)",
            (job.id, os.getpid(), job.attempts_made, event),
        )


class Announced:
    """Every completion the backend accepted and the dispatcher announced, appended to this
    process's file at once (one ``write`` of one line)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"completed-{os.getpid()}.txt"

    @hookimpl
    def jobqueue_job_completed(self, job: Job) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(job.id + "\n")


def announced(directory: Path) -> list[str]:
    """Every id announced by every process, once per announcement."""
    return [line for path in directory.glob("completed-*.txt") for line in path.read_text().split()]
