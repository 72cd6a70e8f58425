"""Shared helpers of the reliability suite: real Redis namespaces, throwaway redis-servers,
dispatcher processes that are always cleaned up, and bounded waits.

Every test works in a fresh namespace on the shared Redis (``tests.backends.redis_fixtures``)
or on a redis-server it starts itself; nothing here ever flushes a database or touches keys
outside its own namespace.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobqueue.backend import BackendOptions
from jobqueue.backends.redis import RedisBackend
from tests.backends.redis_fixtures import (
    delete_namespace,
    free_port,
    new_namespace,
    ping,
    redis_url,
    start_redis_server,
    stop_process,
)

__all__ = ["new_namespace", "redis_url"]

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.reliability.apps:queue"


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` (another process's progress: no event to wait on) until it returns
    something truthy; fail after ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def redis_client(queue: Any) -> Any:
    """The Redis client under a queue: its store's (under the core's ``Engine``)."""
    return getattr(queue.backend, "store", queue.backend).client


def key(namespace: str, suffix: str) -> str:
    """A key of the test's own namespace (``delete_namespace`` removes it with the rest)."""
    return f"jq:{{{namespace}}}:{suffix}"


def app_env(url: str, namespace: str, **settings: float | int) -> dict[str, str]:
    """Environment for a dispatcher process running :mod:`tests.reliability.apps`."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "JQ_REL_URL": url,
        "JQ_REL_NAMESPACE": namespace,
    }
    env.pop("JOBQUEUE_URL", None)
    for name, value in settings.items():
        env[f"JQ_REL_{name.upper()}"] = str(value)
    return env


def worker_command(*extra: str, app: str = APP) -> list[str]:
    """``python -m jobqueue --app tests.reliability.apps:queue worker`` (the real CLI), or
    another ``app``."""
    command = [sys.executable, "-m", "jobqueue", "--app", app, "worker"]
    return [*command, "--log-level", "WARNING", *extra]


class Processes:
    """Child processes of one test; every one is killed and reaped at teardown, even on failure
    (a SIGSTOPped one is continued first so that it can die)."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}

    def start(self, args: list[str], env: dict[str, str], label: str) -> subprocess.Popen[bytes]:
        log = self.logdir / f"{label}-{len(self.started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=out)
        self.started.append(process)
        self.logs[process.pid] = log
        return process

    def log_of(self, process: subprocess.Popen[bytes]) -> str:
        return self.logs[process.pid].read_text(errors="replace")

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.started if p.poll() is None]

    def cleanup(self) -> None:
        for process in self.started:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGCONT)
                process.kill()
        for process in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    group = Processes(tmp_path)
    try:
        yield group
    finally:
        group.cleanup()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A fresh namespace on the shared Redis; its keys (and only those) are deleted after."""
    ns = new_namespace()
    yield ns
    client = redis.Redis.from_url(redis_url)
    try:
        delete_namespace(client, ns)
    finally:
        client.close()


class OwnRedis:
    """A redis-server this test owns: its own loopback port and directory, restartable with
    the same data (``appendonly yes``, ``appendfsync always``: every acknowledged write is on
    disk before the reply)."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.restarts = 0

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        self.process = start_redis_server(self.workdir, self.port, *self.extra)

    def stop(self) -> None:
        """SIGTERM: Redis fsyncs its append-only file and exits; wait until it has."""
        if self.process is not None:
            stop_process(self.process)
            assert not ping(self.url)

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=10)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


DURABLE = ("--appendonly", "yes", "--appendfsync", "always")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A durable redis-server of this test's own, killed at teardown whatever happened."""
    server = OwnRedis(tmp_path / "redis", *DURABLE)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def open_backend(url: str, namespace: str, **options: Any) -> RedisBackend:
    return RedisBackend.from_url(url, BackendOptions(namespace=namespace, **options))
