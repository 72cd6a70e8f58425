"""Peers that run on Node (BullMQ, Kue): their producer and worker are small JS files in
``bench/node/``, installed with npm into ``bench/node/node_modules`` on first use.

The producer is one long-lived ``node`` process per adapter (as the Python adapters keep one
client): the harness sends it the payloads over a pipe, one JSON request per line
(``peers/piped.py``), and it submits them with the library's own calls, awaiting each, taking
each submit's wall-clock time just before the call (``common.js``: the same clock as
``time.time()``, to a few µs). The worker is ``node bench/node/<peer>_worker.js`` at
concurrency 1 and runs the body of ``bench/body.py`` rewritten in JS (``common.run``): the same
commands, the same records.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import ClassVar

from common import BENCH, RESULTS

from peers.piped import PipedAdapter

NODE_DIR = BENCH / "node"
MODULES = NODE_DIR / "node_modules"
STAMP = MODULES / ".bench-packages.sha256"
_verdict: dict[str, str | None] = {}  # "node": None if usable, else why not


def node() -> str:
    found = shutil.which("node")
    assert found is not None
    return found


def unavailable() -> str | None:
    """Why the Node peers cannot run here (None if they can), installing their packages into
    ``bench/node/node_modules`` first if needed — once per run."""
    if "node" not in _verdict:
        _verdict["node"] = _check()
    return _verdict["node"]


def _check() -> str | None:
    if shutil.which("node") is None:
        return "`node` is not on the PATH (install Node.js 18+ to measure them)"
    npm = shutil.which("npm")
    lock = NODE_DIR / "package-lock.json"
    sources = [NODE_DIR / "package.json", *([lock] if lock.exists() else [])]
    wanted = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return None
    if npm is None:
        return "`npm` is not on the PATH, so their packages cannot be installed"
    print(f"setting up {MODULES} (BullMQ, Kue) ...", flush=True)
    # no install scripts: none is needed (msgpackr's native part ships prebuilt), and the
    # install is then the same whatever the npm version's policy on them
    verb = "ci" if lock.exists() else "install"
    command = [npm, verb, "--ignore-scripts", "--no-audit", "--no-fund"]
    done = subprocess.run(command, cwd=NODE_DIR, capture_output=True, text=True)
    if done.returncode != 0:
        log = RESULTS / "logs" / "npm-install.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(done.stdout + done.stderr)
        return f"`{' '.join(command[:2])}` failed in {NODE_DIR} (see {log})"
    STAMP.write_text(wanted)
    return None


def package_versions() -> dict[str, str]:
    """Versions of the Node packages installed, and of Node itself."""
    found = {}
    for name, path in (
        ("bullmq", MODULES / "bullmq"),
        ("kue", MODULES / "kue"),
        ("ioredis", MODULES / "ioredis"),
        ("node_redis", MODULES / "kue" / "node_modules" / "redis"),  # Kue's own client
    ):
        with contextlib.suppress(OSError, ValueError, KeyError):
            found[name] = json.loads((path / "package.json").read_text())["version"]
    if shutil.which("node"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found["node"] = subprocess.run(
                [node(), "--version"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
    return found


class NodeAdapter(PipedAdapter):
    """A peer whose producer is a ``node`` process (``submit_script``) driven over a pipe and
    whose worker is ``node worker_script``."""

    requires_node: ClassVar[bool] = True
    submit_script: ClassVar[str]
    worker_script: ClassVar[str]

    @classmethod
    def unavailable(cls) -> str | None:
        return unavailable()

    def producer_command(self) -> list[str]:
        return [node(), str(NODE_DIR / self.submit_script)]

    def producer_cwd(self) -> Path:
        return NODE_DIR

    def producer_env(self) -> dict[str, str]:
        return {"BENCH_REDIS_URL": self.url}

    def worker_command(self) -> list[str]:
        return [node(), str(NODE_DIR / self.worker_script)]
