"""A primary, a replica and (optionally) three sentinels of this test's own: redis-server
processes on free loopback ports in a temporary directory, every one killed at teardown.

The replica is made to lag on demand with ``CLIENT PAUSE WRITE`` on it: it keeps answering
the sentinels (so it stays eligible for promotion) but stops applying the primary's stream;
what it read but had not applied is dropped when its link to a dead primary closes --
exactly a replica that had not caught up when the primary died.

A second replica, the spare (``replica-priority 0``: never promoted), replicates from the
replica, not from the primary, so that the new primary has a replica after a failover (as a
deployment would: ``replicas=1`` then still finds one) without the spare ever answering the
primary's ``WAIT``. ``WAIT N`` counts any N replicas of the primary: a never-promoted one
beside the replica would acknowledge writes the promoted replica lacks (with the two paused
one after the other, the submits acknowledged in between were lost -- see
docs/deploying.md, replica acknowledgement). Chained, it applies only what the replica
applied, so it lags with it and needs no pause of its own."""

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
        # The spare follows the replica (see the module docstring): started once the replica
        # has synced, so that its own first sync does not wait for a retry.
        chain = (("replica", self.replica_port, self.primary_port, ()),)
        chain += (("spare", self.spare_port, self.replica_port, ("--replica-priority", "0")),)
        for name, port, source, extra in chain:
            self.processes[name] = start_redis_server(
                self.workdir / name,
                port,
                *FAST_SYNC,
                *extra,
                "--replicaof",
                "127.0.0.1",
                str(source),
            )
            replica = self.client(port)
            with contextlib.closing(replica):
                wait_until(
                    lambda r=replica: r.info("replication").get("master_link_status") == "up",
                    20,
                    f"the {name}'s first sync",
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
        """The replica (and so the spare behind it) stops applying the primary's writes (for
        at most 60 s). One pause: from its reply on, no replica acknowledges a new write."""
        with contextlib.closing(self.client(self.replica_port)) as replica:
            replica.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")

    def unpause_replica(self) -> None:
        with contextlib.closing(self.client(self.replica_port)) as replica:
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
    return int(state.get("num-slaves", 0)) >= 1 and int(state.get("num-other-sentinels", 0)) >= 2


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[ReplicatedRedis]:
    group = ReplicatedRedis(tmp_path / "servers")
    try:
        group.start_servers()
        yield group
    finally:
        group.stop()
