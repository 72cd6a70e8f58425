"""Real-Redis fixtures for the Redis backend tests.

``JOBQUEUE_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``) names the server. When
nothing answers there, a ``redis-server`` from PATH is started on a free loopback port; when
there is none, the real-Redis tests are skipped -- or fail under ``CI=true``, so CI can never
skip them silently. Tests use a fresh namespace each and delete only their own keys: never
FLUSHDB or FLUSHALL, the server may be shared.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import redis

from jobqueue.backend import Backend
from jobqueue.engine import Engine

DEFAULT_URL = "redis://127.0.0.1:6379/15"


def new_namespace() -> str:
    return "test-" + secrets.token_hex(6)


def delete_namespace(client: Any, namespace: str) -> int:
    """Delete every key of one namespace (SCAN MATCH, nothing else is touched)."""
    deleted = 0
    batch: list[Any] = []
    for key in client.scan_iter(match=f"jq:{{{namespace}}}:*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += client.delete(*batch)
            batch = []
    if batch:
        deleted += client.delete(*batch)
    return deleted


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: real-Redis tests must run, not be skipped)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        with contextlib.closing(client):
            return bool(client.ping())
    except redis.RedisError:
        return False


def start_redis_server(workdir: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """Start a throwaway redis-server on a loopback port and wait until it answers."""
    server = shutil.which("redis-server")
    if server is None:
        unavailable("no redis-server on PATH")
    workdir.mkdir(parents=True, exist_ok=True)
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    args += ["no", "--dir", str(workdir), "--daemonize", "no", *extra]
    log = (workdir / "redis.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not ping(url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            unavailable(f"redis-server on port {port} did not start (see {workdir}/redis.log)")
        time.sleep(0.05)
    return process


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("JOBQUEUE_TEST_REDIS_URL", DEFAULT_URL)
    if ping(url):
        yield url
        return
    if shutil.which("redis-server") is None:
        unavailable(f"no Redis answers at {url} and there is no redis-server on PATH to start")
    port = free_port()
    process = start_redis_server(tmp_path_factory.mktemp("redis"), port)
    try:
        yield f"redis://127.0.0.1:{port}/15"
    finally:
        stop_process(process)


def verbs(backend: Backend | Engine) -> Engine:
    """The verbs of a job's life over a Redis store: the core's (``Engine``) since the
    storage seam; an Engine (a queue's backend) is returned as it is."""
    return backend if isinstance(backend, Engine) else Engine(backend)
