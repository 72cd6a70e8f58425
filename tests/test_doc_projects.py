"""The guides that build a project really yield one: install it, run its tests.

A page's blocks with a ``title="path"`` attribute are the files of its example project (see
tests/docs_blocks.py). Each such page is written into a fresh directory, installed with
``pip install --no-deps --no-build-isolation --target SITE`` (no network: setuptools comes from
this environment), and its ``tests/`` run with pytest against the installed copy
(``PYTHONPATH=SITE``, from another directory, so the source tree is not what is imported).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_blocks import ROOT, all_blocks, write_files

PROJECT_PAGES = {  # page -> the fewest tests its project must run
    "docs/writing-a-worker-plugin.md": 2,
    "docs/writing-a-backend.md": 20,  # the contract suite
}


def test_every_page_with_files_is_checked_here() -> None:
    with_files = {block.page.relative_to(ROOT).as_posix() for block in all_blocks() if block.title}
    assert with_files == set(PROJECT_PAGES)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("page", sorted(PROJECT_PAGES))
def test_guide_project_installs_and_its_tests_pass(page: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    files = write_files(ROOT / page, project)
    assert (project / "pyproject.toml").exists(), f"{page} has no pyproject.toml block"
    assert any(f.title and f.title.startswith("tests/") for f in files), f"{page}: no test"
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
            "--no-index", "--target", str(site), str(project),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    tests = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--rootdir", str(project), str(project / "tests"),
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    passed = re.search(r"(\d+) passed", tests.stdout)
    assert passed and int(passed[1]) >= PROJECT_PAGES[page], tests.stdout
