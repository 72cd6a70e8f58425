"""The PostgreSQL submit: one statement (``jobqueue_submit``, migration 3) in autocommit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from jobqueue import ids
from jobqueue.backend import BackendOptions
from jobqueue.backends.postgres import PostgresBackend
from jobqueue.backends.postgres.submit import COPY_ROWS
from jobqueue.changes import Selector
from jobqueue.job import Job, JobLog, JobState
from tests.backends.postgres_fixtures import postgres_url, schema

__all__ = ["postgres_url", "schema"]

pytestmark = pytest.mark.postgres


@pytest.fixture
def backend(postgres_url: str, schema: str) -> Iterator[PostgresBackend]:
    opened = PostgresBackend(f"{postgres_url}?schema={schema}")
    yield opened
    opened.close()


def a_job(name: str = "a", *, key: str | None = None, delay: float = 0.0) -> Job:
    now = time.time()
    return Job(id="", name=name, data={"n": 1}, unique_key=key, created_at=now, run_at=now + delay)


class Sent:
    """The statements and COPYs psycopg sends from this thread from now on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[str] = []
        execute = psycopg.Cursor.execute
        thread = threading.get_ident()

        def recorded(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == thread:  # not the wake-up sender's (``wakeups``)
                self.statements.append(str(query))
            return execute(cursor, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", recorded)
        copy = psycopg.Cursor.copy

        def copied(cursor: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == thread:
                self.statements.append(str(statement))
            return copy(cursor, statement, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "copy", copied)


def test_a_submit_is_one_statement_and_no_transaction_of_its_own(
    backend: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.insert([a_job()])  # the write connection is open now
    sent = Sent(monkeypatch)
    for job in ([a_job()], [a_job(key="k")], [a_job(), a_job(delay=60)]):
        backend.insert(job)
    assert len(sent.statements) == 3
    assert all("jobqueue_submit(" in text for text in sent.statements)
    assert not any("BEGIN" in text or "COMMIT" in text for text in sent.statements)


def test_states_ids_order_and_counts(backend: PostgresBackend) -> None:
    now, later, other = backend.insert([a_job(), a_job(delay=3600), a_job("b")])
    assert (now.state, later.state, other.state) == (
        JobState.WAITING,
        JobState.DELAYED,
        JobState.WAITING,
    )
    assert int(now.id) < int(later.id) < int(other.id)
    assert int(now.id) >= ids.clock_floor() - 60_000_000  # ids follow the clock floor
    (next_one,) = backend.insert([a_job()])
    assert int(next_one.id) > int(other.id)
    assert [job.id for job in backend.scan(Selector(JobState.WAITING, "a"), 0, 10)] == [
        now.id,
        next_one.id,
    ]
    counts = backend.counts()
    assert counts["a"][JobState.WAITING] == 2
    assert counts["a"][JobState.DELAYED] == 1
    assert counts["b"][JobState.WAITING] == 1


def test_ids_never_go_below_the_clock_floor(backend: PostgresBackend, postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"UPDATE {backend.schema}.jobqueue_meta SET value = 5 WHERE key = 'job_id'")
    floor = ids.clock_floor()
    (job,) = backend.insert([a_job()])
    assert int(job.id) >= floor


def test_a_held_key_yields_its_holder_with_its_logs_and_stores_nothing(
    backend: PostgresBackend,
) -> None:
    first = a_job(key="k")
    first.logs = [JobLog(1.0, "kept")]
    (held,) = backend.insert([first])
    again, fresh, twice = backend.insert([a_job(key="k"), a_job(key="other"), a_job(key="other")])
    assert again.deduplicated and again.id == held.id
    assert [log.message for log in again.logs] == ["kept"]
    assert not fresh.deduplicated
    assert twice.deduplicated and twice.id == fresh.id  # a key taken earlier in the batch
    assert backend.counts()["a"][JobState.WAITING] == 2
    stored = backend.get(held.id)
    assert stored is not None and [log.message for log in stored.logs] == ["kept"]


def test_a_given_clock_decides_the_state(postgres_url: str, schema: str) -> None:
    clock = [1000.0]
    backend = PostgresBackend(
        f"{postgres_url}?schema={schema}", BackendOptions(clock=lambda: clock[0])
    )
    try:
        due = Job(id="", name="a", data={}, created_at=1000.0, run_at=1000.0)
        later = Job(id="", name="a", data={}, created_at=1000.0, run_at=1000.5)
        stored = backend.insert([due, later])
        assert [job.state for job in stored] == [JobState.WAITING, JobState.DELAYED]
    finally:
        backend.close()


def test_a_large_batch_is_copied_with_its_logs_states_and_counts(
    backend: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [a_job(delay=3600 if n % 10 == 0 else 0.0) for n in range(COPY_ROWS * 2)]
    jobs[1].logs = [JobLog(1.0, "one"), JobLog(2.0, "two")]
    sent = Sent(monkeypatch)
    stored = backend.insert(jobs)
    assert any(text.startswith("COPY jobqueue_jobs") for text in sent.statements)
    assert not any("jobqueue_submit(" in text for text in sent.statements)
    keys = [int(job.id) for job in stored]
    assert keys == list(range(keys[0], keys[0] + len(jobs)))
    assert [job.state for job in stored[:2]] == [JobState.DELAYED, JobState.WAITING]
    read = backend.get(stored[1].id)
    assert read is not None and [log.message for log in read.logs] == ["one", "two"]
    assert read.data == {"n": 1} and read.state is JobState.WAITING
    counts = backend.counts()["a"]
    delayed = sum(1 for job in stored if job.state is JobState.DELAYED)
    assert delayed == len(range(0, len(jobs), 10))
    assert (counts[JobState.WAITING], counts[JobState.DELAYED]) == (len(jobs) - delayed, delayed)
    waiting = backend.scan(Selector(JobState.WAITING, "a"), 0, 3)
    assert [job.id for job in waiting] == [stored[1].id, stored[2].id, stored[3].id]


def test_a_large_batch_with_a_unique_key_goes_through_the_function(
    backend: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [a_job() for _ in range(COPY_ROWS)] + [a_job(key="k"), a_job(key="k")]
    sent = Sent(monkeypatch)
    stored = backend.insert(jobs)
    assert len(sent.statements) == 1 and "jobqueue_submit(" in sent.statements[0]
    assert stored[-1].deduplicated and stored[-1].id == stored[-2].id
