"""The PostgreSQL schema: created once by many processes starting at once, a newer one refused
untouched, tables of our names that are not ours refused, and ``?schema=`` keeping queues
apart in one database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from jobqueue.backend import BackendOptions
from jobqueue.backends.postgres import SCHEMA_VERSION, PostgresBackend
from jobqueue.errors import SchemaVersionError
from jobqueue.job import Job, JobState
from jobqueue.testing import ManualClock
from tests.backends.postgres_fixtures import drop_schema, new_schema, postgres_url

__all__ = ["postgres_url"]

pytestmark = pytest.mark.postgres

WORKER = Path(__file__).with_name("postgres_process_worker.py")


@pytest.fixture
def schema(postgres_url: str) -> object:
    name = new_schema()
    yield name
    drop_schema(postgres_url, name)


def a_job(name: str = "a") -> Job:
    return Job(id="", name=name, data={"n": 1}, created_at=1.0, run_at=1.0)


def tables_of(url: str, schema: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,)
        ).fetchall()
    return [row[0] for row in rows]


def test_many_processes_starting_on_an_empty_database_create_the_schema_once(
    postgres_url: str, schema: str
) -> None:
    url = f"{postgres_url}?schema={schema}"
    children = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "open", url, "0.3"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:  # released together: they race to create the schema
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = []
        for child in children:
            out, _ = child.communicate(timeout=120)
            assert child.returncode == 0, out
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert sum(report["created"] for report in reports) == 1
    assert {report["version"] for report in reports} == {SCHEMA_VERSION}
    assert "jobqueue_jobs" in tables_of(postgres_url, schema)


def test_a_newer_schema_is_refused_untouched(postgres_url: str, schema: str) -> None:
    url = f"{postgres_url}?schema={schema}"
    backend = PostgresBackend(url, BackendOptions(clock=ManualClock()))
    (job,) = backend.insert([a_job()])
    backend.close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute(
            f"UPDATE {schema}.jobqueue_meta SET value = %s WHERE key = 'schema_version'",
            (SCHEMA_VERSION + 1,),
        )
    before = tables_of(postgres_url, schema)
    with pytest.raises(SchemaVersionError, match="upgrade jobqueue"):
        PostgresBackend(url)
    assert tables_of(postgres_url, schema) == before
    with psycopg.connect(postgres_url) as conn:
        version = conn.execute(
            f"SELECT value FROM {schema}.jobqueue_meta WHERE key = 'schema_version'"
        ).fetchone()
        ids = conn.execute(f"SELECT id FROM {schema}.jobqueue_jobs").fetchall()
    assert version == (SCHEMA_VERSION + 1,)
    assert ids == [(int(job.id),)]


def test_tables_named_like_ours_without_our_meta_table_are_refused(
    postgres_url: str, schema: str
) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.jobqueue_jobs (id int)")
    with pytest.raises(SchemaVersionError, match="refusing to touch"):
        PostgresBackend(f"{postgres_url}?schema={schema}")
    assert tables_of(postgres_url, schema) == ["jobqueue_jobs"]


def test_other_tables_in_the_schema_are_left_beside_ours(postgres_url: str, schema: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.orders (id int)")
    PostgresBackend(f"{postgres_url}?schema={schema}").close()
    tables = tables_of(postgres_url, schema)
    assert "orders" in tables and "jobqueue_jobs" in tables


def test_schemas_keep_queues_apart_in_one_database(postgres_url: str) -> None:
    first, second = new_schema(), new_schema()
    clock = BackendOptions(clock=ManualClock())
    try:
        one = PostgresBackend(f"{postgres_url}?schema={first}", clock)
        two = PostgresBackend(f"{postgres_url}?schema={second}", clock)
        try:
            (job,) = one.insert([a_job()])
            assert two.get(job.id) is None
            assert two.counts() == {}
            assert one.counts()["a"][JobState.WAITING] == 1
            assert [row for row in tables_of(postgres_url, first) if row == "jobqueue_jobs"]
            assert "jobqueue_jobs" not in tables_of(postgres_url, "public")
        finally:
            one.close()
            two.close()
    finally:
        drop_schema(postgres_url, first)
        drop_schema(postgres_url, second)


def test_the_schema_defaults_to_jobqueue_or_the_namespace(postgres_url: str) -> None:
    from jobqueue.backends.postgres.url import parse

    assert parse(postgres_url).schema == "jobqueue"
    assert parse(postgres_url, schema="app_one").schema == "app_one"
    assert parse(f"{postgres_url}?schema=mine", schema="app_one").schema == "mine"


def test_version_1_counts_carry_over_to_the_count_deltas_of_version_2(
    postgres_url: str, schema: str
) -> None:
    from jobqueue.backends.postgres.connections import open_schema
    from jobqueue.backends.postgres.dialect import PostgresDialect
    from jobqueue.backends.postgres.url import parse
    from jobqueue.backends.sql.migrate import Layout
    from jobqueue.backends.sql.rows import job_to_row
    from jobqueue.backends.sql.statements import Statements

    url = f"{postgres_url}?schema={schema}"
    old = PostgresDialect(schema)
    old.layout = Layout(old.layout.base, [])  # version 1 only: its row-level count triggers
    open_schema(parse(url), old, None)
    insert = Statements(placeholder="%s").INSERT_JOB
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        for n, (name, state) in enumerate([("a", "waiting"), ("a", "waiting"), ("b", "failed")]):
            row = job_to_row(a_job(name), 0, 0)
            conn.execute(insert, (n + 1, name, state, row[3], n + 1, *row[5:]))
    backend = PostgresBackend(url)  # migrates to the current version
    try:
        counts = backend.counts()
        assert counts["a"][JobState.WAITING] == 2 and counts["b"][JobState.FAILED] == 1
        backend.insert([a_job("b")])
        assert backend.counts()["b"][JobState.WAITING] == 1
        assert tables_of(postgres_url, schema).count("jobqueue_name_counts") == 0
    finally:
        backend.close()
