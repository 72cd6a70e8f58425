"""What users install is what is tested: the wheel carries every file the package needs.

The suite runs against an editable install, which reads src/ directly, so a Lua script, a
migration or a static asset left out of the package-data patterns would pass every other test
and break every installed copy. These tests build a real wheel (``pip wheel --no-build-isolation
--no-index``, from a copy of the project so the checkout is not written to) and compare its
file list with src/jobqueue. ``.ci/run`` goes further: it builds the sdist and the wheel with
``python -m build``, checks them with ``twine check`` and smoke-tests the installed wheel
(scripts/smoke_installed.py).
"""

from __future__ import annotations

import email
import hashlib
import shutil
import subprocess
import sys
import zipfile
from email.message import Message
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "jobqueue"
# The Apache License 2.0 as apache.org publishes it (LICENSE-2.0.txt, also Debian's
# /usr/share/common-licenses/Apache-2.0): the file must be that text, unmodified.
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def _not_shipped(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))}


def _project_copy(tmp: Path) -> Path:
    project = tmp / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(PACKAGE, project / "src" / "jobqueue", ignore=_not_shipped)
    return project


def _build_wheel(project: Path, out: Path) -> Path:
    built = subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
            "--no-index", "--wheel-dir", str(out), str(project),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = out.glob("jobqueue-*.whl")
    return wheel


def _package_files(root: Path) -> set[str]:
    """Every file of the package as a wheel names it (``jobqueue/...``), bytecode aside."""
    return {
        path.relative_to(root.parent).as_posix()
        for path in root.rglob("*")
        if path.is_file() and not _not_shipped("", [path.name]) and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    return _build_wheel(_project_copy(tmp), tmp / "dist")


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_every_file_under_src_jobqueue_is_in_the_wheel(wheel: Path) -> None:
    needed = _package_files(PACKAGE)
    assert any(n.endswith(".lua") for n in needed) and "jobqueue/py.typed" in needed
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    assert sorted(needed - shipped) == []


def test_files_moved_into_subfolders_are_still_packaged(tmp_path: Path) -> None:
    """Lua in lua/lib/, SQL migrations, scripts in static/js/...: the patterns are recursive,
    so a file moved deeper still ships (the old ``backends/redis/*.lua`` and
    ``dashboard/static/*`` patterns dropped all four of these)."""
    project = _project_copy(tmp_path)
    src = project / "src"
    moved = [
        "jobqueue/backends/redis/lua/lib/keys.lua",
        "jobqueue/backends/redis/lua/example.lua",
        "jobqueue/backends/sqlite/migrations/0010_example.sql",
        "jobqueue/dashboard/static/js/views/example.js",
    ]
    for name in moved:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text("-- moved\n")
    wheel = _build_wheel(project, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    assert sorted(set(moved) - shipped) == []
    assert sorted(_package_files(src / "jobqueue") - shipped) == []


def test_the_license_is_the_unmodified_apache_2_0_text(wheel: Path) -> None:
    assert hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_0_SHA256
    metadata = _metadata(wheel)
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("jobqueue-0.1.0.dist-info/licenses/LICENSE")
    assert shipped == (ROOT / "LICENSE").read_bytes()


def test_the_metadata_has_urls_classifiers_and_the_readme(wheel: Path) -> None:
    metadata = _metadata(wheel)
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert set(urls) >= {"Homepage", "Documentation", "Repository", "Changelog"}
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert metadata["Requires-Python"] == ">=3.10"
    minors = sorted(c for c in classifiers if c.startswith("Programming Language :: Python :: 3."))
    assert minors[0] == "Programming Language :: Python :: 3.10"
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "# jobqueue" in (metadata.get_payload() or "")


def test_the_changelog_has_an_unreleased_section_and_the_released_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## Unreleased" in text
    assert "## 0.1.0" in text
