"""The Lua code: one Redis Function library of every transition (Redis 7), or scripts.

The scripts are ``lua/NAME.lua``; the definitions they share (Redis has no ``require``) are
``lua/lib/*.lua``, one file per idea, read in the order of :data:`LIB_FILES` (a Lua local is
seen only below its definition) as one text, "the lib". On Redis 7 the backend loads
:func:`load_library` once per server and calls each transition's function by name
(``FCALL``): the lib's definitions are made once, when the library loads, rather than on
every call. A server without Functions gets scripts: each transition's file preceded by only
the lib's definitions it uses, directly or through another definition (a Lua script
re-creates its locals and closures on every call, so an unused one is pure cost), assembled
once per process, loaded once per server and called by SHA. A definition starts at a line
beginning with ``local`` (it may declare several names) and owns the comment lines right
above it; each lib file opens with a comment on what it holds, kept apart by a blank line.

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

from jobqueue.backends.redis.codec import STATE_CODES
from jobqueue.job import LIVE_STATES

SCRIPT_NAMES: tuple[str, ...] = ("submit", "get", "idle", "unidle", "watch", "count_by_name")
SCRIPT_NAMES += ("pause", "resume", "paused", "heartbeat", "remove_dispatcher", "dispatchers")
SCRIPT_NAMES += ("outcomes", "claim_tick", "schedule_pause", "schedule_remove", "schedules")
# The storage seam's (jobqueue.backend.Backend): the guarded write and what it needs beside.
SCRIPT_NAMES += ("apply", "scan", "expired", "delete", "housekeep", "annotate")
# Name groups (groups.py) and the layout upgrade.
SCRIPT_NAMES += ("group", "layout")


# The scripts that only read: as functions they carry ``no-writes`` (Redis refuses any write
# they would try, and they may run on a replica).
READ_ONLY: frozenset[str] = frozenset(
    ("get", "count_by_name", "dispatchers", "outcomes", "paused", "schedules", "scan", "expired")
)
# The lib's files, in the order their definitions are made: each uses only those above it.
LIB_FILES: tuple[str, ...] = ("call", "keys", "jobs", "counts", "numbers", "ready", "leases")
LIB_FILES += ("handoff", "store", "history", "finish", "guards", "flows", "moves")
LIB_FILES += ("housekeeping",)
LIB_FILES += ("claim",)
# The names a script must be sent the policy tail for (see lua/lib/call.lua).
_TAIL_NAMES = frozenset(("TAIL", "MAX_HISTORY", "OUTCOME_MINUTES"))


@dataclass(frozen=True)
class Script:
    source: str
    sha: str
    tail: bool
    """Whether the script reads the policy tail, so that calls append it."""


@functools.cache
def load_scripts(shebang: bool = True) -> dict[str, Script]:
    lib = read_lib()
    scripts = {}
    for name in SCRIPT_NAMES:
        source, needed, _ = assemble(lib, read_script(name))
        if not shebang and source.startswith("#!"):
            source = source.split("\n", 1)[1]
        sha = hashlib.sha1(source.encode()).hexdigest()
        scripts[name] = Script(source, sha, bool(needed & _TAIL_NAMES))
    return scripts


@dataclass(frozen=True)
class Library:
    """The Redis Function library: its source (``FUNCTION LOAD``), and per script the name of
    its function (``FCALL``)."""

    name: str
    source: str
    functions: dict[str, str]


@functools.cache
def load_library() -> Library:
    """Every script as one function of one library, the lib at its top level: loaded
    once, its definitions serve every call. The library and function names carry a hash of
    the source, so a server holding the library under that name holds this very code
    (another version, of another process, sits beside it under its own names). A callback
    binds its ``args`` to the library's ``ARGV`` (Functions have no ARGV global; scripts
    read that name, see lua/lib/call.lua) and runs ``begin``, then the script's body."""
    lib = read_lib()
    parts = ["local ARGV -- the call's arguments, bound by each callback", lib]
    for name in SCRIPT_NAMES:
        body = read_script(name)
        flags: list[str] = []
        if body.startswith("#!"):  # the script's shebang flags become the function's
            shebang, body = body.split("\n", 1)
            flags = shebang.partition("flags=")[2].split(",") if "flags=" in shebang else []
        if name in READ_ONLY:
            flags.append("no-writes")
        quoted = ", ".join(f"'{flag}'" for flag in flags)
        begin = f"begin({'true' if reads_clock(lib, body) else 'false'})"
        parts.append(
            f"redis.register_function{{function_name = 'jq_{name}_@HASH@', flags = {{{quoted}}},"
            f" callback = function(_, args)\nARGV = args\n{begin}\n{_settled(body)}\nend}}\n"
        )
    template = "\n".join(parts)
    digest = hashlib.sha1(template.encode()).hexdigest()[:12]
    source = f"#!lua name=jobqueue_{digest}\n" + template.replace("@HASH@", digest)
    functions = {name: f"jq_{name}_{digest}" for name in SCRIPT_NAMES}
    return Library(f"jobqueue_{digest}", source, functions)


_DEFINITION = re.compile(r"local (?:function )?([A-Za-z_]\w*(?:, *[A-Za-z_]\w*)*)")
_COMMENT = re.compile(r"--[^\n]*")


# Definitions that read NOW only after ``clock_now`` (which reads it on first use): a script
# that reaches the clock only through these starts with ``begin(false)`` (submit reads TIME
# only for a delayed job, or to hand a job to an idle waiter).
_LAZY_CLOCK = frozenset(("clock_now", "signal"))
_CLOCK_NAMES = frozenset(("NOW", "NOWS"))


def reads_clock(lib: str, body: str) -> bool:
    """Whether ``body`` reads NOW up front, directly or through ``lib``'s definitions (not
    counting the lazy ``clock_now``)."""
    return assemble(lib, body)[2]


def assemble(lib: str, body: str) -> tuple[str, set[str], bool]:
    """``body`` as a script: ``begin`` then ``body``, preceded by the definitions of ``lib``
    these use, directly or through each other, in their order in ``lib``; the names
    ``body`` itself needs (without ``begin``'s), which say whether it reads the policy tail;
    and whether it reads the clock up front (``begin(true)``).
    A definition starts at a line beginning with ``local`` and owns the comment lines right
    above it; text before the first is dropped. A shebang line opening ``body`` opens the
    result, where Redis looks for it."""
    shebang = ""
    if body.startswith("#!"):
        shebang, body = body.split("\n", 1)
    definitions, uses = _definitions(lib)

    def needs(text: str, stop: frozenset[str] = frozenset()) -> set[str]:
        """The names ``text`` uses, and those their definitions use (not past ``stop``)."""
        needed: set[str] = set()
        pending = _words(_COMMENT.sub("", text)) & uses.keys()
        while pending:
            name = pending.pop()
            needed.add(name)
            if name not in stop:
                pending |= uses[name] - needed
        return needed

    own = needs(body)
    clock = bool(_CLOCK_NAMES & needs(body, _LAZY_CLOCK))
    begin = f"begin({'true' if clock else 'false'})"
    wrapped = _settled(body)
    needed = needs(begin + "\n" + wrapped)
    used = [text for names, text in definitions if needed.intersection(names)]
    source = "\n".join([line for line in [shebang] if line] + [*used, begin, wrapped])
    return source, own, clock


# A name is used where it stands as a whole word (as ``\bname\b`` would find it).
_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text))


@functools.cache
def _definitions(lib: str) -> tuple[list[tuple[list[str], str]], dict[str, frozenset[str]]]:
    """``lib`` split once into its definitions (names, text with the comments above) and,
    per defined name, the defined names its code past the names uses: one pass of word sets,
    where a search per name and text made the first Redis queue of a process cost ~1.6 s."""
    # Per definition: its names, its lines, and its code past the names (what it uses).
    parsed: list[tuple[list[str], list[str], list[str]]] = []
    comments: list[str] = []
    for line in lib.splitlines():
        match = _DEFINITION.match(line)
        if match:
            names = [name.strip() for name in match.group(1).split(",")]
            parsed.append((names, [*comments, line], [line[match.end() :]]))
            comments = []
        elif line.startswith("--"):
            comments.append(line)
        else:
            if parsed and line.strip() and not comments:
                parsed[-1][1].append(line)
                parsed[-1][2].append(line)
            comments = []
    defined = {name for names, _, _ in parsed for name in names}
    uses = {
        name: frozenset(_words(_COMMENT.sub("", "\n".join(code))) & defined)
        for names, _, code in parsed
        for name in names
    }
    return [(names, "\n".join(lines)) for names, lines, _ in parsed], uses


def _settled(body: str) -> str:
    """``body`` run as a function whose result goes through ``settle`` (in
    lua/lib/counts.lua), which writes the counter changes the call noted."""
    return f"return settle((function()\n{body}\nend)())"


def read_script(name: str) -> str:
    return (resources.files(__package__) / "lua" / f"{name}.lua").read_text(encoding="utf-8")


@functools.cache
def read_lib() -> str:
    """The lib: ``lua/lib/*.lua`` in the order of ``LIB_FILES``, a blank line between files."""
    folder = resources.files(__package__) / "lua" / "lib"
    lib = "\n".join((folder / f"{name}.lua").read_text(encoding="utf-8") for name in LIB_FILES)
    # Which states hold a unique key is the core's (JobState.is_live), not restated in Lua.
    live = "".join(sorted(STATE_CODES[state] for state in LIVE_STATES))
    return lib.replace("@LIVE_STATES@", live)
