"""What the SQLite backend refuses to open (leaving the file untouched), and corrupt rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jobqueue.backend import BackendOptions, WorkSpec
from jobqueue.backends.sqlite import SCHEMA_VERSION, SQLiteBackend
from jobqueue.engine import Engine
from jobqueue.errors import ConfigurationError, CorruptJobError, SchemaVersionError
from jobqueue.job import Job, JobState
from jobqueue.queue import JobQueue


def _open(path: Path) -> Engine:
    return Engine(SQLiteBackend.from_url(f"sqlite:///{path}", BackendOptions()))


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _job(name: str = "a", data: object = None) -> Job:
    return Job(id="", name=name, data=data)


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 10)
    before = _snapshot(tmp_path)
    with pytest.raises(SchemaVersionError, match="not an SQLite database"):
        _open(path)
    assert _snapshot(tmp_path) == before  # no -wal/-shm either


def test_a_short_non_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tiny.db"
    path.write_bytes(b"x")
    with pytest.raises(SchemaVersionError):
        _open(path)
    assert path.read_bytes() == b"x"


def test_another_applications_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
        conn.execute("INSERT INTO users (email) VALUES ('a@example.com')")
    conn.close()
    before = _snapshot(tmp_path)
    with pytest.raises(SchemaVersionError, match=r"not a jobqueue one.*users"):
        _open(path)
    assert _snapshot(tmp_path) == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]
    conn.close()


def test_an_empty_database_of_another_application_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("DROP TABLE t")
    conn.close()
    before = _snapshot(tmp_path)
    with pytest.raises(SchemaVersionError, match="not a jobqueue one"):
        _open(path)
    assert _snapshot(tmp_path) == before


def _set_version(path: Path, value: object) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE jobqueue_meta SET value = ? WHERE key = 'schema_version'", (value,))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def test_a_newer_schema_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    backend = _open(path)
    backend.submit(_job())
    backend.close()
    _set_version(path, SCHEMA_VERSION + 1)
    before = path.read_bytes()
    with pytest.raises(
        SchemaVersionError, match=rf"version {SCHEMA_VERSION + 1} .*upgrade jobqueue"
    ):
        _open(path)
    assert path.read_bytes() == before


def test_an_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    _open(path).close()
    _set_version(path, "banana")
    with pytest.raises(SchemaVersionError, match=r"'banana'.*refusing"):
        _open(path)


def test_an_empty_file_becomes_a_queue_and_reopens_with_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    path.touch()  # e.g. made by mktemp
    backend = _open(path)
    job = backend.submit(_job(data={"x": 1}))
    backend.close()
    again = _open(path)
    stored = again.get(job.id)
    assert stored is not None and stored.data == {"x": 1}
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    again.close()


@pytest.mark.parametrize(
    "url",
    ["sqlite://host/jobs.db", "sqlite://", "sqlite:///", "sqlite:///jobs.db?colour=blue"],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        SQLiteBackend.from_url(url, BackendOptions())


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        _open(tmp_path / "nope" / "jobs.db")
    assert not (tmp_path / "nope").exists()


def test_relative_and_absolute_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rel = SQLiteBackend.from_url("sqlite:///rel.db", BackendOptions())
    absolute = SQLiteBackend.from_url(f"sqlite:///{tmp_path}/abs.db", BackendOptions())
    assert rel.path == str(tmp_path / "rel.db") and absolute.path == str(tmp_path / "abs.db")
    rel.close()
    absolute.close()


def test_the_queue_opens_sqlite_urls_without_redis(tmp_path: Path) -> None:
    with JobQueue(f"sqlite:///{tmp_path}/q.db", load_entrypoints=False) as queue:
        queue.add_worker("double", lambda job: job.data * 2)
        job = queue.submit_job("double", 21)
        assert queue.work(burst=True) == 1
        done = queue.get_job_by_id(job.id)
        assert done is not None and done.result == 42


# -- corrupt rows never crash a dispatcher ----------------------------------------------------


def _corrupt(path: Path, job_id: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE jobqueue_jobs SET data = '{not json' WHERE id = ?", (int(job_id),))
    conn.close()


def test_corrupt_row_get_raises_and_claim_fails_it_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    backend = _open(path)
    bad = backend.submit(_job(data={"n": 1}))
    good = backend.submit(_job(data={"n": 2}))
    _corrupt(path, bad.id)
    with pytest.raises(CorruptJobError, match=f"job {bad.id}.*'data'"):
        backend.get(bad.id)
    claim = backend.claim(WorkSpec(names=("a",)))
    assert claim is not None and claim.job.id == good.id
    assert backend.count_by_state()[JobState.FAILED] == 1
    [listed] = backend.list_jobs(JobState.FAILED)  # shown, marked, never hidden
    assert listed.id == bad.id and listed.error is not None
    assert listed.error.type == "CorruptJobError" and listed.data is None
    conn = sqlite3.connect(path)
    state, error = conn.execute(
        "SELECT state, error FROM jobqueue_jobs WHERE id = ?", (int(bad.id),)
    ).fetchone()
    conn.close()
    assert state == "failed" and "CorruptJobError" in error and "not valid JSON" in error
    backend.close()


def test_a_dispatcher_survives_a_corrupt_row(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with JobQueue(f"sqlite:///{path}", load_entrypoints=False) as queue:
        queue.add_worker("echo", lambda job: job.data)
        jobs = [queue.submit_job("echo", i) for i in range(3)]
        _corrupt(path, jobs[1].id)
        assert queue.work(burst=True) == 2
        assert [j.result for j in queue.list_jobs("completed")] == [2, 0]
        assert queue.count_by_state()[JobState.FAILED] == 1
