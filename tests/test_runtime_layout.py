"""The dispatcher's parts (src/jobqueue/runtime/, issue 20 item 3) stay parts: none imports
the facade above it, no ``# type: ignore``, and no class or function grows back into the
738-line class they came from. (No import cycle: tests/test_import_graph.py.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parent.parent / "src" / "jobqueue" / "runtime"
MODULES = sorted(path for path in RUNTIME.glob("*.py") if path.name != "__init__.py")
ABOVE = (
    "jobqueue.queue",
    "jobqueue.client",
    "jobqueue.aio",
    "jobqueue.scheduler",
    "jobqueue.cli",
    "jobqueue.dashboard",
)


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports, by dotted name (``from jobqueue.runtime import x`` counts
    as ``jobqueue.runtime.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_a_part_imports_nothing_above_it(path: Path) -> None:
    imported = _imports(path)
    assert not [name for name in imported if name.startswith(ABOVE)], imported


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_a_part_is_readable(path: Path) -> None:
    text = path.read_text()
    assert "type: ignore" not in text
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1
            limit = 250 if isinstance(node, ast.ClassDef) else 60
            assert lines <= limit, f"{path.name}: {node.name} is {lines} lines"
