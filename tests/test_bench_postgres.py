"""The benchmark's PostgreSQL side (bench/, issue 21 "Speed"): its helpers, without the peers.

The peers' packages live in bench/.venv only, so nothing here imports an adapter: the names
of ``--peers postgres`` are checked against the adapters' source, the report and the targets
on figures made up here, and the bench database (created, counted, dropped) on the real
PostgreSQL server of the PostgreSQL tests. No figure of speed is asserted.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def bench() -> Iterator[SimpleNamespace]:
    """bench/'s harness, report and database modules, imported as the bench imports them
    (top-level names) and forgotten afterwards."""
    before = set(sys.modules)
    sys.path.insert(0, str(BENCH))
    try:
        import harness
        import postgres
        import report
        import report_postgres

        yield SimpleNamespace(
            harness=harness, postgres=postgres, report=report, report_postgres=report_postgres
        )
    finally:
        sys.path.remove(str(BENCH))
        for name in set(sys.modules) - before:
            if str(getattr(sys.modules[name], "__file__", "")).startswith(str(BENCH)):
                del sys.modules[name]


def test_a_schema_reaches_libpq_as_a_search_path_option(bench: SimpleNamespace) -> None:
    from psycopg.conninfo import conninfo_to_dict

    url = bench.postgres.with_query(
        "postgresql://postgres@127.0.0.1:5432/db?sslmode=disable&options=old",
        options="-c search_path=pgqueuer",
    )
    parsed = conninfo_to_dict(url)
    assert parsed["options"] == "-c search_path=pgqueuer"  # "+" would reach the server
    assert parsed["sslmode"] == "disable"
    assert parsed["dbname"] == "db"


def test_the_postgres_group_names_adapters_that_exist(bench: SimpleNamespace) -> None:
    defined = set()
    for path in (BENCH / "peers").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if (
                        isinstance(item, ast.Assign)
                        and [getattr(t, "id", None) for t in item.targets] == ["name"]
                        and isinstance(item.value, ast.Constant)
                    ):
                        defined.add(item.value.value)
    for group in bench.harness.GROUPS.values():
        assert set(group.split(",")) <= defined
    assert {"jobqueue-pg", "jobqueue-pg-prefetch1"} <= set(bench.harness.POSTGRES_PEERS.split(","))


def test_peers_expands_groups_once_each_and_refuses_unknown_names(bench: SimpleNamespace) -> None:
    available = dict.fromkeys(
        [*bench.harness.DEFAULT_PEERS.split(","), *bench.harness.POSTGRES_PEERS.split(",")]
    )
    names = bench.harness.peer_names("postgres, huey,jobqueue-pg", available)
    assert names == [*bench.harness.POSTGRES_PEERS.split(","), "huey"]
    with pytest.raises(SystemExit, match="river"):
        bench.harness.peer_names("postgres,river", available)


def test_libraries_that_cannot_run_here_are_left_out_with_one_line_per_reason(
    bench: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    def adapter(reason: str | None) -> type:
        return type("Made", (), {"unavailable": classmethod(lambda cls: reason)})

    no_python = adapter("oban-py needs Python >= 3.12")
    available = {
        "oban": no_python,
        "oban-limit10": no_python,
        "bullmq": adapter("`node` is not on the PATH"),
        "pgqueuer": adapter(None),
    }
    wanted = ["oban", "pgqueuer", "bullmq", "oban-limit10"]
    names = bench.harness.skip_unavailable(wanted, available)
    assert names == ["pgqueuer"]
    assert capsys.readouterr().out.splitlines() == [
        "skipping oban, oban-limit10: oban-py needs Python >= 3.12; "
        "the other libraries are measured",
        "skipping bullmq: `node` is not on the PATH; the other libraries are measured",
    ]


def test_oban_runs_only_on_a_python_that_says_it_is_3_12(
    bench: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Python for bench/.venv-py312 is the first candidate that runs and reports 3.12:
    not a pyenv shim that refuses, not another version."""
    from peers import oban_adapter

    def fake_python(name: str, body: str) -> Path:
        path = tmp_path / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
        return path

    refusing = fake_python("python3.12", "echo 'pyenv: python3.12: not found' >&2; exit 127")
    other = fake_python("python3.11", "echo /opt/py311/bin/python; echo 3 11")
    real = fake_python("python-real", "echo /opt/py312/bin/python3.12; echo 3 12")
    monkeypatch.setenv("PATH", str(tmp_path))  # finds the refusing shim as python3.12
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("BENCH_PYTHON312", str(other))
    assert oban_adapter.find_python() is None
    monkeypatch.setenv("BENCH_PYTHON312", str(real))
    assert oban_adapter.find_python() == "/opt/py312/bin/python3.12"
    assert refusing.exists()


def figures(**metrics: float) -> dict[str, Any]:
    return {metric: {"median": v, "min": v, "max": v} for metric, v in metrics.items()}


def results(summary: dict[str, dict[str, Any]], batched: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "summary": summary,
        "labels": {name: name for name in summary},
        "rounds": {name: [{}] for name in summary},
        "stores": dict.fromkeys(summary, "postgres"),
        "one_at_a_time": {name: name not in batched for name in summary},
    }


def test_targets_compare_with_the_fastest_peer_of_each_kind(bench: SimpleNamespace) -> None:
    made_up = results(
        {
            "jobqueue-pg": figures(
                submit_per_s=3000,
                bulk_per_s=40000,
                processed_per_s=7000,
                latency_p50_ms=2.0,
                latency_p99_ms=3.0,
                xacts_per_job=0.3,
            ),
            "jobqueue-pg-prefetch1": figures(processed_per_s=900),
            "jobqueue-pg-nolisten": figures(latency_p50_ms=120.0),  # ours: never the best peer
            "slow": figures(submit_per_s=1000, bulk_per_s=50000, processed_per_s=200),
            "batched": figures(submit_per_s=2500, processed_per_s=6000, latency_p50_ms=1.5),
        },
        batched=("batched",),
    )
    met = {target: ok for target, _, ok in bench.report_postgres.targets(made_up)}
    assert list(met.values()) == [
        False,  # 7,000/s < 1.25 x 6,000 (the batched peer counts: any mode)
        True,  # 900/s >= 3 x 200 (the batched peer does not: concurrency 1)
        False,  # 3,000/s < 1.25 x 2,500
        False,  # 40,000/s < 50,000
        True,  # 0.3 xacts/job
        False,  # 2.0 ms > 1.5 ms
        False,  # listen=false: 120 ms > 2 x the 50 ms poll
    ]
    rows = {row[0]: row[1:] for row in bench.report_postgres.versus_fastest(made_up)}
    assert rows["processed/s, prefetch=1 (vs concurrency 1)"] == ["900", "200 (slow)", "4.50x"]
    assert rows["submit->start p50 ms"] == ["2.00", "1.50 (batched)", "0.75x"]


def test_the_table_leaves_out_what_no_library_measured(bench: SimpleNamespace) -> None:
    made_up = results({"jobqueue-pg": figures(submit_per_s=3000.0, xacts_per_job=0.25)})
    header = bench.report.table(made_up).splitlines()[0]
    assert "PG xacts/job" in header
    assert "bytes/job" not in header
    assert "Redis cmds/job" not in header


@pytest.mark.postgres
def test_the_bench_database_counts_transactions_and_is_dropped(bench: SimpleNamespace) -> None:
    from tests.backends.postgres_fixtures import DEFAULT_URL, unavailable

    admin_url = os.environ.get("JOBQUEUE_TEST_POSTGRES_URL", DEFAULT_URL)
    reason = bench.postgres.unavailable(admin_url)
    if reason:
        unavailable(reason)
    import psycopg

    with bench.postgres.BenchDatabase(admin_url) as database:
        assert os.environ["BENCH_POSTGRES_URL"] == database.url
        before = database.transactions()
        with psycopg.connect(database.url, autocommit=True) as conn:
            for _ in range(5):
                conn.execute("SELECT 1")
        assert database.settled()
        assert 5 <= database.transactions() - before < 10  # each statement its own
    assert "BENCH_POSTGRES_URL" not in os.environ
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (database.name,)
        ).fetchone()
    assert row is not None and row[0] == 0


@pytest.mark.postgres
def test_obans_producer_under_python_3_12_installs_submits_and_lets_go(
    bench: SimpleNamespace,
) -> None:
    """oban-py's producer (bench/.venv-py312, set up here as the bench sets it up on first
    use) over its pipe: its tables installed in the schema of its own, jobs stored one by one
    and in bulk, and no connection left once released."""
    from peers import oban_adapter

    from tests.backends.postgres_fixtures import DEFAULT_URL, unavailable

    cannot = oban_adapter.unavailable()  # creates the 3.12 venv when missing (about 25 s)
    if cannot:
        unavailable(f"oban-py cannot run here: {cannot}")
    admin_url = os.environ.get("JOBQUEUE_TEST_POSTGRES_URL", DEFAULT_URL)
    reason = bench.postgres.unavailable(admin_url)
    if reason:
        unavailable(reason)
    import psycopg

    with bench.postgres.BenchDatabase(admin_url) as database:
        adapter = oban_adapter.ObanAdapter("redis://unused")
        try:
            assert adapter.ready["versions"]["oban"]
            adapter.reset()
            stamps = adapter.submit_each([{"user": "u1", "n": 1}, {"user": "u1", "n": 2}])
            assert len(stamps) == 2 and stamps[0] <= stamps[1]
            adapter.submit_bulk([{"user": "u1", "n": n} for n in range(3, 6)])
            adapter.release()
            assert database.settled(timeout=10)
        finally:
            adapter.close()
        with psycopg.connect(database.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT args->>'n', worker, queue, state::text FROM oban.oban_jobs ORDER BY id"
            ).fetchall()
        assert rows == [
            (str(n), "peers.oban_worker.BenchWorker", "bench", "available") for n in range(1, 6)
        ]
        assert adapter.process.returncode == 0
