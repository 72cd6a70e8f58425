"""Values of the wrong SQLite type written into the jobs table by something other than jobqueue
(issue 18, item 4): migration 9 refuses them at the schema, fails the live jobs that already
carry one as corrupt (the rest run), and the claim survives one written with the checks off."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobqueue import ids
from jobqueue.backend import BackendOptions, WorkSpec
from jobqueue.backends.sqlite import SCHEMA_VERSION, SQLiteBackend, dialect
from jobqueue.backends.sqlite.dialect import SQLITE
from jobqueue.engine import Engine
from jobqueue.errors import SchemaVersionError
from jobqueue.job import Job, JobState
from jobqueue.queue import JobQueue

FIXTURE = Path(__file__).parent / "fixtures" / "sqlite-v1.db"


def _open(path: Path) -> Engine:
    return Engine(SQLiteBackend.from_url(f"sqlite:///{path}", BackendOptions()))


def _query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _write(path: Path, *statements: str, checks: bool = True) -> None:
    """Write as a foreign process would: a plain connection, no jobqueue code."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if not checks:
            conn.execute("PRAGMA ignore_check_constraints = ON")
        for sql in statements:
            conn.execute(sql)
    finally:
        conn.close()


def _version(path: Path) -> int:
    return int(_query(path, "SELECT value FROM jobqueue_meta WHERE key = 'schema_version'")[0][0])


def _error(path: Path, job_id: str) -> dict[str, Any]:
    ((state, error),) = _query(
        path, "SELECT state, error FROM jobqueue_jobs WHERE id = ?", (int(job_id),)
    )
    assert state == "failed"
    loaded: dict[str, Any] = json.loads(error)
    return loaded


def _counts_agree(path: Path, backend: Engine) -> None:
    """The trigger-kept counts say what the rows say."""
    by_state = dict(_query(path, "SELECT state, COUNT(*) FROM jobqueue_jobs GROUP BY state"))
    assert {s.value: n for s, n in backend.count_by_state().items() if n} == by_state
    by_name = _query(path, "SELECT name, state, COUNT(*) FROM jobqueue_jobs GROUP BY 1, 2")
    assert sorted(
        (name, state.value, n)
        for name, counts in backend.count_by_name().items()
        for state, n in counts.items()
        if n
    ) == sorted(by_name)


@pytest.fixture
def v8_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A file made by jobqueue at schema version 8 (the migrations before 9 only), with five
    waiting jobs of name a (ids 1-5), one of b (6), a delayed one (7) and a completed one (8):
    small ids, as versions before the ids' clock floor (``jobqueue.ids``) gave them."""
    path = tmp_path / "jobs.db"
    with monkeypatch.context() as patch:
        up_to_8 = [m for m in SQLITE.layout.migrations if m.version <= 8]
        patch.setattr(SQLITE, "layout", SQLITE.layout._replace(migrations=up_to_8))
        patch.setattr(ids, "clock_floor", lambda: 0)
        backend = _open(path)
        try:
            for n in range(5):
                backend.submit(Job(id="", name="a", data=n))
            backend.submit(Job(id="", name="b", data=5))
            backend.submit(Job(id="", name="a", data=6, run_at=4e9))
            done = backend.submit(Job(id="", name="c", data=7))
        finally:
            backend.close()
    # Completed as version 8 wrote it: today's claim reads columns version 8 had not.
    _write(
        path,
        "UPDATE jobqueue_jobs SET state = 'completed', attempts_made = 1, finished_at = 2.0, "
        f"result = '\"ok\"' WHERE id = {done.id}",
    )
    assert _version(path) == 8
    yield path


def test_a_version_8_file_with_foreign_typed_rows_migrates_and_the_other_jobs_run(
    v8_file: Path,
) -> None:
    _write(
        v8_file,
        "UPDATE jobqueue_jobs SET priority = 'high' WHERE id = 2",
        "UPDATE jobqueue_jobs SET seq = 'x' WHERE id = 6",
        "UPDATE jobqueue_jobs SET attempts = 2.5 WHERE id = 3",
        "UPDATE jobqueue_jobs SET run_at = 'tomorrow' WHERE id = 7",
        "UPDATE jobqueue_jobs SET title = X'00ff' WHERE id = 8",  # finished: stays completed
    )
    backend = _open(v8_file)
    try:
        assert _version(v8_file) == SCHEMA_VERSION
        high = _error(v8_file, "2")
        assert high["type"] == "CorruptJobError"
        assert "job 2: column 'priority' holds text 'high', not integer" in high["message"]
        assert "column 'seq' holds text 'x', not integer" in _error(v8_file, "6")["message"]
        assert "column 'attempts' holds real 2.5" in _error(v8_file, "3")["message"]
        assert "column 'run_at' holds text 'tomorrow'" in _error(v8_file, "7")["message"]
        done = backend.get("8")
        assert done is not None and done.state is JobState.COMPLETED and done.title is None
        _counts_agree(v8_file, backend)

        claims = backend.claim_many(WorkSpec(names=("a", "b")), 10)
        assert sorted(int(c.job.id) for c in claims) == [1, 4, 5]
        assert backend.get("2") is not None  # a failed corrupt job still reads
    finally:
        backend.close()


def test_after_migration_9_a_foreign_typed_write_is_refused(v8_file: Path) -> None:
    _open(v8_file).close()
    for sql in (
        "UPDATE jobqueue_jobs SET priority = 'high' WHERE id = 1",
        "UPDATE jobqueue_jobs SET seq = X'01' WHERE id = 1",
        "UPDATE jobqueue_jobs SET run_at = 'now' WHERE id = 1",
        "INSERT INTO jobqueue_jobs (name, state, priority, seq, run_at, attempts, attempts_made, "
        "stalls, created_at, progress, backoff, data) "
        "VALUES ('a', 'waiting', 'urgent', 99, 0.0, 1, 0, 0, 0.0, 0.0, '{}', 'null')",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            _write(v8_file, sql)
    # What affinity turns losslessly into the column's type is still accepted as that type.
    _write(v8_file, "UPDATE jobqueue_jobs SET priority = '7', run_at = 3 WHERE id = 1")
    assert _query(
        v8_file, "SELECT typeof(priority), typeof(run_at) FROM jobqueue_jobs WHERE id = 1"
    ) == [("integer", "real")]


@pytest.mark.parametrize(("column", "kind"), sorted(dialect.V9_TYPES.items()))
def test_every_checked_column_refuses_a_foreign_type(
    tmp_path: Path, column: str, kind: tuple[str, bool]
) -> None:
    path = tmp_path / "jobs.db"
    backend = _open(path)
    job_id = backend.submit(Job(id="", name="a", data=None)).id
    backend.close()
    with pytest.raises(sqlite3.IntegrityError, match=f"typeof\\({column}\\)"):
        _write(path, f"UPDATE jobqueue_jobs SET {column} = X'00' WHERE id = {job_id}")
    if not kind[1]:
        with pytest.raises(sqlite3.IntegrityError):
            _write(path, f"UPDATE jobqueue_jobs SET {column} = NULL WHERE id = {job_id}")


def test_the_claim_fails_a_row_written_with_the_checks_off_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    backend = _open(path)
    try:
        jobs = [backend.submit(Job(id="", name=name, data=n)) for n, name in enumerate("aab")]
        _write(
            path,
            f"UPDATE jobqueue_jobs SET priority = 'high' WHERE id = {jobs[0].id}",
            f"UPDATE jobqueue_jobs SET seq = X'00' WHERE id = {jobs[2].id}",
            checks=False,
        )
        claims = backend.claim_many(WorkSpec(names=("a", "b")), 5)
        assert [c.job.id for c in claims] == [jobs[1].id]
        error = _error(path, jobs[0].id)
        assert error["type"] == "CorruptJobError"
        assert f"job {jobs[0].id}: column 'priority' holds text 'high'" in error["message"]
        assert "column 'seq' holds blob b'\\x00'" in _error(path, jobs[2].id)["message"]
        assert backend.count_by_state()[JobState.FAILED] == 2
        _counts_agree(path, backend)
    finally:
        backend.close()


def test_a_worker_runs_the_other_jobs_past_a_text_priority(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with JobQueue(f"sqlite:///{path}", load_entrypoints=False) as queue:
        queue.add_worker("echo", lambda job: job.data)
        jobs = [queue.submit_job("echo", n) for n in range(3)]
        _write(
            path,
            f"UPDATE jobqueue_jobs SET priority = 'high' WHERE id = {jobs[1].id}",
            checks=False,
        )
        assert queue.work(burst=True) == 2
        assert sorted(j.result for j in queue.list_jobs("completed")) == [0, 2]
        assert queue.count_by_state()[JobState.FAILED] == 1
        assert "column 'priority' holds text 'high'" in _error(path, jobs[1].id)["message"]


def test_a_version_1_file_with_an_unknown_state_and_a_blob_name_migrates(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    shutil.copyfile(FIXTURE, path)
    # Version 1 had no state guard: these were storable.
    _write(
        path,
        "UPDATE jobqueue_jobs SET state = 'banana' WHERE id = 4",
        "UPDATE jobqueue_jobs SET name = CAST('mail' AS BLOB) WHERE id = 5",
    )
    backend = _open(path)
    try:
        assert _version(path) == SCHEMA_VERSION
        assert (
            "column 'state' holds text 'banana', not a job state" in (_error(path, "4")["message"])
        )
        blob = _error(path, "5")
        assert "column 'name' holds blob b'mail', not text" in blob["message"]
        assert _query(path, "SELECT name FROM jobqueue_jobs WHERE id = 5") == [("mail",)]
        assert backend.list_jobs(JobState.WAITING) == []
        _counts_agree(path, backend)
    finally:
        backend.close()


def test_a_failed_rebuild_rolls_back_to_version_8(
    v8_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the repair step a foreign row cannot be copied into the checked table: the
    migration fails, and the drop of the old table is undone with the rest."""
    _write(v8_file, "UPDATE jobqueue_jobs SET priority = 'high' WHERE id = 2")
    rows = _query(v8_file, "SELECT * FROM jobqueue_jobs ORDER BY id")
    layout = _query(v8_file, "SELECT type, name, sql FROM sqlite_master ORDER BY name")
    monkeypatch.setattr(dialect, "fail_foreign_typed_rows", lambda conn, now: 0)
    with pytest.raises(SchemaVersionError, match=r"migration 9 .*CHECK constraint failed"):
        _open(v8_file)
    assert _version(v8_file) == 8
    assert _query(v8_file, "SELECT * FROM jobqueue_jobs ORDER BY id") == rows
    assert _query(v8_file, "SELECT type, name, sql FROM sqlite_master ORDER BY name") == layout
