"""Assembling the Lua scripts and the Function library (backends/redis/scripts.py).

The first Redis queue of a process assembles every script: that must be one pass over
the lib, ``lua/lib/*.lua`` (a word set per definition), not a regex search per name and
text, which made every ``jobqueue`` command on Redis cost ~1.6 s of CPU before it sent a byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources

import pytest

from jobqueue.backends.redis import scripts


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    def clear() -> None:
        scripts.load_scripts.cache_clear()
        scripts.load_library.cache_clear()
        parsed = getattr(scripts, "_definitions", None)  # the parse cache, where there is one
        if parsed is not None:
            parsed.cache_clear()

    clear()
    yield
    clear()


def test_assembling_everything_scans_the_library_a_bounded_number_of_times(
    fresh_caches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    searches = 0
    search = re.search

    def counted(*args: object, **kwargs: object) -> object:
        nonlocal searches
        searches += 1
        return search(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(re, "search", counted)
    scripts.load_scripts(True)
    scripts.load_scripts(False)
    library = scripts.load_library()
    # Main before this change: ~500,000 searches (one per defined name per text looked at).
    assert searches < 1_000
    assert set(library.functions) == set(scripts.SCRIPT_NAMES)


LIB = """-- header text, dropped

local A, B
-- reads the clock
local function uses_now() return NOW end
local NOW
-- lazily
local function clock_now() return NOW end
local function helper()
  return uses_now()
end
local function unused() return 1 end
local function lazy() return clock_now() end
local TAIL
local function settle(x) return x end
local function begin(clock) A = 1 end
"""


def test_a_script_gets_the_definitions_it_uses_transitively_in_library_order() -> None:
    source, own, clock = scripts.assemble(LIB, "#!lua flags=allow-oom\nreturn helper()")
    assert source.startswith("#!lua flags=allow-oom\n")
    assert "unused" not in source and "lazy" not in source
    assert source.index("local function uses_now") < source.index("local function helper")
    assert "-- reads the clock\nlocal function uses_now" in source
    assert "header text" not in source
    assert own == {"helper", "uses_now", "NOW"}
    assert clock is True
    assert source.endswith("begin(true)\nreturn settle((function()\nreturn helper()\nend)())")


def test_a_clock_read_only_through_the_lazy_clock_does_not_read_it_up_front() -> None:
    source, own, clock = scripts.assemble(LIB, "return lazy() -- helper in a comment only")
    assert clock is False
    assert own == {"lazy", "clock_now", "NOW"}
    assert "helper" not in source.split("begin(false)")[0]
    assert "TAIL" not in own
    assert scripts.assemble(LIB, "return TAIL")[1] == {"TAIL"}


def test_the_scripts_that_read_no_clock_up_front() -> None:
    """The hot paths that need no "now" never pay for TIME: a submit of jobs due now, a read
    of one job, a delete. (A local named like a lib definition that reads the clock -- a
    submit's table called ``held`` -- once made submit read it on every call.)"""
    lib = scripts.read_lib()
    for name in ("submit", "get", "delete", "unidle", "watch"):
        assert not scripts.reads_clock(lib, scripts.read_script(name)), name


def test_the_lib_files_are_every_file_of_lua_lib() -> None:
    folder = resources.files(scripts.__package__) / "lua" / "lib"
    on_disk = {entry.name.removesuffix(".lua") for entry in folder.iterdir()}
    assert sorted(on_disk) == sorted(scripts.LIB_FILES)


def test_every_lib_definition_uses_only_names_defined_above_it() -> None:
    """A Lua local is seen only below its definition: used above it, the name would be an
    undefined global, failing only when that path runs. The lib is split into files by idea
    (LIB_FILES gives their order); this holds the order to the rule."""
    definitions, uses = scripts._definitions(scripts.read_lib())
    defined: set[str] = set()
    for names, _ in definitions:
        early = set().union(*(uses[name] for name in names)) - defined - set(names)
        assert not early, f"{names} uses {sorted(early)} before its definition"
        defined.update(names)
