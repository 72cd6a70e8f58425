"""Flows on the SQL family beyond the shared contract (``testing.contract.flows``): what only
these stores have -- PostgreSQL's fast paths (``jobqueue_submit``, ``COPY``,
``jobqueue_apply_held``) that a flow must not take or must see, a flow submitted in the
caller's transaction, and schemas written before flows upgrading to read their jobs with no
flow."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from jobqueue.backend import BackendOptions
from jobqueue.backends.postgres import PostgresBackend, submit
from jobqueue.backends.sql.store import SQLStore
from jobqueue.backends.sqlite import SCHEMA_VERSION, SQLiteBackend
from jobqueue.changes import Change, Delivery, Held, InState, Selector
from jobqueue.dependency import Dependency
from jobqueue.job import Job, JobState
from jobqueue.testing import ManualClock
from jobqueue.values import WorkSpec
from tests.backends.postgres_fixtures import drop_schema, new_schema, postgres_url

__all__ = ["postgres_url"]

FIXTURES = Path(__file__).parent / "fixtures"
_BLOCKED = frozenset({JobState.BLOCKED})
_COMPLETED = frozenset({JobState.COMPLETED})


def a_job(name: str = "a", **fields: object) -> Job:
    return Job(id="", name=name, data={"n": 1}, created_at=1.0, run_at=1.0, **fields)  # type: ignore[arg-type]


def root_and_dependents(count: int, name: str = "a") -> list[Job]:
    """A flow as ``submit_flow`` hands it to a store: job 0, and ``count`` jobs waiting for it
    (both directions of every edge, as ``"@k"`` references)."""
    root = a_job(
        name, flow_id="@0", dependents=tuple(Dependency(f"@{k}") for k in range(1, count + 1))
    )
    return [root] + [
        a_job(name, flow_id="@0", depends_on=(Dependency("@0"),)) for _ in range(count)
    ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    options = BackendOptions(clock=ManualClock())
    if request.param == "sqlite":
        backend: SQLStore = SQLiteBackend(str(tmp_path / "jobs.db"), options)
        yield backend
        backend.close()
        return
    url = request.getfixturevalue("postgres_url")
    schema = new_schema()
    backend = PostgresBackend(f"{url}?schema={schema}", options)
    try:
        yield backend
    finally:
        backend.close()
        drop_schema(url, schema)


def test_a_blocked_job_holds_its_unique_key_for_a_later_submit(store: SQLStore) -> None:
    flow = root_and_dependents(1)
    flow[1] = a_job(flow_id="@0", depends_on=(Dependency("@0"),), unique_key="k")
    root, blocked = store.insert(flow)
    assert blocked.state is JobState.BLOCKED and blocked.unique_key == "k"
    # One job with a key: PostgreSQL's jobqueue_submit, which must see a blocked holder.
    (again,) = store.insert([a_job(unique_key="k")])
    assert again.deduplicated and again.id == blocked.id
    assert again.state is JobState.BLOCKED and again.depends_on == (Dependency(root.id),)


def test_a_flow_s_job_whose_key_an_earlier_one_of_it_took_is_that_job(store: SQLStore) -> None:
    jobs = root_and_dependents(2)
    jobs[0] = a_job(flow_id="@0", dependents=jobs[0].dependents, unique_key="k")
    jobs[2] = a_job(flow_id="@0", depends_on=(Dependency("@0"),), unique_key="k")
    root, dependent, again = store.insert(jobs)
    assert again.deduplicated and again.id == root.id and again.flow_id == root.id
    assert root.dependents == (Dependency(dependent.id), Dependency(root.id))
    assert store.counts()["a"] == {
        **dict.fromkeys(JobState, 0),
        JobState.WAITING: 1,
        JobState.BLOCKED: 1,
    }


def test_a_large_flow_is_stored_in_one_step_with_its_references(store: SQLStore) -> None:
    jobs = root_and_dependents(99)
    assert len(jobs) >= submit.COPY_ROWS  # no COPY on PostgreSQL: it translates nothing
    stored = store.insert(jobs)
    root = stored[0]
    assert root.state is JobState.WAITING and root.flow_id == root.id
    assert [edge.job_id for edge in root.dependents] == [job.id for job in stored[1:]]
    listed = store.scan(Selector(JobState.BLOCKED), 0, 200)
    assert [job.id for job in listed] == [job.id for job in stored[1:]]  # in submit order
    assert all(job.depends_on == (Dependency(root.id),) for job in listed)
    assert all(job.flow_id == root.id for job in listed)
    assert store.counts()["a"][JobState.BLOCKED] == 99
    assert store.get(root.id) == root


def test_a_dependent_claimed_after_its_delivery_reads_the_outcome(store: SQLStore) -> None:
    root, dependent = store.insert(root_and_dependents(1))
    spec = WorkSpec(names=("a",))
    (claim,) = store.claim_many(spec, 5)  # the blocked one is never claimed
    assert claim.job.id == root.id and claim.job.dependents == (Dependency(dependent.id),)
    outcome = {"state": "completed", "result": 7}
    done = Change(root.id, Held(claim.token), JobState.COMPLETED, set={"result": 7})
    delivered = Change(
        dependent.id,
        InState(_BLOCKED),
        JobState.WAITING,
        deliver=Delivery(root.id, _COMPLETED, outcome),
    )
    conflicts, _ = store.apply([done, delivered])
    assert conflicts == [None, None]
    # On PostgreSQL a claim alone goes through jobqueue_apply_held: the flow columns too.
    (claimed,) = store.claim_many(spec, 5)
    assert claimed.job.id == dependent.id
    assert claimed.job.dependency_outcomes == {root.id: outcome}
    assert claimed.job.dependency_results() == {root.id: 7}
    assert claimed.job.depends_on == (Dependency(root.id),) and claimed.job.flow_id == root.id


def test_a_plain_job_stores_no_flow_columns(store: SQLStore) -> None:
    (job,) = store.insert([a_job()])
    read = store.get(job.id)
    assert read is not None
    assert (read.flow_id, read.depends_on, read.dependents, read.dependency_outcomes) == (
        None,
        (),
        (),
        {},
    )


# -- PostgreSQL: a flow in the caller's transaction -----------------------------------------------


@pytest.mark.postgres
def test_a_flow_submitted_in_the_caller_s_transaction_commits_with_it(postgres_url: str) -> None:
    schema = new_schema()
    backend = PostgresBackend(f"{postgres_url}?schema={schema}")
    try:
        with psycopg.connect(postgres_url) as conn:
            before = conn.execute("SHOW search_path").fetchone()
            with conn.transaction():
                root, dependent = backend.insert_in(conn, root_and_dependents(1))
                assert conn.execute("SHOW search_path").fetchone() == before
                assert backend.get(root.id) is None  # not committed yet
            with conn.transaction(force_rollback=True):
                backend.insert_in(conn, root_and_dependents(1, name="gone"))
        stored = backend.get(dependent.id)
        assert stored is not None and stored.state is JobState.BLOCKED
        assert stored.depends_on == (Dependency(root.id),) and stored.flow_id == root.id
        assert "gone" not in backend.counts()
    finally:
        backend.close()
        drop_schema(postgres_url, schema)


def test_a_flow_submitted_in_the_caller_s_sqlite_transaction_commits_with_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    backend = SQLiteBackend(str(path), BackendOptions(clock=ManualClock()))
    conn = sqlite3.connect(path)
    try:
        root, dependent = backend.insert_in(conn, root_and_dependents(1))
        conn.commit()
        backend.insert_in(conn, root_and_dependents(1, name="gone"))
        conn.rollback()
        stored = backend.get(dependent.id)
        assert stored is not None and stored.state is JobState.BLOCKED
        assert stored.depends_on == (Dependency(root.id),) and stored.flow_id == root.id
        assert "gone" not in backend.counts()
    finally:
        conn.close()
        backend.close()


# -- schemas from before flows ----------------------------------------------------------------


def test_a_version_9_sqlite_file_upgrades_and_reads_its_jobs_with_no_flow(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    shutil.copyfile(FIXTURES / "sqlite-v9.db", path)
    with sqlite3.connect(path) as conn:
        ids = [str(row[0]) for row in conn.execute("SELECT id FROM jobqueue_jobs ORDER BY id")]
    backend = SQLiteBackend(str(path), BackendOptions(clock=ManualClock()))
    try:
        jobs = [backend.get(job_id) for job_id in ids]
        assert ids and all(job is not None for job in jobs)
        for job in jobs:
            assert job is not None
            assert (job.flow_id, job.depends_on, job.dependents, job.dependency_outcomes) == (
                None,
                (),
                (),
                {},
            )
        _, dependent = backend.insert(root_and_dependents(1, name="flow"))
        assert backend.counts()["flow"][JobState.BLOCKED] == 1
        assert [job.id for job in backend.scan(Selector(JobState.BLOCKED), 0, 5)] == [dependent.id]
    finally:
        backend.close()
    with sqlite3.connect(path) as conn:
        (version,) = conn.execute(
            "SELECT value FROM jobqueue_meta WHERE key = 'schema_version'"
        ).fetchone()
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM jobqueue_jobs WHERE state = 'blocked' ORDER BY seq"
        ).fetchall()
    assert version == SCHEMA_VERSION == 10
    assert any("jobqueue_blocked" in str(row) for row in plan)


@pytest.mark.postgres
def test_a_version_4_postgres_schema_upgrades_and_reads_its_jobs_with_no_flow(
    postgres_url: str,
) -> None:
    from jobqueue.backends.postgres.connections import open_schema
    from jobqueue.backends.postgres.dialect import SCHEMA_VERSION as PG_VERSION
    from jobqueue.backends.postgres.dialect import PostgresDialect
    from jobqueue.backends.postgres.submit import SubmitCall
    from jobqueue.backends.postgres.url import parse
    from jobqueue.backends.sql.migrate import Layout

    schema = new_schema()
    url = f"{postgres_url}?schema={schema}"
    old = PostgresDialect(schema)
    old.layout = Layout(old.layout.base, [m for m in old.layout.migrations if m.version <= 4])
    open_schema(parse(url), old, None)
    # Jobs written by version 4's own submit function, which knew no flow columns.
    call = SubmitCall(schema, old.quoted)
    jobs = [a_job(), a_job(unique_key="u")]
    prepared = call.prepare(jobs, 2.0, server_clock=False)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        answer = conn.execute(  # without the holder's columns: version 4's rows had fewer
            f"SELECT r.n, r.last_id, r.first_seq, r.server_now FROM {old.quoted}."
            "jobqueue_submit(%s, %s, %s, %s, %s::json, %s::json) AS r",
            prepared.params,
        ).fetchall()
        (version,) = conn.execute(
            f"SELECT value FROM {schema}.jobqueue_meta WHERE key = 'schema_version'"
        ).fetchone()
    assert version == 4
    old_ids = [job.id for job in call.stored(jobs, prepared, answer)[0]]
    try:
        backend = PostgresBackend(url, BackendOptions(clock=ManualClock()))  # migrates
        try:
            for job_id in old_ids:
                job = backend.get(job_id)
                assert job is not None and job.state is JobState.WAITING
                assert (job.flow_id, job.depends_on, job.dependents, job.dependency_outcomes) == (
                    None,
                    (),
                    (),
                    {},
                )
            backend.insert(root_and_dependents(1, name="flow"))
            assert backend.counts()["flow"][JobState.BLOCKED] == 1
            (claim,) = backend.claim_many(WorkSpec(names=("a",)), 1)  # jobqueue_apply_held
            assert claim.job.id == old_ids[0] and claim.job.dependency_outcomes == {}
        finally:
            backend.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            (version,) = conn.execute(
                f"SELECT value FROM {schema}.jobqueue_meta WHERE key = 'schema_version'"
            ).fetchone()
        assert version == PG_VERSION == 5
    finally:
        drop_schema(postgres_url, schema)


@pytest.mark.postgres
def test_a_delivery_goes_the_long_way_and_the_dependent_s_claim_the_one_step(
    postgres_url: str,
) -> None:
    from tests.backends.test_postgres_one_step import statements

    schema = new_schema()
    backend = PostgresBackend(f"{postgres_url}?schema={schema}&listen=false")
    assert backend.claim_cursor is not None
    backend.claim_cursor.slow_scan = float("inf")  # no seeking way: one statement a claim
    try:
        root, dependent = backend.insert(root_and_dependents(1))
        spec = WorkSpec(names=("a",))
        (claim,) = backend.claim_many(spec, 1)
        outcome = {"state": "completed", "result": None}
        changes = [
            Change(root.id, Held(claim.token), JobState.COMPLETED, set={"result": None}),
            Change(
                dependent.id,
                InState(_BLOCKED),
                JobState.WAITING,
                deliver=Delivery(root.id, _COMPLETED, outcome),
            ),
        ]
        with statements() as sent:
            assert backend.apply(changes)[0] == [None, None]
        assert not any("jobqueue_apply_held" in s for s in sent)
        with statements() as sent:
            (claimed,) = backend.claim_many(spec, 1)
        assert len(sent) == 1 and "jobqueue_apply_held" in sent[0]
        assert claimed.job.id == dependent.id and claimed.job.dependency_outcomes == {
            root.id: outcome
        }
    finally:
        backend.close()
        drop_schema(postgres_url, schema)


@pytest.mark.postgres
def test_the_asyncio_twin_stores_a_flow_through_the_store_s_transaction(
    postgres_url: str,
) -> None:
    import asyncio

    from jobqueue.backends.postgres.aio import AsyncPostgresBackend

    schema = new_schema()
    backend = PostgresBackend(f"{postgres_url}?schema={schema}")
    twin = AsyncPostgresBackend(backend)

    async def submit_and_close() -> list[Job]:
        try:
            return await twin.submit_many(root_and_dependents(1))
        finally:
            await twin.close()

    try:
        root, dependent = asyncio.run(submit_and_close())
        stored = backend.get(dependent.id)
        assert stored is not None and stored.state is JobState.BLOCKED
        assert stored.depends_on == (Dependency(root.id),)
    finally:
        backend.close()
        drop_schema(postgres_url, schema)
