"""oban-py 0.7 (the Python port of Elixir's Oban): ``Oban.enqueue`` one by one,
``Oban.enqueue_many`` in bulk; the worker is its CLI, ``oban start --queues bench:1`` (the
queue's limit 1: one job at a time), its defaults otherwise (uvloop, INFO logging of every
job, leadership, the 1 s stager, LISTEN/NOTIFY on).

oban-py requires Python >= 3.12 and the harness runs on the bench's own venv (3.10+), so oban
lives in ``bench/.venv-py312`` (created on first use from ``requirements-py312.txt`` with a
Python 3.12 found on the machine: ``$BENCH_PYTHON312``, ``python3.12`` on the PATH, or pyenv's
``~/.pyenv/versions/3.12.*``); where none is found the run prints ``skipping oban: ...`` and
measures the rest. Both of its sides run under 3.12: the producer is one long-lived
``python -m peers.oban_producer`` driven over a pipe (``peers/piped.py``, as the Node peers'
producers are), the worker is ``bench/.venv-py312/bin/oban start``. Its tables are installed
by oban's own ``oban.schema.install`` with ``prefix`` = the schema of its own in the bench
database.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from importlib.metadata import distributions
from pathlib import Path
from typing import ClassVar

from common import BENCH, RESULTS, python_path

from peers.piped import PipedAdapter
from peers.postgres_base import recreate_schema, schema_url

SCHEMA = "oban"
QUEUE = "bench"  # peers/oban_worker.py's queue
VENV = BENCH / ".venv-py312"
REQUIREMENTS = BENCH / "requirements-py312.txt"
WANTED = (3, 12)
_verdict: dict[str, str | None] = {}  # "venv": None if usable, else why not


def find_python() -> str | None:
    """A Python 3.12 interpreter on this machine (its real path), or None."""
    home = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [
        os.environ.get("BENCH_PYTHON312", ""),
        shutil.which("python3.12") or "",  # may be a pyenv shim that refuses to run
        *(str(path) for path in sorted(home.glob("versions/3.12.*/bin/python"), reverse=True)),
    ]
    probe = "import sys; print(sys.executable); print(*sys.version_info[:2])"
    for candidate in filter(None, candidates):
        with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError, IndexError):
            done = subprocess.run(
                [candidate, "-c", probe], capture_output=True, text=True, timeout=30
            )
            lines = done.stdout.split("\n")
            if done.returncode == 0 and tuple(map(int, lines[1].split())) == WANTED:
                return lines[0]
    return None


def unavailable() -> str | None:
    """Why oban cannot be measured here (None if it can), creating or refreshing
    ``bench/.venv-py312`` first if needed — once per run."""
    if "venv" not in _verdict:
        _verdict["venv"] = _check()
    return _verdict["venv"]


def _check() -> str | None:
    python = VENV / "bin" / "python"
    stamp = VENV / ".requirements.sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return None
    if not python.exists():
        found = find_python()
        if found is None:
            return (
                "oban-py needs Python >= 3.12 and no Python 3.12 was found "
                "(set BENCH_PYTHON312 to one)"
            )
        print(f"setting up {VENV} (oban-py, Python 3.12) ...", flush=True)
        done = subprocess.run([found, "-m", "venv", str(VENV)], capture_output=True, text=True)
        if done.returncode != 0:
            return _failed("venv", done)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run([*pip, "-r", str(REQUIREMENTS)], capture_output=True, text=True)
    if done.returncode != 0:
        return _failed("pip install", done)
    stamp.write_text(wanted)
    return None


def _failed(what: str, done: subprocess.CompletedProcess[str]) -> str:
    log = RESULTS / "logs" / "venv-py312.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(done.stdout + done.stderr)
    return f"`{what}` failed for {VENV} (see {log})"


def package_versions() -> dict[str, str]:
    """Versions of oban and of the Python it runs on, from ``bench/.venv-py312``."""
    found: dict[str, str] = {}
    for site in VENV.glob("lib/python3.*/site-packages"):
        for dist in distributions(path=[str(site)]):
            if dist.metadata["Name"] == "oban":
                found["oban"] = dist.version
    with contextlib.suppress(OSError):
        for line in (VENV / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("version", "version_info") and found:
                found["python (oban)"] = value.strip()
    return found


class ObanAdapter(PipedAdapter):
    """oban-py: a producer process under Python 3.12 driven over a pipe, and ``oban start``."""

    name = "oban"
    label = "oban-py (Python 3.12), queue limit 1"
    package = "oban"
    bulk_api = "enqueue_many"
    on_redis = False
    on_postgres = True
    schema: ClassVar[str] = SCHEMA
    limit: ClassVar[int] = 1  # the queue's limit: jobs run at once

    @classmethod
    def unavailable(cls) -> str | None:
        return unavailable()

    @property
    def dsn(self) -> str:
        return schema_url(self.schema)

    def producer_command(self) -> list[str]:
        return [str(VENV / "bin" / "python"), "-m", "peers.oban_producer", self.dsn, self.schema]

    def producer_cwd(self) -> Path:
        return BENCH

    def producer_env(self) -> dict[str, str]:
        return {"PYTHONPATH": python_path()}

    def reset(self) -> None:
        self.release()
        recreate_schema(self.schema)
        self._call({"op": "open"})  # oban.schema.install, then its pool

    def release(self) -> None:
        self._call({"op": "release"})

    def worker_command(self) -> list[str]:
        return [
            str(VENV / "bin" / "oban"),
            "start",
            "--dsn",
            self.dsn,
            "--prefix",
            self.schema,
            "--queues",
            f"{QUEUE}:{self.limit}",
            # import the worker class at start; without it the CLI greps every .py file under
            # its working directory (bench/, with its venvs) for cron workers
            "--cron-modules",
            "peers.oban_worker",
        ]


class ObanLimit10Adapter(ObanAdapter):
    name = "oban-limit10"
    label = "oban-py (Python 3.12), queue limit 10 (not one at a time)"
    limit = 10
    one_at_a_time = False


ADAPTERS: list[type[ObanAdapter]] = [ObanAdapter, ObanLimit10Adapter]
