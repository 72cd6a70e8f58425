"""Every ``jobqueue ...`` line in docs/cli.md's ```bash blocks runs and exits 0.

Each line runs through bash, in order, in one temporary directory holding an application
module ``myapp/jobs.py`` (a ``JobQueue`` named ``queue`` with a ``contact-import`` worker), with
``JOBQUEUE_URL`` pointing at an SQLite file there; a ``--url`` the line gives is pointed at
that same file, so no server is needed. ``name=$(jobqueue ...)`` keeps what the command
printed (a job id) for the lines after it, as ``$name``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.docs_blocks import ROOT, blocks

PAGE = ROOT / "docs" / "cli.md"

# The app queue as an application would write it: with --app and --url the CLI points this
# very queue at the URL (its plugins loaded once), so nothing is registered twice.
APP = """\
from jobqueue import JobQueue

queue = JobQueue("sqlite:///jobs.db")


@queue.worker("contact-import")
def contact_import(job):
    return {"imported": 1}
"""


def _lines() -> list[str]:
    found = []
    for block in blocks(PAGE):
        if block.lang != "bash":
            continue
        for line in block.code.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if re.match(r"^(echo .*\| |\w+=\$\()?jobqueue ", command):
                found.append(command)
    return found


def test_cli_page_commands_run(tmp_path: Path) -> None:
    lines = _lines()
    assert len(lines) >= 6
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "jobs.py").write_text(APP)
    url = "sqlite:///jobs.db"
    env = {
        **os.environ,
        "JOBQUEUE_URL": url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for line in lines:
        command = re.sub(r"--url \S+", f"--url {url}", line)
        # `job=$(jobqueue submit ...)`: the id it prints is $job for the lines after it.
        assigned = re.match(r"^(\w+)=\$\((.*)\)$", command)
        if assigned:
            command = assigned.group(2)
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (
            f"{command!r} exited with {result.returncode}\n{result.stdout}{result.stderr}"
        )
        if assigned:
            env[assigned.group(1)] = result.stdout.strip()
