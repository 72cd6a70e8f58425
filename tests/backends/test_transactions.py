"""Transactional submit and completion (issue 21) on real PostgreSQL and SQLite.

``submit_job(..., connection=conn)`` stores the job inside the caller's transaction: it exists
iff that transaction commits, no dispatcher sees it before, a rollback leaves nothing and
wakes nobody. ``with job.transaction() as conn:`` commits the handler's rows and the job's
completion together, or neither. Redis and memory refuse both, naming the alternative.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobqueue import JobQueue, JobState, hookimpl
from jobqueue.backends.sql.store import SQLStore
from jobqueue.errors import (
    InvalidArgumentError,
    JobStateError,
    LeaseLostError,
    NotSerializableError,
    TransactionsUnsupportedError,
)
from jobqueue.testing import ManualClock
from tests.backends.postgres_fixtures import drop_schema, new_schema, postgres_url

__all__ = ["postgres_url"]


@dataclass
class Database:
    """A queue's URL and how the application connects to the same database."""

    kind: str
    url: str
    connect: Callable[[], Any]  # a new DB-API connection, not in autocommit mode
    table: str  # the application's own table, (job text, n int)

    def effects(self) -> list[tuple[str, int]]:
        conn = self.connect()
        try:
            return [tuple(row) for row in conn.execute(f"SELECT job, n FROM {self.table}")]
        finally:
            conn.close()

    def queue(self, **options: Any) -> JobQueue:
        return JobQueue(self.url, load_entrypoints=False, **options)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    table = f"effects_{secrets.token_hex(4)}"
    if request.param == "sqlite":
        path = tmp_path / "jobs.db"
        database = Database("sqlite", f"sqlite:///{path}", lambda: sqlite3.connect(path), table)
        JobQueue(database.url, load_entrypoints=False).close()  # the file, with its schema
        with sqlite3.connect(path) as conn:
            conn.execute(f"CREATE TABLE {table} (job text, n int)")
        yield database
        return
    request.applymarker(pytest.mark.postgres)
    base = request.getfixturevalue("postgres_url")
    schema = new_schema()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{table} (job text, n int)")
    yield Database("postgres", f"{base}?schema={schema}", lambda: psycopg.connect(base), table)
    drop_schema(base, schema)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP TABLE public.{table}")


def store_of(queue: JobQueue) -> SQLStore:
    store = queue.backend.store
    assert isinstance(store, SQLStore)
    return store


def insert_effect(db: Database, conn: Any, job: str, n: int) -> None:
    mark = "?" if db.kind == "sqlite" else "%s"
    conn.execute(f"INSERT INTO {db.table} (job, n) VALUES ({mark}, {mark})", (job, n))


# -- transactional submit ----------------------------------------------------------------------


def test_a_job_submitted_in_a_transaction_exists_once_it_commits(db: Database) -> None:
    queue = db.queue()
    queue.add_worker("send", lambda job: job.data)
    conn = db.connect()
    try:
        insert_effect(db, conn, "order", 1)
        job = queue.submit_job("send", {"order": 1}, connection=conn)
        assert job.id and job.state is JobState.WAITING
        # Not committed: invisible to every other connection, dispatchers included.
        assert queue.get_job_by_id(job.id) is None
        assert queue.count_by_state()[JobState.WAITING] == 0
        conn.commit()
        assert queue.get_job_by_id(job.id) is not None
        assert queue.work(max_jobs=1) == 1
        done = queue.get_job_by_id(job.id)
        assert done is not None and done.state is JobState.COMPLETED
        assert done.result == {"order": 1}
        assert db.effects() == [("order", 1)]
    finally:
        conn.close()
        queue.close()


def test_a_rollback_leaves_no_job_and_wakes_nobody(db: Database) -> None:
    queue = db.queue()
    queue.add_worker("send", lambda job: None)
    store = store_of(queue)
    signal = store._signal
    if db.kind == "postgres":  # LISTENing: a wake-up sent now would be received
        hub = store._link.signal.wakeups
        assert hub is not None and hub.wait_listening(store._link._dialect.channel, 30)
    version = store._link.data_version()
    with signal.changed:
        woken = signal.work
    conn = db.connect()
    try:
        jobs = queue.submit_jobs("send", [1, 2, 3], connection=conn)
        insert_effect(db, conn, "x", 1)
        conn.rollback()
    finally:
        conn.close()
    assert all(queue.get_job_by_id(job.id) is None for job in jobs)
    assert db.effects() == []
    if db.kind == "sqlite":
        # Waiters of any process poll the file's data_version: a rollback leaves it as it was.
        assert store._link.data_version() == version
        with signal.changed:
            assert signal.work == woken
        queue.close()
        return
    # A committed submit after it: its wake-up comes through LISTEN, in commit order, so once
    # it has arrived a wake-up of the rolled-back submit would have arrived before it.
    other = db.connect()
    try:
        queue.submit_job("send", None, connection=other)
        other.commit()
    finally:
        other.close()
    with signal.changed:
        assert signal.changed.wait_for(lambda: signal.work > woken, 30)
        assert signal.work == woken + 1
    queue.close()


@pytest.mark.postgres
def test_a_dispatcher_claims_the_job_only_after_the_commit(postgres_url: str) -> None:
    """While the submitting transaction is open a claim finds nothing (and does not wait for
    it); after a rollback nothing either, after a commit the job."""
    schema = new_schema()
    queue = JobQueue(f"{postgres_url}?schema={schema}", load_entrypoints=False)
    try:
        queue.add_worker("send", lambda job: None)
        spec = queue.dispatcher().spec
        for commit in (False, True):
            conn = psycopg.connect(postgres_url)
            try:
                job = queue.submit_job("send", None, connection=conn)
                # Claims do not wait for the caller's transaction: they see no job in it.
                assert queue.backend.claim_many(spec, 5) == []
                conn.commit() if commit else conn.rollback()
                claimed = queue.backend.claim_many(spec, 5)
                assert [c.job.id for c in claimed] == ([job.id] if commit else [])
            finally:
                conn.close()
    finally:
        queue.close()
        drop_schema(postgres_url, schema)


def test_bad_input_stores_nothing_and_leaves_the_transaction_usable(db: Database) -> None:
    queue = db.queue()
    queue.add_worker("send", lambda job: None)
    conn = db.connect()
    try:
        insert_effect(db, conn, "kept", 1)
        with pytest.raises(NotSerializableError):
            queue.submit_jobs("send", [1, {"bad": object()}], connection=conn)
        conn.commit()
    finally:
        conn.close()
    assert db.effects() == [("kept", 1)]
    assert queue.count_by_state()[JobState.WAITING] == 0
    queue.close()


def test_a_connection_elsewhere_is_refused(db: Database, tmp_path: Path) -> None:
    queue = db.queue()
    queue.add_worker("send", lambda job: None)
    try:
        if db.kind == "sqlite":
            elsewhere = sqlite3.connect(tmp_path / "other.db")
            with pytest.raises(InvalidArgumentError, match="queue's file"):
                queue.submit_job("send", None, connection=elsewhere)
            elsewhere.close()
            auto = sqlite3.connect(db.url.removeprefix("sqlite:///"), isolation_level=None)
            with pytest.raises(InvalidArgumentError, match="autocommit"):
                queue.submit_job("send", None, connection=auto)
            auto.close()
        else:
            auto = db.connect()
            auto.autocommit = True
            with pytest.raises(InvalidArgumentError, match="autocommit"):
                queue.submit_job("send", None, connection=auto)
            auto.close()
            with pytest.raises(InvalidArgumentError, match="psycopg 3"):
                queue.submit_job("send", None, connection=sqlite3.connect(":memory:"))
        with pytest.raises(InvalidArgumentError):
            queue.submit_job("send", None, connection=object())
        assert queue.count_by_state()[JobState.WAITING] == 0
    finally:
        queue.close()


@pytest.mark.postgres
def test_a_connection_to_another_database_is_refused(postgres_url: str) -> None:
    """Another database of this test's own, holding a queue in a schema of the same name."""
    from tests.backends.postgres_fixtures import with_database

    schema, other = new_schema(), f"jobqueue_test_other_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{other}"')
    other_url = with_database(postgres_url, other)
    queue = JobQueue(f"{postgres_url}?schema={schema}", load_entrypoints=False)
    try:
        queue.add_worker("send", lambda job: None)
        JobQueue(f"{other_url}?schema={schema}", load_entrypoints=False).close()
        with psycopg.connect(other_url) as conn:
            with pytest.raises(InvalidArgumentError, match="not the queue's"):
                queue.submit_job("send", None, connection=conn)
            conn.rollback()
        with psycopg.connect(other_url) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
            conn.commit()
            with pytest.raises(InvalidArgumentError, match="without jobqueue's schema"):
                queue.submit_job("send", None, connection=conn)
    finally:
        queue.close()
        drop_schema(postgres_url, schema)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')


# -- SQLAlchemy and asyncio --------------------------------------------------------------------


def sqlalchemy_url(db: Database, *, driver: str = "psycopg") -> str:
    if db.kind == "sqlite":
        return db.url
    return db.url.split("?")[0].replace("postgresql://", f"postgresql+{driver}://", 1)


def test_sqlalchemy_connection_and_session(db: Database) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    queue = db.queue()
    queue.add_worker("send", lambda job: None)
    engine = create_engine(sqlalchemy_url(db))
    try:
        with engine.begin() as conn:
            conn.execute(text(f"INSERT INTO {db.table} (job, n) VALUES ('conn', 1)"))
            committed = queue.submit_job("send", 1, connection=conn)
        with engine.connect() as conn:
            conn.execute(text(f"INSERT INTO {db.table} (job, n) VALUES ('gone', 1)"))
            rolled_back = queue.submit_job("send", 2, connection=conn)
            conn.rollback()
        with Session(engine) as session:
            session.execute(text(f"INSERT INTO {db.table} (job, n) VALUES ('session', 1)"))
            in_session = queue.submit_jobs("send", [3, 4], connection=session)
            session.commit()
        assert queue.get_job_by_id(committed.id) is not None
        assert queue.get_job_by_id(rolled_back.id) is None
        assert all(queue.get_job_by_id(job.id) is not None for job in in_session)
        assert sorted(db.effects()) == [("conn", 1), ("session", 1)]
    finally:
        engine.dispose()
        queue.close()


@pytest.mark.postgres
def test_asyncio_psycopg_and_sqlalchemy(postgres_url: str) -> None:
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from jobqueue import AsyncJobQueue

    schema = new_schema()
    url = f"{postgres_url}?schema={schema}"
    queue = AsyncJobQueue(url, load_entrypoints=False)
    queue.queue.add_worker("send", lambda job: None)

    async def scenario() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            kept = await queue.submit_job("send", 1, connection=conn)
            await conn.commit()
            dropped = await queue.submit_jobs("send", [2, 3], connection=conn)
            await conn.rollback()
        engine = create_async_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            async with AsyncSession(engine) as session:
                in_session = await queue.submit_job("send", 4, connection=session)
                await session.execute(text("SELECT 1"))
                await session.commit()
            async with engine.begin() as aconn:
                in_conn = await queue.submit_job("send", 5, connection=aconn)
        finally:
            await engine.dispose()
        found = [await queue.get_job_by_id(job.id) for job in (kept, in_session, in_conn)]
        gone = [await queue.get_job_by_id(job.id) for job in dropped]
        return [found, gone]

    try:
        found, gone = asyncio.run(scenario())
        assert all(job is not None and job.state is JobState.WAITING for job in found)
        assert gone == [None, None]
        with pytest.raises(InvalidArgumentError, match="AsyncJobQueue"):

            async def sync_facade() -> None:
                async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
                    queue.queue.submit_job("send", 1, connection=conn)

            asyncio.run(sync_facade())
    finally:
        asyncio.run(queue.close())
        drop_schema(postgres_url, schema)


# -- transactional completion ------------------------------------------------------------------


def test_the_handlers_rows_and_its_completion_commit_together(db: Database) -> None:
    queue = db.queue()
    completed: list[str] = []

    @queue.worker("charge")
    def charge(job: Any) -> str:
        with job.transaction(result={"charged": job.data}) as conn:
            insert_effect(db, conn, job.id, job.data)
        return "ignored: the transaction recorded the outcome"

    queue.plugins.register(CompletedHook(completed))
    written: list[str] = []  # outcomes the dispatcher writes itself
    engine = queue.backend
    complete, finish_many = engine.complete, engine.finish_many
    engine.complete = lambda job_id, *a: (  # type: ignore[method-assign]
        written.append(job_id) or complete(job_id, *a)
    )
    engine.finish_many = lambda outcomes, *a: (  # type: ignore[method-assign]
        written.extend(o.job_id for o in outcomes) or finish_many(outcomes, *a)
    )
    job = queue.submit_job("charge", 7)
    assert queue.work(max_jobs=1) == 1
    done = queue.get_job_by_id(job.id)
    assert done is not None and done.state is JobState.COMPLETED
    assert done.result == {"charged": 7}
    assert len(done.history) == 1
    assert written == []  # recorded once, in the transaction: the dispatcher wrote nothing
    assert db.effects() == [(job.id, 7)]
    assert completed == [job.id]
    queue.close()


class CompletedHook:
    def __init__(self, into: list[str]) -> None:
        self.into = into

    @hookimpl
    def jobqueue_job_completed(self, job: Any) -> None:
        self.into.append(job.id)


def test_a_handler_raising_inside_the_block_leaves_neither(db: Database) -> None:
    queue = db.queue()

    @queue.worker("charge", attempts=1)
    def charge(job: Any) -> None:
        with job.transaction() as conn:
            insert_effect(db, conn, job.id, 1)
            raise RuntimeError("card declined")

    job = queue.submit_job("charge", None)
    queue.work(max_jobs=1)
    done = queue.get_job_by_id(job.id)
    assert done is not None and done.state is JobState.FAILED
    assert done.error is not None and "card declined" in done.error.message
    assert db.effects() == []
    queue.close()


def test_after_the_commit_the_job_stays_completed_whatever_the_handler_does(
    db: Database,
) -> None:
    queue = db.queue()
    completed: list[str] = []
    second: list[BaseException] = []

    @queue.worker("charge", attempts=3)
    def charge(job: Any) -> None:
        with job.transaction(result="paid") as conn:
            insert_effect(db, conn, job.id, 1)
        try:
            with job.transaction():
                pass
        except JobStateError as exc:  # the outcome is recorded once
            second.append(exc)
        raise RuntimeError("after the commit: changes nothing")

    queue.plugins.register(CompletedHook(completed))
    job = queue.submit_job("charge", None)
    assert queue.work(max_jobs=1) == 1
    done = queue.get_job_by_id(job.id)
    assert done is not None and done.state is JobState.COMPLETED and done.result == "paid"
    assert done.attempts_made == 1 and len(second) == 1
    assert completed == [job.id]
    assert db.effects() == [(job.id, 1)]
    queue.close()


def test_a_lost_lease_rolls_the_effect_back_and_raises(db: Database) -> None:
    clock = ManualClock()
    queue = db.queue(clock=clock, lease_seconds=10)
    other = queue.backend
    raised: list[BaseException] = []

    @queue.worker("charge", attempts=1)
    def charge(job: Any) -> None:
        clock.advance(11)  # the lease expires; another process recovers and takes the job
        other.maintain()
        stolen = other.claim(queue.dispatcher().spec)
        assert stolen is not None and stolen.job.id == job.id
        try:
            with job.transaction() as conn:
                insert_effect(db, conn, job.id, 1)
        except LeaseLostError as exc:
            raised.append(exc)
            raise
        other.complete(stolen.job.id, stolen.token, "never", None)

    job = queue.submit_job("charge", None)
    queue.work(max_jobs=1)
    assert [type(exc) for exc in raised] == [LeaseLostError]
    assert db.effects() == []
    held = queue.get_job_by_id(job.id)
    assert held is not None and held.state is JobState.ACTIVE  # the new holder's, untouched
    queue.close()


# -- backends that cannot --------------------------------------------------------------------


@pytest.mark.parametrize("url", ["memory://", "redis"])
def test_redis_and_memory_refuse_naming_the_alternative(url: str, request: Any) -> None:
    if url == "redis":
        request.applymarker(pytest.mark.redis)
        from tests.backends.redis_fixtures import delete_namespace, new_namespace

        base = request.getfixturevalue("redis_url")
        namespace = new_namespace()
        url = f"{base}?namespace={namespace}"
    queue = JobQueue(url, load_entrypoints=False)
    outcome: list[BaseException] = []

    @queue.worker("charge", attempts=1)
    def charge(job: Any) -> None:
        try:
            with job.transaction():
                pass
        except TransactionsUnsupportedError as exc:
            outcome.append(exc)

    try:
        with pytest.raises(TransactionsUnsupportedError, match="after your transaction commits"):
            queue.submit_job("charge", None, connection=object())
        with pytest.raises(TransactionsUnsupportedError):
            queue.submit_jobs("charge", [1], connection=object())
        assert queue.count_by_state()[JobState.WAITING] == 0
        queue.submit_job("charge", None)
        queue.work(max_jobs=1)
        assert len(outcome) == 1 and "submit the job after" in str(outcome[0])
    finally:
        queue.close()
        if url.startswith("redis"):
            import redis

            delete_namespace(redis.Redis.from_url(base), namespace)
