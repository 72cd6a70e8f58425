"""Complete-and-claim-next in one round trip on PostgreSQL (``jobqueue_apply_held``,
migration 4): one statement for a lease holder's outcome and the next claim, the same answers
as the long way, and what the store's Python did that the function now does (attempt history
bounded, an unreadable history dropped, waiters woken)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from jobqueue import lifecycle
from jobqueue.backend import BackendOptions, WorkSpec
from jobqueue.backends.postgres import PostgresBackend
from jobqueue.backends.postgres.one_step import ONE_STEP_NAMES
from jobqueue.changes import ClaimAsk, InState
from jobqueue.job import MAX_HISTORY, AttemptOutcome, Job, JobError, JobState
from tests.backends.postgres_fixtures import postgres_url, schema

__all__ = ["postgres_url", "schema"]

pytestmark = pytest.mark.postgres


@pytest.fixture
def backend(postgres_url: str, schema: str) -> Iterator[PostgresBackend]:
    store = PostgresBackend(f"{postgres_url}?schema={schema}&listen=false", BackendOptions())
    # These tests count statements: a busy machine's slow claims must not send a name to the
    # claim cursor's seeking way (several statements), which its own tests cover.
    assert store.claim_cursor is not None
    store.claim_cursor.slow_scan = float("inf")
    yield store
    store.close()


def a_job(name: str = "a", attempts: int = 1) -> Job:
    now = time.time()
    return Job(id="", name=name, data={"n": 1}, created_at=now, run_at=now, attempts=attempts)


@contextmanager
def statements() -> Iterator[list[str]]:
    """The statements psycopg sends meanwhile from this thread (the wake-ups' sender thread
    sends its NOTIFYs on its own)."""
    sent: list[str] = []
    execute = psycopg.Cursor.execute
    me = threading.get_ident()

    def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == me:
            sent.append(str(query))
        return execute(self, query, *args, **kwargs)

    psycopg.Cursor.execute = counted  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]


def test_complete_and_claim_next_is_one_statement(backend: PostgresBackend) -> None:
    first, second = backend.insert([a_job(), a_job()])
    spec = WorkSpec(("a",), dispatcher="d1")
    (claim,) = backend.claim_many(spec, 1)
    assert claim.job.id == first.id
    with statements() as sent:
        change = lifecycle.on_complete(claim.job.id, claim.token, {"ok": True})
        conflicts, claims = backend.apply([change], ClaimAsk(spec, 1, unless_conflict=True))
    assert len(sent) == 1 and "jobqueue_apply_held" in sent[0]
    assert conflicts == [None]
    assert [c.job.id for c in claims] == [second.id]
    assert claims[0].job.state is JobState.ACTIVE and claims[0].job.dispatcher == "d1"
    done = backend.get(first.id)
    assert done is not None and done.state is JobState.COMPLETED and done.result == {"ok": True}
    (record,) = done.history
    assert (record.number, record.dispatcher, record.outcome) == (
        1,
        "d1",
        AttemptOutcome.COMPLETED,
    )
    assert record.finished_at == done.finished_at and record.started_at == claim.job.started_at


def test_a_repeat_is_answered_as_one_and_hands_out_no_next_job(
    backend: PostgresBackend,
) -> None:
    backend.insert([a_job(), a_job()])
    spec = WorkSpec(("a",))
    (claim,) = backend.claim_many(spec, 1)
    change = lifecycle.on_complete(claim.job.id, claim.token, None)
    assert backend.apply([change])[0] == [None]
    (conflict,), claims = backend.apply([change], ClaimAsk(spec, 1, unless_conflict=True))
    assert claims == []
    assert conflict is not None and conflict.state is JobState.COMPLETED
    assert conflict.ended_by == "complete" and not conflict.held
    # a lost lease's token, and a job that does not exist: no such job
    (missing,), _ = backend.apply([lifecycle.on_complete("999999", "nope", None)])
    assert missing is not None and missing.state is None


def test_history_keeps_the_last_records_and_drops_an_unreadable_one(
    backend: PostgresBackend, postgres_url: str, schema: str
) -> None:
    (job,) = backend.insert([a_job(attempts=MAX_HISTORY + 5)])
    spec = WorkSpec(("a",))
    error = JobError("ValueError", "bad", "")
    for _ in range(MAX_HISTORY + 2):  # each attempt fails and is retried at once
        (claim,) = backend.claim_many(spec, 1)
        now = time.time()
        change = lifecycle.on_fail(claim.job, claim.token, error, now - 1, now)
        assert backend.apply([change])[0] == [None]
    stored = backend.get(job.id)
    assert stored is not None and stored.state is JobState.WAITING
    assert [r.number for r in stored.history] == list(range(3, MAX_HISTORY + 3))
    assert {r.outcome for r in stored.history} == {AttemptOutcome.RETRIED}
    assert stored.history[-1].error == error

    # the claimed job's history unreadable: dropped, this attempt's record kept
    (claim,) = backend.claim_many(spec, 1)
    spoil(postgres_url, schema, job.id)
    assert backend.apply([lifecycle.on_complete(claim.job.id, claim.token, 1)])[0] == [None]
    stored = backend.get(job.id)
    assert stored is not None and [r.number for r in stored.history] == [MAX_HISTORY + 3]


def test_a_claimed_record_that_does_not_decode_fails_and_another_is_claimed(
    backend: PostgresBackend, postgres_url: str, schema: str
) -> None:
    spoilt, good = backend.insert([a_job(), a_job()])
    spoil(postgres_url, schema, spoilt.id)
    claims = backend.claim_many(WorkSpec(("a",)), 1)
    assert [c.job.id for c in claims] == [good.id]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT state, error FROM {schema}.jobqueue_jobs WHERE id = %s", (int(spoilt.id),)
        ).fetchone()
    assert row is not None and row[0] == "failed" and "CorruptJobError" in row[1]


def spoil(url: str, schema: str, job_id: str) -> None:
    """Make the job's attempt history unreadable JSON."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"UPDATE {schema}.jobqueue_jobs SET history = '[{{oops' WHERE id = %s", (int(job_id),)
        )


def test_a_claim_for_a_paused_or_capped_name_takes_the_other_names_jobs(
    backend: PostgresBackend,
) -> None:
    a1, _, c1, _ = backend.insert([a_job("a"), a_job("b"), a_job("c"), a_job("c")])
    backend.set_paused("worker", "a", True)
    spec = WorkSpec(("a", "b", "c"), max_active={"b": 0, "c": 1})
    with statements() as sent:
        claims = backend.claim_many(spec, 5)
    assert len(sent) == 1
    assert [c.job.id for c in claims] == [c1.id]  # a paused, b closed, c capped at one
    backend.set_paused("worker", "a", False)
    assert [c.job.id for c in backend.claim_many(spec, 5)] == [a1.id]


def test_changes_guarded_by_state_still_go_the_long_way(backend: PostgresBackend) -> None:
    (job,) = backend.insert([a_job()])
    stored = backend.get(job.id)
    assert stored is not None
    change = lifecycle.on_cancel(stored)
    assert change is not None and isinstance(change.guard, InState)
    with statements() as sent:
        assert backend.apply([change])[0] == [None]
    assert len(sent) > 1 and not any("jobqueue_apply_held" in s for s in sent)


def test_a_claim_for_many_names_goes_the_long_way_in_run_order(backend: PostgresBackend) -> None:
    names = tuple(f"n{i}" for i in range(ONE_STEP_NAMES + 1))
    jobs = backend.insert([a_job(name) for name in reversed(names)])
    with statements() as sent:
        claims = backend.claim_many(WorkSpec(names), 2)
    assert not any("jobqueue_apply_held" in s for s in sent)
    assert [c.job.id for c in claims] == [jobs[0].id, jobs[1].id]
