"""A claim over many worker names reads one cross-name order (issue 20 item 11), not a head
per name: its statements do not grow with the names, and it takes the same jobs in the same
order (priority, then seq) with pause and per-name caps as before."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue.backend import BackendOptions, WorkSpec
from jobqueue.backends.sqlite import SQLiteBackend
from jobqueue.engine import Engine
from jobqueue.job import Job

NAMES = tuple(f"n{i:04d}" for i in range(2000))


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Engine]:
    store = Engine(SQLiteBackend.from_url(f"sqlite:///{tmp_path / 'q.db'}", BackendOptions()))
    yield store
    store.close()


def _connection(backend: Engine) -> sqlite3.Connection:
    return backend.store._pool.get()  # this thread's connection: the one its calls run on


def _submit(backend: Engine, jobs: list[tuple[str, int]]) -> list[str]:
    stored = backend.submit_many([Job(id="", name=n, data=None, priority=p) for n, p in jobs])
    return [job.id for job in stored]


def test_a_claim_over_2000_names_runs_a_constant_number_of_statements(
    backend: Engine,
) -> None:
    _submit(backend, [(name, 0) for name in NAMES])
    _submit(backend, [("n1999", 5)])  # the best job belongs to the last name served
    statements: list[str] = []
    _connection(backend).set_trace_callback(statements.append)
    try:
        claim = backend.claim(WorkSpec(NAMES, 60.0))
    finally:
        _connection(backend).set_trace_callback(None)
    assert claim is not None and (claim.job.name, claim.job.priority) == ("n1999", 5)
    # A head per name was one statement per name (2,000 and more); now a page of the order.
    assert len(statements) < 30, len(statements)


def test_many_names_are_claimed_in_priority_then_submit_order(backend: Engine) -> None:
    names = NAMES[:50]
    jobs = [(names[i % 50], (i * 7) % 3) for i in range(300)]
    ids = _submit(backend, jobs)
    _submit(backend, [("unserved", 9)] * 5)
    # priority first, then the order they were submitted in
    expected = [ids[i] for i in sorted(range(300), key=lambda i: (-jobs[i][1], i))]
    got = [c.job.id for c in backend.claim_many(WorkSpec(names, 60.0), 120)]
    while (claim := backend.claim(WorkSpec(names, 60.0))) is not None:
        got.append(claim.job.id)
    assert got == expected


def test_pause_and_caps_hold_across_many_names(backend: Engine) -> None:
    names = NAMES[:10]
    _submit(backend, [(name, 1) for name in names for _ in range(4)])
    _submit(backend, [("n0009", 0)] * 3)
    backend.pause("n0000")
    caps = {name: 2 for name in names[1:9]}  # n0009 uncapped, n0000 paused
    claims = backend.claim_many(WorkSpec(names, 60.0, caps), 100)
    by_name: dict[str, int] = {}
    for claim in claims:
        by_name[claim.job.name] = by_name.get(claim.job.name, 0) + 1
    assert by_name == {**dict.fromkeys(names[1:9], 2), "n0009": 7}
    assert backend.claim(WorkSpec(names[:9], 60.0, caps)) is None  # capped or paused


def test_a_served_job_behind_many_unserved_ones_is_found(backend: Engine) -> None:
    from jobqueue.backends.sql.claims import SCAN_ROWS  # more than the order's bounded read

    _submit(backend, [(f"other{i}", 5) for i in range(SCAN_ROWS * 2)])
    (wanted,) = _submit(backend, [("n0003", 0)])
    claim = backend.claim(WorkSpec(NAMES[:5], 60.0))
    assert claim is not None and claim.job.id == wanted


def test_the_cross_name_read_walks_the_run_order_index_without_sorting(
    backend: Engine,
) -> None:
    _submit(backend, [(name, i % 3) for i, name in enumerate(NAMES)])
    conn = _connection(backend)
    conn.execute("ANALYZE")  # the plan holds with statistics too
    sql = backend.store._sql.WAITING_ORDER
    plan = " / ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", (16, 0)))
    assert "USING INDEX jobqueue_waiting_order" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
