"""The quickstart example (examples/contacts_app) run end to end, as the README tells users to."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from jobqueue.hooks import ENTRY_POINT_GROUP

ROOT = Path(__file__).resolve().parents[1]
TITLES = [
    "Import sample-addressbook contacts for alice@example.com",
    "Import team-directory contacts for bob@example.com",
    "Alarm for 'Team stand-up' to alice@example.com",
    "Alarm for 'Team stand-up' to bob@example.com",
    "Alarm for 'Quarterly review' to alice@example.com",
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("JOBQUEUE_URL", None)
    # Prove no Redis is involved: any attempt to reach one would go to a closed port.
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    return env


def _check_output(output: str, home: Path) -> None:
    rows = [line for line in output.splitlines() if re.match(r"^\d+\s+\w+\s+", line)]
    assert len(rows) == len(TITLES), output
    for row, title in zip(rows, TITLES, strict=True):
        assert re.match(rf"^\d+\s+completed\s+{re.escape(title)}\s+\{{", row), row
    assert '"imported": 6' in rows[0] and '"imported": 4' in rows[1]
    assert "all jobs completed" in output
    assert len(list((home / "outbox").glob("*.eml"))) == 3
    with sqlite3.connect(home / "contacts.db") as store:
        assert store.execute("SELECT count(*) FROM contacts").fetchone()[0] == 10
    store.close()
    assert (home / "jobs.db").read_bytes().startswith(b"SQLite format 3\x00")


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example app installed into a folder of its own, as scripts/quickstart.sh does:
    never into the test environment, where its workers would join every queue."""
    site = tmp_path_factory.mktemp("example") / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "--no-index", "--target", str(site), str(ROOT / "examples" / "contacts_app")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site


def test_example_is_not_in_the_test_environment() -> None:
    names = [ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    assert "contacts-example" not in names


def test_installed_example_runs_end_to_end(tmp_path: Path, example_site: Path) -> None:
    env = _env() | {"PYTHONPATH": str(example_site)}
    home = tmp_path / "home"
    done = subprocess.run(
        [sys.executable, "-m", "jobqueue_example_contacts", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    _check_output(done.stdout, home)
    assert "sqlite:///" in done.stdout and done.stderr == ""

    again = subprocess.run(  # a second run on the same home: imports are idempotent
        [sys.executable, "-m", "jobqueue_example_contacts", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert '"created": 0, "updated": 6' in again.stdout


def test_example_builds_without_setuptools_warnings(tmp_path: Path) -> None:
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run(
        [*pip, "--wheel-dir", str(tmp_path), "--verbose", str(ROOT / "examples" / "contacts_app")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "SetuptoolsDeprecationWarning" not in output
    assert "Installing 'jobqueue_example_contacts.data' as data is deprecated" not in output


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quickstart_script_on_a_fresh_virtualenv(tmp_path: Path) -> None:
    """The README's first command, in a brand-new virtualenv (needs the package index)."""
    env = _env() | {"VENV": str(tmp_path / "venv"), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        ["sh", str(ROOT / "scripts" / "quickstart.sh")],
        capture_output=True,
        text=True,
        timeout=540,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    homes = list(tmp_path.glob("jobqueue-quickstart.*"))
    assert len(homes) == 1, done.stdout
    _check_output(done.stdout, homes[0])
    output = done.stdout + done.stderr  # (this machine's pip config warns of its own)
    assert "SetuptoolsDeprecationWarning" not in output and "setuptools" not in output.lower()
    # The environment handed to the user has jobqueue alone: no example workers in its queues.
    venv_python = tmp_path / "venv" / "bin" / "python"
    check = "from jobqueue import JobQueue; print(sorted(JobQueue('memory://').workers))"
    listed = subprocess.run(
        [str(venv_python), "-c", check], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert listed.stdout.strip() == "[]", listed.stdout + listed.stderr
