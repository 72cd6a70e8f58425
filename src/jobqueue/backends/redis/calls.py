"""Calling the Lua scripts: the command for one call, its time arguments, and the plan that
loads what a server lacks and calls again -- one plan, driven by the sync backend and by the
asyncio one alike (neither decides on its own how to recover).

A call is ``FCALL`` of the script's function in the Redis Function library (Redis 7), or
``EVALSHA`` of the script where the server has no Functions, refuses the library, or is a
cluster. Its keys and ARGV header are described in ``lua/lib/call.lua``; the layout they
reach in docs/redis-layout.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import redis.exceptions

from jobqueue import lifecycle as rules
from jobqueue.backend import BackendOptions
from jobqueue.backends.redis.codec import Arg, Command, exact_number
from jobqueue.backends.redis.scripts import load_library, load_scripts
from jobqueue.job import MAX_HISTORY

log = logging.getLogger("jobqueue.backends.redis")

# Sends of one call at most: a first call to a server without Functions or shebangs (Redis 6)
# goes as FCALL (unknown), EVALSHA (NOSCRIPT; the load refuses the shebang), EVALSHA again
# (NOSCRIPT) and then runs.
CALL_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class Load:
    """What to load before calling again: the function library (``FUNCTION LOAD``) or one
    script (``SCRIPT LOAD``)."""

    library: bool
    source: str

    @property
    def command(self) -> Command:
        # "SCRIPT LOAD" as one word, as redis-py's script_load sends it: a cluster client
        # then loads it on every primary.
        return ("FUNCTION", "LOAD", self.source) if self.library else ("SCRIPT LOAD", self.source)


class Calls:
    """How one backend calls its scripts: the commands, the time arguments, and what to do
    when a call is refused for want of the library or a script (:meth:`cure`)."""

    def __init__(
        self,
        options: BackendOptions,
        prefix: str,
        route: tuple[str, ...],
        *,
        functions: bool,
        server_clock: bool,
    ) -> None:
        self.options = options
        self.prefix = prefix
        self.route = route
        """KEYS of every call (see ``lua/lib/call.lua``)."""
        self.server_clock = server_clock
        self.scripts = load_scripts()
        self.sha = {name: script.sha for name, script in self.scripts.items()}
        self.library = load_library()
        self.functions = functions
        """Whether calls go to the Redis Function library (``FCALL``) rather than scripts
        (``EVALSHA``): until the server shows it has no Functions (Redis < 7) or refuses the
        library. A cluster client keeps scripts: redis-py would ask a node for the keys of
        every FCALL (``COMMAND GETKEYS``), a round trip more per call."""
        policy = options.retention
        counts = (
            -1 if policy.completed_count is None else policy.completed_count,
            -1 if policy.failed_count is None else policy.failed_count,
        )
        # The scripts that read the policy tail (see lua/lib/call.lua) get it; others are
        # spared it.
        self._tail_scripts = frozenset(name for name, script in self.scripts.items() if script.tail)
        # The header after "now", and the policy tail: fixed for the backend's life (the
        # options are frozen), so built once rather than per call.
        self._header_policy: tuple[Arg, ...] = (
            "",  # ARGV[3], once the stall limit: stalls are the core's now
            "" if policy.completed_seconds is None else exact_number(policy.completed_seconds),
            counts[0],
            "" if policy.failed_seconds is None else exact_number(policy.failed_seconds),
            counts[1],
        )
        self._tail = self._policy_tail()

    def command(self, script: str, args: Sequence[Arg], *, repeat: bool = False) -> Command:
        """The FCALL (or EVALSHA) command for ``script``: the ARGV header ``lua/lib/call.lua``
        describes, then ``args``; ``repeat`` marks a resend of a command whose reply was lost.
        The sync and the asyncio backends send the very same commands."""
        return (
            *(
                ("FCALL", self.library.functions[script])
                if self.functions
                else ("EVALSHA", self.sha[script])
            ),
            len(self.route),
            *self.route,
            self.prefix,
            "" if self.server_clock else exact_number(self.options.clock()),
            *self._header_policy,
            "1" if repeat else "",
            *args,
            *(self._tail if script in self._tail_scripts else ()),
        )

    def _policy_tail(self) -> tuple[Arg, ...]:
        """What ``lua/lib/call.lua`` calls the policy tail: the history bound, the cancelled
        retention age and count (an age, like the header's, so the script measures it on
        its own now), and the minutes of outcome counts kept."""
        retention = self.options.retention
        seconds, count = retention.cancelled_seconds, retention.cancelled_count
        return (
            MAX_HISTORY,
            "" if seconds is None else exact_number(seconds),
            -1 if count is None else count,
            rules.OUTCOME_MINUTES_KEPT,
        )

    def time_arg(self, when: float) -> str:
        """An instant for a script: on the server's clock, as the delay from the client's now
        (``+seconds``, added to the server's now), so a skewed client's delay lands right."""
        if not self.server_clock:
            return exact_number(when)
        return "+" + exact_number(max(when - self.options.clock(), 0.0))

    def cutoff_arg(self, when: float) -> str:
        """A cut-off instant for a script (purge's ``finished_before``): as ``time_arg``, but
        a time in the past stays in the past -- ``+`` and a negative offset, i.e. its age on
        the client's clock measured back from the server's now, as retention ages are."""
        if not self.server_clock:
            return exact_number(when)
        return "+" + exact_number(when - self.options.clock())

    # -- the load-and-retry plan ---------------------------------------------------------------

    def cure(
        self, script: str, exc: redis.exceptions.ResponseError, attempt: int
    ) -> tuple[Load, ...] | None:
        """After attempt ``attempt`` of a call of ``script`` was refused with ``exc``: what to
        load before calling again (possibly nothing: the call goes again as EVALSHA, or
        without the shebang), or ``None`` when nothing cures it and ``exc`` is the answer.
        A refusal for a missing library or script means nothing ran (Redis refuses the
        call before running it)."""
        if attempt >= CALL_ATTEMPTS:
            return None
        if isinstance(exc, redis.exceptions.NoScriptError):
            return (Load(False, self.scripts[script].source),)
        if self.library_missing(exc):
            return (Load(True, self.library.source),) if self.functions else ()
        if self.adopt_plain_scripts(exc):
            return (Load(False, self.scripts[script].source),)
        return None

    def load_refused(self, load: Load, exc: redis.exceptions.ResponseError) -> bool:
        """After a load of :meth:`cure` failed with ``exc``: whether to call again anyway
        (``False``: ``exc`` is the answer)."""
        if load.library:
            self.library_refused(exc)
            return True
        return self.adopt_plain_scripts(exc)

    def library_missing(self, exc: redis.exceptions.ResponseError) -> bool:
        """After FCALL failed with ``exc``: whether the server lacks the library, so that
        loading it (if ``functions`` is still on) and calling again is the cure. A server
        without Functions (no FCALL command) turns ``functions`` off: the call goes again as
        EVALSHA; so does one whose ACL denies this user FCALL (allowing EVALSHA, say)."""
        if not self.functions:
            return False
        text = str(exc)
        if "Function not found" in text:
            return True
        lowered = text.lower()
        refused = "unknown command" in lowered or isinstance(
            exc, redis.exceptions.NoPermissionError
        )
        if refused and "fcall" in lowered:
            self.library_refused(exc)
            return True
        return False

    def library_refused(self, exc: redis.exceptions.ResponseError) -> None:
        """After FUNCTION LOAD failed with ``exc``: a library of that name already there is
        this code (its name carries the hash of its source), loaded by another client; any
        other refusal (no Functions, an ACL without FUNCTION) turns to scripts for good."""
        if "already exists" in str(exc):
            return
        if self.functions:
            log.debug("Redis refused the function library (%s); using scripts", exc)
        self.functions = False

    def adopt_plain_scripts(self, exc: redis.exceptions.ResponseError) -> bool:
        """After SCRIPT LOAD or EVALSHA failed with ``exc``: if the server cannot read the
        shebang line (Redis 6 refuses the load, fakeredis the call), switch to the scripts
        without it and say so (True). Threads whose first calls raced find the switch made
        by another: True too, so that they call again with the plain scripts."""
        if "near '#'" not in str(exc):
            return False
        if not self.scripts["get"].source.startswith("#!"):
            return True
        log.debug("Redis does not read script shebangs (%s); using plain scripts", exc)
        self.scripts = load_scripts(shebang=False)
        self.sha = {name: script.sha for name, script in self.scripts.items()}
        return True
