"""The package's import graph (issue 20 item 8): no cycle, and the core names no backend.

Every import counts, at module level, under ``TYPE_CHECKING`` or inside a function: a
reader following names meets each of them, so a cycle through any is a cycle to them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jobqueue

PACKAGE = Path(jobqueue.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(path: Path) -> Iterator[str]:
    """The package's modules that ``path`` imports (a name from a package's ``__init__``
    counts as that package; a submodule named in ``from package import sub`` as itself)."""
    here = module_name(path)
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            if base not in MODULES:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if sub in MODULES else base


GRAPH = {name: set(imported(path)) - {name} for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle() -> None:
    # main had queue <-> aio <-> scheduler, hooks <-> backends and dispatcher <->
    # slot_supervisor (now src/jobqueue/runtime/, in parts).
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]


def test_the_core_names_no_backend() -> None:
    """Only the backends themselves and the built-in plugin (``jobqueue.backends``, which
    registers them by URL scheme) name a backend module; the facades, the scheduler and the
    asyncio face ask through the plugin hooks. (main: aio imported RedisBackend.)"""
    core = {
        name
        for name in MODULES
        if not name.startswith(("jobqueue.backends", "jobqueue.testing", "jobqueue.cli"))
    }
    naming = {
        (name, target)
        for name in core
        for target in GRAPH[name]
        if target.startswith("jobqueue.backends.")
    }
    assert naming == set()


def test_importing_jobqueue_loads_no_backend() -> None:
    """memory:// and sqlite:// users do not pay for the Redis client at import time."""
    code = (
        "import sys, jobqueue, jobqueue.aio\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('jobqueue.backends.', 'redis')))\n"
        "print(loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
