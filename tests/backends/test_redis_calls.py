"""The load-and-retry plan (backends/redis/calls.py) that the sync and the asyncio Redis
backends both drive: what a refused call is cured by, without any Redis."""

from __future__ import annotations

import redis.exceptions

from jobqueue.backend import BackendOptions
from jobqueue.backends.redis.calls import CALL_ATTEMPTS, Calls, Load


def _calls(functions: bool = True) -> Calls:
    prefix = "jq:{t}:"
    return Calls(BackendOptions(), prefix, (prefix + "id",), functions=functions, server_clock=True)


def test_a_missing_library_is_loaded_and_the_call_made_again() -> None:
    calls = _calls()
    cure = calls.cure("get", redis.exceptions.ResponseError("ERR Function not found"), 1)
    assert cure == (Load(True, calls.library.source),)
    assert cure[0].command == ("FUNCTION", "LOAD", calls.library.source)
    assert calls.functions


def test_a_missing_script_is_loaded_as_redis_py_loads_it() -> None:
    calls = _calls(functions=False)
    cure = calls.cure("get", redis.exceptions.NoScriptError("NOSCRIPT"), 1)
    assert cure == (Load(False, calls.scripts["get"].source),)
    assert cure[0].command == ("SCRIPT LOAD", calls.scripts["get"].source)


def test_a_server_without_functions_turns_the_calls_to_scripts() -> None:
    calls = _calls()
    refusal = redis.exceptions.ResponseError("ERR unknown command 'FCALL', with args ...")
    assert calls.cure("get", refusal, 1) == ()  # nothing to load: called again as EVALSHA
    assert not calls.functions
    assert calls.command("get", ["1"])[0] == "EVALSHA"


def test_a_server_that_cannot_read_shebangs_gets_the_plain_scripts() -> None:
    calls = _calls(functions=False)
    assert calls.scripts["get"].source.startswith("#!")
    cure = calls.cure("get", redis.exceptions.ResponseError("Error compiling near '#'"), 1)
    assert cure is not None and not cure[0].source.startswith("#!")
    assert cure[0].source == calls.scripts["get"].source


def test_a_refusal_nothing_cures_is_the_answer_and_so_is_the_last_attempt() -> None:
    calls = _calls()
    assert calls.cure("get", redis.exceptions.ResponseError("WRONGTYPE"), 1) is None
    missing = redis.exceptions.ResponseError("ERR Function not found")
    assert calls.cure("get", missing, CALL_ATTEMPTS) is None


def test_a_refused_load_is_judged_by_the_plan() -> None:
    calls = _calls()
    library = Load(True, calls.library.source)
    taken = redis.exceptions.ResponseError("ERR Library 'jobqueue_x' already exists")
    assert calls.load_refused(library, taken) and calls.functions  # another client's: same code
    denied = redis.exceptions.ResponseError("NOPERM this user has no permissions")
    assert calls.load_refused(library, denied) and not calls.functions  # scripts from now on
    script = Load(False, calls.scripts["get"].source)
    assert not calls.load_refused(script, redis.exceptions.ResponseError("ERR busy"))
