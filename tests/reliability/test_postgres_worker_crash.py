"""SIGKILL of a dispatcher process inside a job, on real PostgreSQL (issue 21).

Real dispatcher processes (the ``jobqueue worker`` CLI, two slots each) work through short
jobs and a few that hang on their first attempt. Each time one of those is running, the
process running it is SIGKILLed and a replacement started. The dispatchers' host clocks are
off by half an hour either way (``skewed_clock``): leases are measured on the database's
clock, so that must change nothing -- were they measured on a host's, the one ahead would
take over every other's job at once, and the one behind would never recover any. At the end:

- nothing is lost: every submitted job is COMPLETED, nothing is left waiting or active;
- each killed job ran again only once its lease, as stored when its process died, had expired
  on the database's clock;
- no job ran twice at once: a job's runs (start and end read from the database's clock; a
  killed run ends when its process was reaped) never overlap;
- no completion was announced twice.
"""

from __future__ import annotations

import itertools
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
import pytest

from jobqueue.job import JobState
from tests.backends.postgres_fixtures import drop_schema, new_schema, postgres_url
from tests.reliability import postgres_app
from tests.reliability.support import Processes, app_env, wait_until, worker_command

__all__ = ["postgres_url"]

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

APP = "tests.reliability.postgres_app:queue"
SHORT_JOBS = 40
HANGING_JOBS = 3
SKEWS = (1800.0, -1800.0)  # one per dispatcher: their host clocks, half an hour off
LEASE = 3.0  # the heartbeat renews it every second: 2 s or more left when a process dies


@dataclass
class Run:
    job: str
    pid: int
    attempt: int
    start: float
    end: float | None = None


@pytest.fixture
def setup(postgres_url: str) -> Iterator[tuple[str, str]]:
    """The queue's URL (a schema of its own) and the name of the test's tables."""
    schema, table = new_schema(), f"pgrel_{secrets.token_hex(4)}"
    postgres_app.create_tables(postgres_url, table)
    yield f"{postgres_url}?schema={schema}", table
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS public.{table}_runs, public.{table}_effects")
    drop_schema(postgres_url, schema)


def db_now(url: str) -> float:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
    assert row is not None
    return float(row[0])


def runs_of(url: str, table: str) -> list[Run]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT job, pid, attempt, event, at FROM public.{table}_runs ORDER BY at"
        ).fetchall()
    runs: dict[tuple[str, int, int], Run] = {}
    for job, pid, attempt, event, at in rows:
        if event == "start":
            assert (job, pid, attempt) not in runs, f"job {job} attempt {attempt} began twice"
            runs[job, pid, attempt] = Run(job, pid, attempt, at)
        else:
            runs[job, pid, attempt].end = at
    return list(runs.values())


def test_sigkill_inside_a_job_loses_nothing_and_runs_nothing_twice_at_once(
    setup: tuple[str, str], postgres_url: str, processes: Processes, tmp_path: Path
) -> None:
    url, table = setup
    began = time.monotonic()
    announced = tmp_path / "announced"
    announced.mkdir()
    queue = postgres_app.build(url, table, announced, lease_seconds=LEASE)
    short = queue.submit_jobs(
        "steps", [{"seconds": 0.05 + (n % 4) * 0.05} for n in range(SHORT_JOBS)]
    )
    hanging = queue.submit_jobs(
        "steps", [{"seconds": 0.1, "hang_first": True} for _ in range(HANGING_JOBS)]
    )
    ids = [job.id for job in [*short, *hanging]]
    hanging_ids = {job.id for job in hanging}

    env = app_env(url, "", lease=LEASE)
    env.update(JQ_REL_TABLE=table, JQ_REL_ANNOUNCED=str(announced))

    def command(skew: float) -> list[str]:
        cli = worker_command("--concurrency", "2", app=APP)
        assert cli[1:3] == ["-m", "jobqueue"]
        return [sys.executable, "-m", "tests.reliability.skewed_clock", str(skew), *cli[3:]]

    for skew in SKEWS:
        processes.start(command(skew), env, "dispatcher")

    killed: dict[int, float] = {}  # pid → when it was reaped, on the database's clock
    lease_at_kill: dict[str, float] = {}  # hanging job → its lease's end as stored then

    # A hanging job claimed by a process killed before it started (under load, a slot may
    # hold it a while) runs first as attempt 2 and never hangs: only those still at attempt
    # 1 are waited for.
    def first_attempt_ahead(job_id: str) -> bool:
        job = queue.get_job_by_id(job_id)
        return job is not None and job.attempts_made <= 1 and not job.state.is_finished

    while any(first_attempt_ahead(j) for j in hanging_ids - set(lease_at_kill)):

        def hanging_run() -> Run | Literal["none ahead"] | None:
            alive = {p.pid for p in processes.alive()}
            for run in runs_of(postgres_url, table):
                if run.job in hanging_ids and run.attempt == 1 and run.pid in alive:
                    return run
            if not any(first_attempt_ahead(j) for j in hanging_ids - set(lease_at_kill)):
                return "none ahead"
            return None

        run = wait_until(hanging_run, 60, "a hanging job's first attempt to start")
        if run == "none ahead":
            break
        assert isinstance(run, Run)
        (victim,) = [p for p in processes.alive() if p.pid == run.pid]
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=10) == -signal.SIGKILL
        killed[victim.pid] = db_now(postgres_url)
        for job_id in hanging_ids - set(lease_at_kill):
            held = [r for r in runs_of(postgres_url, table) if r.job == job_id]
            if any(r.pid == victim.pid for r in held):
                job = queue.get_job_by_id(job_id)  # still the killed attempt's lease
                assert job is not None and job.state is JobState.ACTIVE
                assert job.attempts_made == 1 and job.lease_expires_at is not None
                lease_at_kill[job_id] = job.lease_expires_at
        processes.start(command(SKEWS[len(killed) % len(SKEWS)]), env, "dispatcher")

    total = len(ids)
    wait_until(
        lambda: queue.count_by_state()[JobState.COMPLETED] == total, 120, "every job completed"
    )
    counts = queue.count_by_state()
    assert counts[JobState.COMPLETED] == total
    assert sum(counts.values()) == total  # nothing waiting, active, failed or cancelled
    done = {job_id: queue.get_job_by_id(job_id) for job_id in ids}
    assert all(j is not None and j.state is JobState.COMPLETED for j in done.values())

    runs = runs_of(postgres_url, table)
    by_job: dict[str, list[Run]] = {}
    for run in runs:
        by_job.setdefault(run.job, []).append(run)
    assert set(by_job) == set(ids)
    for job_id, job_runs in by_job.items():
        job_runs.sort(key=lambda r: r.start)
        assert job_runs[-1].end is not None, f"job {job_id}'s last run did not end"
        for run in job_runs:  # a run that never ended was in a process killed meanwhile
            assert run.end is not None or run.pid in killed, f"{run} neither ended nor died"
        for first, then in itertools.pairwise(job_runs):
            first_end = first.end if first.end is not None else killed[first.pid]
            assert then.start >= first_end, f"job {job_id} ran twice at once: {first}, {then}"
    assert lease_at_kill, "no process was killed inside a hanging job"
    for job_id in lease_at_kill:
        first, *rest = by_job[job_id]
        assert first.attempt == 1 and first.pid in killed and first.end is None
        assert rest and rest[0].attempt == 2
        # Re-run only after its lease, on the database's clock (the hosts' are 30 min off).
        assert rest[0].start >= lease_at_kill[job_id], f"job {job_id} re-ran inside its lease"
        job = done[job_id]
        assert job is not None and job.stalls >= 1 and job.result == {"pid": rest[-1].pid}

    twice = {k: n for k, n in Counter(postgres_app.announced(announced)).items() if n > 1}
    assert not twice, f"completions announced twice: {twice}"
    assert len(processes.alive()) == len(SKEWS)
    interrupted = sum(1 for r in runs if r.end is None)
    print(
        f"\n[postgres worker crash] jobs={total} kills={len(killed)} lost=0 "
        f"runs_interrupted={interrupted} runs={len(runs)} "
        f"duration={time.monotonic() - began:.1f}s"
    )
    processes.cleanup()
    queue.close()
