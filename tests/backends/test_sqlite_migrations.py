"""Schema migrations on real files: a version-1 file written by the released code (the
fixture, made by ``fixtures/make_sqlite_v1.py`` at commit dd81be6) upgrades in place, a failing
step changes nothing, and two processes opening an old file at once migrate it once."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jobqueue.backend import BackendOptions
from jobqueue.backends.sql import migrate
from jobqueue.backends.sql.statements import Statements
from jobqueue.backends.sqlite import SCHEMA_VERSION, SQLiteBackend
from jobqueue.backends.sqlite.dialect import SQLITE
from jobqueue.engine import Engine
from jobqueue.errors import SchemaVersionError
from jobqueue.job import Job, JobState

FIXTURE = Path(__file__).parent / "fixtures" / "sqlite-v1.db"
WORKER = str(Path(__file__).with_name("sqlite_migrate_worker.py"))

# The columns version 1 had, so rows can be compared before and after the upgrade.
V1_COLUMNS = (
    "id, name, state, priority, seq, run_at, lease_token, lease_expires_at, unique_key, "
    "attempts, attempts_made, stalls, created_at, started_at, finished_at, progress, "
    "progress_message, title, timeout, backoff, data, result, error"
)


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.db"
    shutil.copyfile(FIXTURE, path)
    return path


def _open(path: Path) -> Engine:
    return Engine(SQLiteBackend.from_url(f"sqlite:///{path}", BackendOptions()))


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _version(path: Path) -> int:
    return int(_query(path, "SELECT value FROM jobqueue_meta WHERE key = 'schema_version'")[0][0])


def _layout(path: Path) -> list[tuple[Any, ...]]:
    """Every table, column, index and trigger (the SQL text carries the columns); root pages
    differ between files of the same layout, so they are left out."""
    return _query(path, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")


def test_the_fixture_is_a_version_1_file() -> None:
    assert _version(FIXTURE) == 1
    states = _query(FIXTURE, "SELECT state, COUNT(*) FROM jobqueue_jobs GROUP BY state")
    assert dict(states) == {"waiting": 2, "delayed": 1, "active": 1, "completed": 1, "failed": 1}


def test_migrations_are_consecutive_and_end_at_the_schema_version() -> None:
    versions = [m.version for m in SQLITE.layout.migrations]
    assert versions == list(range(migrate.BASE_VERSION + 1, SCHEMA_VERSION + 1))


def test_a_version_1_file_upgrades_in_place_keeping_every_job(old_file: Path) -> None:
    rows_before = _query(old_file, f"SELECT {V1_COLUMNS} FROM jobqueue_jobs ORDER BY id")
    logs_before = _query(old_file, "SELECT * FROM jobqueue_logs ORDER BY id")
    counts_before = dict(_query(old_file, "SELECT state, n FROM jobqueue_counts"))
    backend = _open(old_file)
    try:
        assert _version(old_file) == SCHEMA_VERSION
        assert _query(old_file, f"SELECT {V1_COLUMNS} FROM jobqueue_jobs ORDER BY id") == (
            rows_before
        )
        assert _query(old_file, "SELECT * FROM jobqueue_logs ORDER BY id") == logs_before
        assert dict(_query(old_file, "SELECT state, n FROM jobqueue_counts")) == {
            **counts_before,
            "cancelled": 0,
            "blocked": 0,
        }
        assert _query(
            old_file, "SELECT DISTINCT cancel_requested, dispatcher, history FROM jobqueue_jobs"
        ) == [(0, None, None)]

        jobs = {job_id: backend.get(job_id) for job_id in map(str, range(1, 8))}
        assert jobs.pop("7") is None  # removed before the upgrade
        got = {job_id: job for job_id, job in jobs.items() if job is not None}
        assert {job_id: job.state for job_id, job in got.items()} == {
            "1": JobState.COMPLETED,
            "2": JobState.FAILED,
            "3": JobState.ACTIVE,
            "4": JobState.WAITING,
            "5": JobState.WAITING,
            "6": JobState.DELAYED,
        }
        assert got["1"].result == {"sent": 1, "ids": ["m1"]} and got["1"].title == "mail a"
        assert [log.message for log in got["1"].logs] == ["sending", "sent"]
        assert got["2"].error is not None and str(got["2"].error) == "SMTPError: 550 no such user"
        assert [log.message for log in got["2"].logs] == ["connecting"]
        assert got["3"].progress == 0.5 and got["3"].unique_key == "mail:c"
        assert got["5"].data == {"doc": 42, "nested": {"list": [1, 2.5, None, "x"]}}
        assert got["6"].title == "later"
        assert [j.id for j in backend.list_jobs(JobState.WAITING)] == ["4", "5"]
        # Migration 7 seeded the per-name counts from the jobs present.
        by_name = _query(
            old_file, "SELECT name, state, COUNT(*) FROM jobqueue_jobs GROUP BY name, state"
        )
        assert sorted(_query(old_file, "SELECT name, state, n FROM jobqueue_name_counts")) == (
            sorted(by_name)
        )
        totals: dict[str, int] = {}
        for name, _, n in by_name:
            totals[name] = totals.get(name, 0) + n
        assert {name: sum(c.values()) for name, c in backend.count_by_name().items()} == totals

        # New ids go on above the old ones (the removed job's 7 included), increasing.
        eighth = int(backend.submit(Job(id="", name="mail", data=None)).id)
        ninth = int(backend.submit(Job(id="", name="mail", data=None)).id)
        assert 7 < eighth < ninth
    finally:
        backend.close()

    fresh = old_file.with_name("fresh.db")
    _open(fresh).close()
    assert _layout(old_file) == _layout(fresh)
    assert _query(old_file, "PRAGMA application_id") == _query(fresh, "PRAGMA application_id")
    assert _query(old_file, "PRAGMA journal_mode") == [("wal",)]


def test_reopening_an_upgraded_file_migrates_nothing(
    old_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="jobqueue.backends.sqlite"):
        _open(old_file).close()
        assert [r.getMessage() for r in caplog.records if "migrating" in r.getMessage()] != []
        caplog.clear()
        _open(old_file).close()
    assert [r for r in caplog.records if "migrating" in r.getMessage()] == []


def test_a_file_from_before_the_job_id_counter_seeds_it_from_seq(old_file: Path) -> None:
    conn = sqlite3.connect(old_file, isolation_level=None)
    conn.execute("DELETE FROM jobqueue_meta WHERE key = 'job_id'")
    conn.close()
    (seq,) = _query(old_file, "SELECT value FROM jobqueue_meta WHERE key = 'seq'")[0]
    backend = _open(old_file)
    try:
        counter = _query(old_file, "SELECT value FROM jobqueue_meta WHERE key = 'job_id'")
        assert counter == [(seq,)]
        assert int(backend.submit(Job(id="", name="mail", data=None)).id) > seq
    finally:
        backend.close()


def test_a_failing_migration_rolls_back_and_leaves_the_file_unchanged(
    old_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = SQLITE.layout.migrations[0]
    assert isinstance(real.step, str)
    # The real step first, so there is work to undo: tables made, columns added, rows written.
    broken = real._replace(step=real.step + "\nINSERT INTO jobqueue_nowhere VALUES (1);")
    steps = [broken, *SQLITE.layout.migrations[1:]]
    monkeypatch.setattr(SQLITE, "layout", SQLITE.layout._replace(migrations=steps))
    before = old_file.read_bytes()
    with pytest.raises(SchemaVersionError, match=r"migration 2 .*failed.*jobqueue_nowhere") as err:
        _open(old_file)
    assert "unchanged, still at version 1" in str(err.value)
    assert old_file.read_bytes() == before
    assert _version(old_file) == 1
    assert not old_file.with_name("jobs.db-wal").exists()

    monkeypatch.undo()  # the real migration then applies to the same, untouched file
    _open(old_file).close()
    assert _version(old_file) == SCHEMA_VERSION


def test_a_failing_callable_step_is_reported_the_same_way(
    old_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def step(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE jobqueue_half_done (x)")
        raise RuntimeError("disk ate my homework")

    half = [migrate.Migration(2, "half", step)]
    monkeypatch.setattr(SQLITE, "layout", SQLITE.layout._replace(migrations=half))
    before = old_file.read_bytes()
    with pytest.raises(SchemaVersionError, match=r"migration 2 .*\(half\) failed: disk ate"):
        _open(old_file)
    assert old_file.read_bytes() == before
    assert (
        _query(old_file, "SELECT name FROM sqlite_master WHERE name = 'jobqueue_half_done'") == []
    )


def test_the_state_guard_refuses_an_unknown_state(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    backend = _open(path)
    job = backend.submit(Job(id="", name="a", data=None))
    backend.close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="not a job state"):
            conn.execute("UPDATE jobqueue_jobs SET state = 'finished' WHERE id = ?", (int(job.id),))
        conn.execute("UPDATE jobqueue_jobs SET state = 'cancelled' WHERE id = ?", (int(job.id),))
        counts = dict(conn.execute("SELECT state, n FROM jobqueue_counts").fetchall())
    finally:
        conn.close()
    assert counts["cancelled"] == 1 and counts["waiting"] == 0


def test_two_processes_opening_an_old_file_migrate_it_once(old_file: Path) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, WORKER, str(old_file), "0.5"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:  # the barrier: both are imported and waiting; release them
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = []
        for child in children:
            out, _ = child.communicate(timeout=60)
            assert child.returncode == 0
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    # Every step exactly once, by one process or the other: with several steps the holder of
    # the write lock may go on to the next before the other's busy handler retries, or not.
    steps = [message for report in reports for message in report["migrated"]]
    assert len(steps) == len(SQLITE.layout.migrations)
    for migration in SQLITE.layout.migrations:
        assert sum(f" to {migration.version} (" in step for step in steps) == 1
    for report in reports:
        if not report["migrated"]:  # it saw an old version, queued on the lock, found it done
            assert report["waited"] != []
    assert all(report["version"] == SCHEMA_VERSION for report in reports)
    assert all(report["ids"] == [1, 2, 3, 4, 5, 6] for report in reports)


def _migration_package(tmp_path: Path, name: str, files: dict[str, str]) -> str:
    package = tmp_path / name
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for file, text in files.items():
        (package / "migrations" / file).write_text(text)
    return name


def test_migration_files_load_in_order_with_their_descriptions_and_hooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    files = {
        "0001_base.sql": "-- base\nCREATE TABLE t (x);\n",
        "0002_add.sql": "-- add a column\nALTER TABLE t ADD COLUMN y;\n",
        "0003_rebuild.sql": "-- rebuild\nCREATE TABLE u (x);\n",
        "README.txt": "not a migration",
    }
    seen: list[tuple[object, str]] = []
    layout = migrate.load(
        _migration_package(tmp_path, "jq_mig_ok", files),
        "migrations",
        {3: lambda conn, sql: seen.append((conn, sql))},
    )
    assert layout.base == files["0001_base.sql"]
    assert [(m.version, m.description) for m in layout.migrations] == [
        (2, "add a column"),
        (3, "rebuild"),
    ]
    assert layout.migrations[0].step == files["0002_add.sql"]
    step = layout.migrations[1].step
    assert callable(step)
    step("conn")
    assert seen == [("conn", files["0003_rebuild.sql"])]


@pytest.mark.parametrize(
    ("files", "hooks", "problem"),
    [
        ({"0001_base.sql": "", "0003_late.sql": ""}, {}, "not 1, 2, 3"),
        ({"0001_base.sql": "", "2_short.sql": ""}, {}, "not named NNNN_name.sql"),
        ({"0001_base.sql": "", "0002_a.sql": ""}, {3: print}, "hooks for versions without"),
    ],
)
def test_migration_files_with_a_gap_a_bad_name_or_a_stray_hook_are_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str],
    hooks: dict[int, migrate.Hook],
    problem: str,
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"jq_mig_bad_{abs(hash(tuple(files)))}_{len(hooks)}"
    with pytest.raises(ValueError, match=problem):
        migrate.load(_migration_package(tmp_path, name, files), "migrations", hooks)


def test_sqlite_runs_the_family_statements_but_four_in_its_own_words() -> None:
    family = Statements()
    names = [name for name in vars(Statements) if name.isupper()]
    own = sorted(name for name in names if getattr(family, name) != getattr(SQLITE.sql, name))
    assert own == ["COUNT_OUTCOMES", "PAUSE", "SET_SCHEDULE_PAUSED", "UPSERT_DISPATCHER"]
    with pytest.raises(ValueError, match="overrides of no statement"):
        Statements({"NO_SUCH": "SELECT 1"})


def test_a_dialect_placeholder_replaces_every_question_mark() -> None:
    pg = Statements(placeholder="%s")
    assert pg.HOLDER.count("%s") == 3 and "?" not in pg.HOLDER
    assert "?" not in pg.scan(JobState.WAITING, True, False) and "?" not in pg.logs_in(3)
    assert "?" not in pg.scan(JobState.FAILED, True, True) and "?" not in pg.MOVE
    assert pg.delete_jobs(3).endswith("IN (%s,%s,%s)")
