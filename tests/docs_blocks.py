"""Fenced code blocks of README.md and docs/*.md, for the tests that run them.

A block is a fence at the start of a line: three backticks, a language, and optionally
mkdocs-material attributes, e.g. ``title="contacts_jobs/plugin.py"``. A block with a
``title`` is a *file* of the page's example project, written at that path; a block without
one is a *sample*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_OPEN = re.compile(r"^```(?P<lang>[\w+-]*)(?P<attrs>[^`]*)$")
_TITLE = re.compile(r'\btitle="(?P<title>[^"]+)"')


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    title: str | None  # the file the block is, if it is one
    code: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT).as_posix()}:{self.line}"


def blocks(page: Path) -> list[Block]:
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = _OPEN.match(lines[index])
        if match is None:
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        assert index < len(lines), f"{page}:{start + 1}: unclosed code fence"
        index += 1
        if not match["lang"]:  # an unlabelled fence (a diagram): never run
            continue
        title = _TITLE.search(match["attrs"])
        found.append(
            Block(
                page=page,
                line=start + 1,
                lang=match["lang"],
                title=title["title"] if title else None,
                code="\n".join(body) + "\n",
            )
        )
    return found


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in blocks(page)]


def write_files(page: Path, into: Path) -> list[Block]:
    """Write the page's titled blocks as files under ``into``; return them."""
    files = [block for block in blocks(page) if block.title]
    for block in files:
        target = into / block.title  # type: ignore[operator]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code, encoding="utf-8")
    return files
