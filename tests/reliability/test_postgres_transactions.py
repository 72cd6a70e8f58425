"""Transactional completion against real process death, on real PostgreSQL (issue 21).

A dispatcher process SIGKILLed inside ``job.transaction()`` -- the handler's row written, the
transaction not committed -- leaves neither the row nor the completion; the job runs again
once its lease expires, and that run's row and completion commit together. A handler that
raises inside the block leaves neither either.
"""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from jobqueue.job import JobState
from tests.backends.postgres_fixtures import drop_schema, new_schema, postgres_url
from tests.reliability import transaction_app
from tests.reliability.support import Processes, app_env, wait_until, worker_command

__all__ = ["postgres_url"]

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

APP = "tests.reliability.transaction_app:queue"


@pytest.fixture
def table(postgres_url: str) -> Iterator[str]:
    name = f"effects_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{name} (job text, attempt int)")
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE public.{name}")


def test_sigkill_inside_the_transaction_leaves_neither_and_the_job_runs_again(
    postgres_url: str, table: str, processes: Processes, tmp_path: Path
) -> None:
    schema = new_schema()
    url = f"{postgres_url}?schema={schema}"
    mark = tmp_path / "inside"
    mark.mkdir()
    queue = transaction_app.build(url, table, mark, lease_seconds=1)

    def rows() -> list[tuple[str, int]]:
        with psycopg.connect(postgres_url) as conn:
            return [tuple(row) for row in conn.execute(f"SELECT job, attempt FROM {table}")]

    try:
        job = queue.submit_job("charge", None)
        declined = queue.submit_job("decline", None)
        env = app_env(url, "", lease=1)
        env.update(JQ_REL_TABLE=table, JQ_REL_MARK=str(mark))
        command = [*worker_command()[:4], APP, *worker_command()[5:]]
        first = processes.start(command, env, "dispatcher")
        wait_until(lambda: (mark / job.id).exists(), 60, "the handler inside its transaction")
        assert all(row[0] != job.id for row in rows())  # written, not committed
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
        killed = queue.get_job_by_id(job.id)
        assert killed is not None and killed.state is not JobState.COMPLETED
        assert all(row[0] != job.id for row in rows())  # the server rolled it back

        processes.start(command, env, "dispatcher")
        done = wait_until(
            lambda: (j := queue.get_job_by_id(job.id)) and j.state.is_finished and j,
            60,
            "the job to run again after its lease",
        )
        assert done.state is JobState.COMPLETED and done.result == {"attempt": 2}
        failed = wait_until(
            lambda: (j := queue.get_job_by_id(declined.id)) and j.state.is_finished and j,
            60,
            "the declining job to fail",
        )
        assert failed.state is JobState.FAILED
        assert sorted(rows()) == [(job.id, 2)]  # one effect: the run that completed
    finally:
        processes.cleanup()
        queue.close()
        drop_schema(postgres_url, schema)
