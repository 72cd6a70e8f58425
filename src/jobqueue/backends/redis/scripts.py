"""The Lua scripts: each transition's file, preceded by the ``_lib.lua`` definitions it uses.

Scripts are assembled once per process, loaded once per server and called by SHA.

Each script file may begin with a Redis 7 shebang (``#!lua flags=allow-oom``): it stays the
first line of the assembled source. Servers that cannot read shebangs (Redis 6, fakeredis)
get the same scripts without that line (``load_scripts(shebang=False)``); they then apply
Redis's older rules (a script may write at maxmemory once its first write got through).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

SCRIPT_NAMES: tuple[str, ...] = ("submit", "claim", "complete", "fail", "release", "renew")
SCRIPT_NAMES += ("progress", "log", "recover", "remove", "get", "count", "poll", "watch", "list")
SCRIPT_NAMES += ("finish_many", "count_by_name")
SCRIPT_NAMES += ("cancel", "finish_cancelled", "retry", "retry_many", "purge", "pause", "resume")
SCRIPT_NAMES += ("paused", "heartbeat", "remove_dispatcher", "dispatchers", "maintain")
SCRIPT_NAMES += ("promote", "cancel_many", "outcomes")
SCRIPT_NAMES += ("claim_tick", "schedule_pause", "schedule_remove", "schedules")


@dataclass(frozen=True)
class Script:
    source: str
    sha: str


@functools.cache
def load_scripts(shebang: bool = True) -> dict[str, Script]:
    lib = read_script("_lib")
    scripts = {}
    for name in SCRIPT_NAMES:
        source = assemble(lib, read_script(name))
        if not shebang and source.startswith("#!"):
            source = source.split("\n", 1)[1]
        scripts[name] = Script(source, hashlib.sha1(source.encode()).hexdigest())
    return scripts


_DEFINITION = re.compile(r"local (?:function )?([A-Za-z_]\w*)")
_COMMENT = re.compile(r"--[^\n]*")


def assemble(lib: str, body: str) -> str:
    """``body`` preceded by the definitions of ``lib`` it uses, directly or through each
    other, in their order in ``lib``. A definition starts at a line beginning with
    ``local`` and owns the comment lines right above it; text before the first is dropped.
    A shebang line opening ``body`` opens the result, where Redis looks for it."""
    shebang = ""
    if body.startswith("#!"):
        shebang, body = body.split("\n", 1)
    definitions: list[tuple[str, list[str]]] = []
    comments: list[str] = []
    for line in lib.splitlines():
        match = _DEFINITION.match(line)
        if match:
            definitions.append((match.group(1), [*comments, line]))
            comments = []
        elif line.startswith("--"):
            comments.append(line)
        else:
            if definitions and line.strip() and not comments:
                definitions[-1][1].append(line)
            comments = []
    code = {name: _COMMENT.sub("", "\n".join(lines)) for name, lines in definitions}
    needed: set[str] = set()
    pending = [_COMMENT.sub("", body)]
    while pending:
        text = pending.pop()
        for name in code:
            if name not in needed and re.search(rf"\b{name}\b", text):
                needed.add(name)
                pending.append(code[name])
    used = ["\n".join(lines) for name, lines in definitions if name in needed]
    return "\n".join([line for line in [shebang] if line] + [*used, body])


def read_script(name: str) -> str:
    return (resources.files(__package__) / f"{name}.lua").read_text(encoding="utf-8")
