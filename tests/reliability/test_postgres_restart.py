"""PostgreSQL restarted under load, on a server of the test's own (issue 21).

A submitter process submits jobs one by one while two dispatcher processes (two slots each)
run them; each job writes one effect row and completes in the same transaction
(``job.transaction()``). Mid-run the test restarts PostgreSQL (``pg_ctl restart -m fast``),
then later stops it, waits until the submitter and every dispatcher have felt the outage, and
starts it again. Then:

- nobody exited: the submitter rode out its errors, the dispatchers their outages;
- every acknowledged submit (an id ``submit_job`` returned) ends COMPLETED, nothing failed;
- every stored job's effect happened exactly once (at-least-once runs, exactly-once effects:
  the effect commits with the completion), and no completion was announced twice;
- wake-ups resumed: every dispatcher's LISTEN connection came back after each outage.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from jobqueue.job import JobState
from tests.backends.postgres_fixtures import with_database
from tests.reliability import postgres_app
from tests.reliability.own_postgres import OwnPostgres, own_postgres
from tests.reliability.support import ROOT, Processes, app_env, wait_until, worker_command

__all__ = ["own_postgres"]

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

APP = "tests.reliability.postgres_app:queue"
JOBS = 600
DISPATCHERS = 2
TABLE = "restart"
LOST, BACK = "LISTEN connection lost", "LISTEN connection is back"


def test_postgresql_restarts_lose_no_acknowledged_submit(
    own_postgres: OwnPostgres, processes: Processes, tmp_path: Path
) -> None:
    began = time.monotonic()
    with psycopg.connect(own_postgres.url, autocommit=True) as admin:
        admin.execute("CREATE DATABASE jobqueue_restart")
    database = with_database(own_postgres.url, "jobqueue_restart")
    postgres_app.create_tables(database, TABLE)
    url = f"{database}?schema=restart"
    announced = tmp_path / "announced"
    announced.mkdir()
    queue = postgres_app.build(url, TABLE, announced, lease_seconds=2.0)  # creates the schema
    env = app_env(url, "", lease=2.0)
    env.update(JQ_REL_TABLE=TABLE, JQ_REL_ANNOUNCED=str(announced))
    command = worker_command("--concurrency", "2", app=APP)
    dispatchers = [processes.start(command, env, "dispatcher") for _ in range(DISPATCHERS)]
    ackfile = tmp_path / "acked.txt"
    errfile = Path(f"{ackfile}.errors")
    ackfile.touch()
    errfile.touch()
    script = str(ROOT / "tests" / "reliability" / "postgres_submitter.py")
    submitter = processes.start([sys.executable, script, str(JOBS), str(ackfile)], env, "submitter")

    def acked() -> list[str]:
        return ackfile.read_text().split()

    def submit_errors() -> int:
        return len(errfile.read_text().split())

    def lost_listens() -> list[int]:
        return [processes.log_of(d).count(LOST) for d in dispatchers]

    wait_until(lambda: len(acked()) >= JOBS * 0.3, 120, "30% submitted")
    own_postgres.restart()  # pg_ctl restart -m fast: back when it returns
    assert submitter.poll() is None, processes.log_of(submitter)
    assert all(d.poll() is None for d in dispatchers)

    wait_until(lambda: len(acked()) >= JOBS * 0.6, 120, "60% submitted")
    errors_before = submit_errors()
    own_postgres.stop()
    # Down until everyone has noticed: the submitter's submits fail, every dispatcher's
    # LISTEN connection is gone (a second time).
    wait_until(
        lambda: submit_errors() > errors_before and min(lost_listens()) >= 2,
        90,
        "the submitter and every dispatcher to notice the outage",
    )
    assert submitter.poll() is None, processes.log_of(submitter)
    assert all(d.poll() is None for d in dispatchers)
    own_postgres.start()
    outages = own_postgres.restarts + 1

    assert submitter.wait(timeout=180) == 0, processes.log_of(submitter)
    ids = acked()
    assert len(ids) == JOBS and len(set(ids)) == JOBS

    def all_finished() -> bool:
        counts = queue.count_by_state()
        return counts[JobState.WAITING] + counts[JobState.ACTIVE] + counts[JobState.DELAYED] == 0

    wait_until(all_finished, 120, "the dispatchers to finish every job")
    states = {job_id: queue.get_job_by_id(job_id) for job_id in ids}
    lost = [job_id for job_id, job in states.items() if job is None]
    unfinished = [j.id for j in states.values() if j is not None and j.state != JobState.COMPLETED]
    assert not lost, f"acknowledged submits lost: {lost}"
    assert not unfinished, f"not completed: {unfinished}"
    counts = queue.count_by_state()
    assert counts[JobState.FAILED] == 0 and counts[JobState.CANCELLED] == 0
    stored = counts[JobState.COMPLETED]
    assert stored >= JOBS  # more only if a submit was stored but its reply lost

    with psycopg.connect(database) as conn:
        effects = dict(
            conn.execute(f"SELECT job, count(*) FROM public.{TABLE}_effects GROUP BY job")
        )
    done = {job.id for job in queue.list_jobs(JobState.COMPLETED, limit=stored + 10)}
    assert len(done) == stored and set(ids) <= done
    assert set(effects) == done, "a completed job without its effect, or an effect without one"
    twice = {job_id: n for job_id, n in effects.items() if n != 1}
    assert not twice, f"effects written more than once: {twice}"
    announcements = Counter(postgres_app.announced(announced))
    assert not {k: n for k, n in announcements.items() if n > 1}, "announced twice"

    # Wake-ups resumed: each dispatcher lost its LISTEN connection once per outage and got it
    # back every time (then reconnected and LISTENed again, as the server shows).
    assert all(d.poll() is None for d in dispatchers), "a dispatcher exited"
    for dispatcher in dispatchers:
        log = processes.log_of(dispatcher)
        assert log.count(LOST) == outages, log
    wait_until(
        lambda: all(processes.log_of(d).count(BACK) == outages for d in dispatchers),
        60,
        "every dispatcher's LISTEN connection to come back",
    )

    def listening_sessions() -> int:
        with psycopg.connect(database) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
            ).fetchone()
        return int(row[0]) if row else 0

    # The dispatchers' listeners and this process's own (the submitter has exited).
    wait_until(lambda: listening_sessions() == DISPATCHERS + 1, 60, "every listener back")
    after = queue.submit_job("effect", {"after": "the outages"})
    finished = wait_until(
        lambda: (j := queue.get_job_by_id(after.id)) and j.state.is_finished and j,
        60,
        "a job submitted after the outages to be run",
    )
    assert finished.state is JobState.COMPLETED

    errors = int(processes.log_of(submitter).rsplit("errors=", 1)[1].split()[0])
    retried = sum(1 for job in states.values() if job is not None and job.attempts_made > 1)
    logs = "".join(processes.log_of(d) for d in dispatchers)
    print(
        f"\n[postgres restart] jobs_acknowledged={JOBS} outages={outages} lost=0 "
        f"stored={stored} effects_once={len(effects)} submit_errors_ridden_out={errors} "
        f"jobs_retried={retried} dispatcher_backend_retries={logs.count('backend error')} "
        f"duration={time.monotonic() - began:.1f}s"
    )
    processes.cleanup()
    queue.close()
