"""docs/deploying.md: the systemd unit, the supervisor entry and the container command are
valid as shown, stop workers with SIGTERM, wait longer than the grace period, and run a
command line that ``jobqueue`` accepts."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobqueue.cli import parse_args
from tests.docs_blocks import ROOT, Block, blocks

PAGE = ROOT / "docs" / "deploying.md"
GRACE_SECONDS = 30.0  # JobQueue's default grace_seconds, which the page's examples rely on


def _block(lang: str, marker: str) -> Block:
    found = [b for b in blocks(PAGE) if b.lang == lang and marker in b.code]
    assert len(found) == 1, f"expected one ```{lang} block with {marker!r} in {PAGE}"
    return found[0]


def _settings(code: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in code.splitlines() if re.match(r"^\w+=", line))
    return {key: value for key, value in pairs}


def _parses(argv: list[str]) -> None:
    assert Path(argv[0]).name == "jobqueue", argv
    args = parse_args(argv[1:])
    assert args.command.__name__ == "cmd_worker"
    assert args.app == ["myapp.jobs:queue"] and args.url.startswith("redis://")


def test_systemd_unit_settings_and_command() -> None:
    unit = _settings(_block("ini", "[Service]").code)
    assert unit["KillSignal"] == "SIGTERM"
    assert float(unit["TimeoutStopSec"]) > GRACE_SECONDS
    _parses(shlex.split(unit["ExecStart"]))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    code = _block("ini", "[Service]").code
    # verify checks that the program exists: point it at this environment's jobqueue
    program = Path(sys.executable).with_name("jobqueue")
    assert program.exists()
    code = code.replace("/srv/myapp/.venv/bin/jobqueue", str(program))
    code = code.replace("WorkingDirectory=/srv/myapp", f"WorkingDirectory={tmp_path}")
    unit = tmp_path / "jobqueue-worker@1.service"
    unit.write_text(code)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 even for settings it ignores; it says so on stderr
    complaints = [line for line in result.stderr.splitlines() if unit.name in line]
    assert result.returncode == 0 and not complaints, result.stderr


def test_supervisor_entry() -> None:
    entry = _settings(_block("ini", "[program:").code)
    assert entry["stopsignal"] == "TERM"
    assert float(entry["stopwaitsecs"]) > GRACE_SECONDS
    _parses(shlex.split(entry["command"]))


def test_container_command() -> None:
    dockerfile = _block("dockerfile", "CMD").code
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert cmd, "the container runs an exec-form CMD"
    argv = json.loads(cmd[1])
    assert argv == [
        "jobqueue", "worker", "--app", "myapp.jobs:queue", "--url", "redis://redis:6379/0",
    ]  # fmt: skip
    _parses(argv)


def test_every_worker_command_line_parses() -> None:
    lines = [
        line.split("#")[0].strip()
        for block in blocks(PAGE)
        if block.lang == "bash"
        for line in block.code.splitlines()
    ]
    commands = [shlex.split(line) for line in lines if line.startswith("jobqueue ")]
    assert len(commands) >= 4
    for argv in commands:
        parse_args(argv[1:])
