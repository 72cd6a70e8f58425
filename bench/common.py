"""What every benchmark command shares: its own venv, its own Redis, worker processes, stats."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
RESULTS = BENCH / "results"
REQUIREMENTS = BENCH / "requirements.txt"


# -- the benchmark's own environment ---------------------------------------------------------


def ensure_venv() -> None:
    """Re-run this command inside ``bench/.venv``, creating or refreshing it first.

    The venv holds jobqueue (editable, with hiredis and psycopg) and the peers pinned in
    ``requirements.txt``; it is rebuilt when that file or pyproject.toml changes."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    stamp = VENV / ".requirements.sha256"
    wanted = hashlib.sha256(
        REQUIREMENTS.read_bytes() + (ROOT / "pyproject.toml").read_bytes()
    ).hexdigest()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        print(f"setting up {VENV} (peers and jobqueue) ...", flush=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run(
            [*pip, "-r", str(REQUIREMENTS), "-e", f"{ROOT}[hiredis,postgres]"], check=True
        )
        stamp.write_text(wanted)
    os.execv(str(python), [str(python), *sys.argv])


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in (
        "jobqueue",
        "rq",
        "huey",
        "dramatiq",
        "celery",
        "arq",
        "saq",
        "redis",
        "hiredis",
        "procrastinate",
        "pgqueuer",
        "chancy",
        "psycopg",
        "psycopg-pool",
    ):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    from peers.node_peer import package_versions  # BullMQ, Kue, their clients, Node

    found.update(package_versions())
    from peers.oban_adapter import package_versions as oban_versions  # in bench/.venv-py312

    found.update(oban_versions())
    return found


def use_jobqueue_source(src: str | None, rev: str | None = None) -> None:
    """Measure the jobqueue package found in ``src`` (a folder holding ``jobqueue/``), or the
    one of git revision ``rev`` (exported to a temporary folder), instead of the working tree.
    Useful while the working tree is being edited, and to compare two commits."""
    if rev:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", rev],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        target = Path(tempfile.mkdtemp(prefix=f"jobqueue-bench-{commit}-"))
        atexit.register(shutil.rmtree, target, ignore_errors=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        os.environ["BENCH_JOBQUEUE_COMMIT"] = commit
        src = str(target / "src")
    if src:
        os.environ["BENCH_JOBQUEUE_SRC"] = str(Path(src).resolve())
    if os.environ.get("BENCH_JOBQUEUE_SRC"):
        sys.path.insert(0, os.environ["BENCH_JOBQUEUE_SRC"])


def python_path() -> str:
    """PYTHONPATH for worker processes: the bench modules, and the jobqueue source chosen."""
    paths = [str(BENCH)]
    if os.environ.get("BENCH_JOBQUEUE_SRC"):
        paths.insert(0, os.environ["BENCH_JOBQUEUE_SRC"])
    return os.pathsep.join(paths)


def jobqueue_source() -> dict[str, str]:
    """Where the measured jobqueue comes from, and the git commit of the checkout."""
    import jobqueue

    where = Path(jobqueue.__file__).resolve().parent
    found = {"path": str(where)}
    rev = subprocess.run(
        ["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(where), "status", "--porcelain", "--", "."],
        capture_output=True,
        text=True,
    )
    if os.environ.get("BENCH_JOBQUEUE_COMMIT"):
        found["commit"] = os.environ["BENCH_JOBQUEUE_COMMIT"]
    elif rev.returncode == 0:
        found["commit"] = rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    return found


# -- a private Redis -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of our own on a free loopback port, no persistence; never the shared
    one on 6379."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="jobqueue-bench-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self.client: Any = None

    def __enter__(self) -> RedisServer:
        import redis

        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        self.client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def version(self) -> str:
        return str(self.client.info("server")["redis_version"])

    def flush(self) -> None:
        self.client.flushdb()

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def reset_stats(self) -> None:
        self.client.config_resetstat()

    def command_calls(self) -> dict[str, int]:
        stats = self.client.info("commandstats")
        return {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in stats.items()}


# -- worker processes ------------------------------------------------------------------------


class WorkerProcess:
    """A library's worker started as a real process (its own session, so its children are
    stopped with it). Its output goes to a log file under bench/results/logs."""

    def __init__(self, command: Sequence[str], env: dict[str, str], log_name: str) -> None:
        logs = RESULTS / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{log_name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            list(command),
            env={**os.environ, **env, "PYTHONPATH": python_path()},
            cwd=BENCH,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the worker and its live descendants."""
        return sum(_cpu_seconds(pid) for pid in _process_tree(self.pid))

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        # a worker's leftover children (same session) must not outlive it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def process_cpu_seconds(pid: int) -> float:
    return _cpu_seconds(pid)


# -- numbers ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def spread(values: Sequence[float | None]) -> dict[str, float] | None:
    """Median, min and max of the rounds that produced a value."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"median": statistics.median(present), "min": min(present), "max": max(present)}


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "load_before": load_average(),
    }


def pace(start: float, index: int, interval: float) -> None:
    """Sleep until ``start + index * interval`` (perf_counter time)."""
    delay = start + index * interval - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
