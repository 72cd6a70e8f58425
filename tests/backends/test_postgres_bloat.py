"""No bloat spiral on PostgreSQL (issue 21): the jobs table's settings as docs/postgresql.md
shows them, and retention that removes a backlog of finished jobs in bounded batches -- one
short transaction of at most ``MAINTENANCE_BATCH`` deletions per maintenance pass, oldest
first -- rather than in one long transaction."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from jobqueue.backend import BackendOptions
from jobqueue.backends.postgres import PostgresBackend
from jobqueue.backends.sql.transitions import MAINTENANCE_BATCH
from jobqueue.job import JobState
from jobqueue.values import Retention
from tests.backends.postgres_fixtures import drop_schema, new_schema, postgres_url

__all__ = ["postgres_url"]

pytestmark = pytest.mark.postgres

KEEP = 100
BACKLOG = 2 * MAINTENANCE_BATCH + 1900 + KEEP


@pytest.fixture
def schema(postgres_url: str) -> Iterator[str]:
    name = new_schema()
    yield name
    drop_schema(postgres_url, name)


def reloptions(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> dict[str, set[str]]:
    rows = conn.execute(
        "SELECT c.relname, c.reloptions FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' AND c.reloptions IS NOT NULL",
        (schema,),
    ).fetchall()
    return {str(name): set(options) for name, options in rows}


def test_the_tables_carry_the_documented_settings(postgres_url: str, schema: str) -> None:
    PostgresBackend(f"{postgres_url}?schema={schema}").close()
    with psycopg.connect(postgres_url) as conn:
        found = reloptions(conn, schema)
    assert found["jobqueue_jobs"] == {
        "fillfactor=85",
        "autovacuum_vacuum_scale_factor=0.01",
        "autovacuum_vacuum_threshold=1000",
        "autovacuum_vacuum_insert_scale_factor=0.05",
        "autovacuum_analyze_scale_factor=0.02",
        "autovacuum_vacuum_cost_delay=0",
    }
    assert found["jobqueue_count_deltas"] == {
        "autovacuum_vacuum_threshold=1000",
        "autovacuum_vacuum_scale_factor=0.05",
        "autovacuum_vacuum_cost_delay=0",
    }
    assert "jobqueue_counts" not in found and "jobqueue_name_counts" not in found  # 0002
    assert found["jobqueue_dispatchers"] == {"fillfactor=70"}
    assert found["jobqueue_outcomes"] == {"fillfactor=50"}


def test_retention_removes_a_backlog_in_bounded_batches_oldest_first(
    postgres_url: str, schema: str
) -> None:
    retention = Retention(completed_seconds=None, completed_count=KEEP)
    backend = PostgresBackend(
        f"{postgres_url}?schema={schema}", BackendOptions(retention=retention)
    )
    try:
        now = time.time()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            # A backlog of finished jobs, written directly (the count trigger keeps counting);
            # seq is the order retention removes them in.
            conn.execute(
                f'INSERT INTO "{schema}".jobqueue_jobs (id, name, state, priority, seq, run_at, '
                "attempts, attempts_made, stalls, created_at, finished_at, progress, backoff, "
                "data) SELECT 1000000 + g, 'old', 'completed', 0, g, %s, 1, 1, 0, %s, %s, 100, "
                "'{}', 'null' FROM generate_series(1, %s) AS g",
                (now, now, now, BACKLOG),
            )
        assert backend.counts()["old"][JobState.COMPLETED] == BACKLOG
        removed = []
        while not removed or removed[-1]:
            removed.append(backend.housekeep())  # one transaction each
        assert removed == [MAINTENANCE_BATCH, MAINTENANCE_BATCH, 1900, 0]
        assert backend.counts()["old"][JobState.COMPLETED] == KEEP
        with psycopg.connect(postgres_url) as conn:
            rows = conn.execute(f'SELECT min(seq), max(seq) FROM "{schema}".jobqueue_jobs')
            assert rows.fetchone() == (BACKLOG - KEEP + 1, BACKLOG)  # the newest kept
    finally:
        backend.close()
