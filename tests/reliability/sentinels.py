"""A primary, a replica and (optionally) three sentinels of this test's own: redis-server
processes on free loopback ports in a temporary directory, every one killed at teardown.

The replicas are made to lag on demand with ``CLIENT PAUSE WRITE`` on them: they keep
answering the sentinels (so they stay eligible for promotion) but stop applying the primary's
stream; what they read but had not applied is dropped when their link to a dead primary
closes -- exactly replicas that had not caught up when the primary died. A second replica
(``replica-priority 0``: never promoted) is there so that the new primary has a replica too,
as a deployment would (``replicas=1`` then still finds one after the failover)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.backends.redis_fixtures import free_port, start_redis_server, stop_process, unavailable
from tests.reliability.support import wait_until

SERVICE = "jqmaster"
FAST_SYNC = ("--repl-diskless-sync-delay", "0", "--repl-diskless-load", "disabled")


class ReplicatedRedis:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.primary_port = free_port()
        self.replica_port = free_port()
        self.spare_port = free_port()
        self.sentinel_ports: list[int] = []
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- servers --------------------------------------------------------------------------

    def start_servers(self) -> None:
        self.processes["primary"] = start_redis_server(
            self.workdir / "primary", self.primary_port, *FAST_SYNC
        )
        self.processes["replica"] = start_redis_server(
            self.workdir / "replica",
            self.replica_port,
            *FAST_SYNC,
            "--replicaof",
            "127.0.0.1",
            str(self.primary_port),
        )
        self.processes["spare"] = start_redis_server(
            self.workdir / "spare",
            self.spare_port,
            *FAST_SYNC,
            "--replica-priority",
            "0",
            "--replicaof",
            "127.0.0.1",
            str(self.primary_port),
        )
        for port in (self.replica_port, self.spare_port):
            replica = self.client(port)
            with contextlib.closing(replica):
                wait_until(
                    lambda r=replica: r.info("replication").get("master_link_status") == "up",
                    20,
                    "the replicas' first sync",
                )

    def start_sentinels(self, count: int = 3) -> None:
        server = shutil.which("redis-server")
        if server is None:
            unavailable("no redis-server on PATH")
        for n in range(count):
            port = free_port()
            workdir = self.workdir / f"sentinel{n}"
            workdir.mkdir(parents=True)
            config = workdir / "sentinel.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {workdir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 4000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            with (workdir / "sentinel.log").open("wb") as log:
                self.processes[f"sentinel{n}"] = subprocess.Popen(
                    [server, str(config), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
                )
            self.sentinel_ports.append(port)
        for port in self.sentinel_ports:
            sentinel = self.client(port)
            with contextlib.closing(sentinel):
                wait_until(lambda s=sentinel: _sees_replica(s), 20, f"sentinel {port} ready")

    # -- what the test does ---------------------------------------------------------------

    def url(self, query: str = "") -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0" + (f"?{query}" if query else "")

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_connect_timeout=2, socket_timeout=10)

    def lag_replica(self) -> None:
        """The replicas stop applying the primary's writes (for at most 60 s)."""
        for port in (self.replica_port, self.spare_port):
            with contextlib.closing(self.client(port)) as replica:
                replica.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")

    def unpause_replica(self) -> None:
        for port in (self.replica_port, self.spare_port):
            with contextlib.closing(self.client(port)) as replica:
                replica.execute_command("CLIENT", "UNPAUSE")

    def kill_primary(self) -> None:
        process = self.processes["primary"]
        process.kill()  # SIGKILL: no shutdown, nothing more sent to the replica
        process.wait()

    def master_port(self) -> int | None:
        """The port the first sentinel names as the primary to clients now (``SENTINEL
        MASTER``, what redis-py reads: it switches at the end of a failover, when
        GET-MASTER-ADDR-BY-NAME already names the replica being promoted)."""
        with contextlib.closing(self.client(self.sentinel_ports[0])) as sentinel:
            try:
                return int(sentinel.sentinel_master(SERVICE)["port"])
            except (redis.RedisError, KeyError):
                return None

    def stop(self) -> None:
        for process in self.processes.values():
            stop_process(process)


def _sees_replica(sentinel: redis.Redis) -> bool:
    try:
        state = sentinel.sentinel_master(SERVICE)
    except redis.RedisError:
        return False
    return int(state.get("num-slaves", 0)) >= 2 and int(state.get("num-other-sentinels", 0)) >= 2


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[ReplicatedRedis]:
    group = ReplicatedRedis(tmp_path / "servers")
    try:
        group.start_servers()
        yield group
    finally:
        group.stop()
