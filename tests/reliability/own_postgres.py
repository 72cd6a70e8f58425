"""A PostgreSQL server of the test's own, for tests that stop and restart it.

``initdb`` into a fresh temporary directory, trust authentication, a free loopback port and
the socket in that directory; ``pg_ctl`` starts, restarts (``-m fast``) and stops it. The
server never shares anything with the machine's own PostgreSQL (127.0.0.1:5432), and is
stopped (``-m immediate`` if need be) and its directory removed at teardown, whatever
happened.

PostgreSQL refuses to run as root: when the tests run as root, every server command runs as
the ``postgres`` user (``runuser -u postgres --``), and the directory is given to that user.
The binaries are found in ``$JOBQUEUE_TEST_PG_BINDIR``, else ``pg_config --bindir``, else the
newest ``/usr/lib/postgresql/*/bin``; when none is found the test is skipped -- or fails
under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.postgres_fixtures import unavailable
from tests.backends.redis_fixtures import free_port

SERVER_USER = "postgres"
"""Who runs the server when the tests run as root."""
START_TIMEOUT = 60


def bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are (see the module's docstring), or None."""
    given = os.environ.get("JOBQUEUE_TEST_PG_BINDIR")
    candidates = [Path(given)] if given else []
    if shutil.which("pg_config"):
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=False
        )
        if found.returncode == 0:
            candidates.append(Path(found.stdout.strip()))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


class OwnPostgres:
    """One private server: ``start``, ``restart``, ``stop``, ``kill`` (teardown)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.as_user: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SERVER_USER)
            except KeyError:
                unavailable(f"running as root and there is no {SERVER_USER!r} user to run it")
            self.as_user = ["runuser", "-u", SERVER_USER, "--"]
        # Not under pytest's tmp_path (nor $TMPDIR) when root: their parents may be private.
        self.dir = Path(tempfile.mkdtemp(prefix="jq-own-pg-", dir="/tmp" if owner else None))
        if owner is not None:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.restarts = 0
        self.running = False

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
            "--no-sync",  # the cluster's creation only; the server itself fsyncs as usual
        )  # fmt: skip

    def _run(self, program: str, *args: str) -> str:
        done = subprocess.run(
            [*self.as_user, str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT + 30,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{program} {' '.join(args)} exited with {done.returncode}:\n{done.stdout}"
                f"{done.stderr}\n--- server log\n{self.server_log()}"
            )
        return done.stdout

    def _ctl(self, *args: str) -> None:
        # -l: the server's output goes to its log (pg_ctl's own pipes are not held open).
        wait = ["-w", "-t", str(START_TIMEOUT)]
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), *wait, *args)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._ctl("-o", options, "start")
        self.running = True

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session is ended and the server is back (same
        options) when this returns."""
        self._ctl("-m", "fast", "restart")
        self.restarts += 1

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: every session is ended, the data checkpointed."""
        self._ctl("-m", "fast", "stop")
        self.running = False

    def kill(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self._ctl("-m", "immediate", "stop")
        self.running = False

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """A started private server; stopped and removed at teardown, whatever happened."""
    found = bindir()
    if found is None:
        unavailable("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    server = OwnPostgres(found)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.kill()
        server.remove()
