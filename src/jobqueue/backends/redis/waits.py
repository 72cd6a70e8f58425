"""The Redis backend's waits: an idle dispatcher's wait for work (``wait_for_work``), the
hand-off of a claimed job to it (``wait_for_claim``, the optional HandoffBackend protocol)
and a caller's wait for a job to finish (``wait_for_finish``).

:class:`~jobqueue.backends.redis.RedisBackend` mixes them in. A waiter registers with a script
(``idle.lua``, ``watch.lua``), blocks on a list of its own (BLPOP, in slices the socket
timeout allows), and withdraws whatever happens (``unidle.lua``, ``watch.lua``); whatever
makes a job ready hands it to the longest-idle waiter (``signal`` in lua/lib/handoff.lua).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Sequence
from typing import Protocol

from jobqueue.backend import BackendOptions, Claim, WorkSpec
from jobqueue.backends.redis.codec import Arg, Reply, as_text, exact_number
from jobqueue.backends.redis.connection import (
    Connections,
    RedisClient,
    block_slices,
    translate_errors,
)
from jobqueue.backends.redis.foreign import decode_claim
from jobqueue.backends.redis.wire import (
    idle,
    inbox_message,
    lease_arg,
    rows,
    watched,
)
from jobqueue.backends.redis.wire import token as new_token
from jobqueue.errors import BackendError, CorruptJobError
from jobqueue.job import Job


class _Backend(Protocol):
    """What the mixin needs of the backend it is mixed into."""

    options: BackendOptions
    _prefix: str
    _client: RedisClient
    _connections: Connections | None
    _block_slice: float

    def _run(self, script: str, args: Sequence[Arg]) -> Reply: ...

    def claim_many(self, spec: WorkSpec, limit: int) -> list[Claim]: ...

    def _fail_corrupt(self, job_id: str, token: str, exc: CorruptJobError) -> None: ...

    def get(self, job_id: str) -> Job | None: ...

    def done_key(self, job_id: str) -> str: ...

    def _idle_wait(
        self, token: str, lease: str, spec: WorkSpec, timeout: float
    ) -> tuple[str, Reply]: ...

    def _spec_args(self, spec: WorkSpec | None) -> list[Arg]: ...

    def _group_missing(self, spec_args: Sequence[Arg]) -> None: ...

    def _watch(self, job_id: str, change: int) -> tuple[str, Job | None]: ...

    def _block(self, keys: list[str], timeout: float) -> Reply: ...


class WaitCalls:
    """The waits of ``RedisBackend``."""

    def wait_for_work(self: _Backend, names: Iterable[str], timeout: float) -> bool:
        spec = WorkSpec(tuple(dict.fromkeys(names)))
        kind, _ = self._idle_wait(new_token(), "", spec, timeout)
        return kind != "timeout"

    def wait_for_claim(self: _Backend, spec: WorkSpec, timeout: float) -> Claim | bool:
        """Claim a ready job, or wait idle for at most ``timeout`` seconds to be handed one:
        whatever makes a job of these names ready (a submit, a retry, a promotion, a
        recovery, a resume) claims it under this waiter's token and lease and pushes it to
        the waiter's inbox, so it starts with no claim round trip (``signal`` in
        lua/lib/handoff.lua).
        Returns the Claim; ``True`` when woken for work to claim itself (a name capped by
        max_active) or when ready work is there that it may not claim; ``False`` after the
        wait."""
        token = new_token()
        lease = lease_arg(spec)
        deadline = self.options.clock() + spec.lease_seconds
        kind, payload = self._idle_wait(token, lease, spec, timeout)
        if kind == "claimed":
            job = rows(payload)
            try:
                return Claim(decode_claim(job), token, deadline)
            except CorruptJobError as exc:  # fail it, then claim on: one bad hash never stops
                self._fail_corrupt(as_text(job[0]), token, exc)
            claims = self.claim_many(spec, 1)
            return claims[0] if claims else True
        if kind != "handed":
            return kind != "timeout"
        # Its lease began at the hand-off, within this wait: now plus the lease is the
        # client's estimate, late by the message's trip at most.
        deadline = self.options.clock() + spec.lease_seconds
        reply: object = None
        try:
            reply = json.loads(as_text(payload))
            if not isinstance(reply, list):
                raise TypeError(f"not a JSON list: {reply!r}")
            if isinstance(reply[2], dict):  # cjson writes an empty Lua table as {}
                reply[2] = []
            return Claim(decode_claim(reply), token, deadline)
        except (ValueError, TypeError, IndexError, KeyError, CorruptJobError) as exc:
            job_id = as_text(reply[0]) if isinstance(reply, list) and reply else "?"
            self._fail_corrupt(job_id, token, CorruptJobError(f"handed job: {exc}"))
            return True

    def _idle_wait(
        self: _Backend, token: str, lease: str, spec: WorkSpec, timeout: float
    ) -> tuple[str, Reply]:
        """idle.lua, then a block on the waiter's inbox, then unidle.lua if nothing came.
        Returns ``("claimed", job reply)`` (claimed at once, with a lease), ``("ready",
        None)``, ``("woken", None)``, ``("handed", JSON)`` or ``("timeout", None)``."""
        wait = max(float(timeout), 0.0)
        for _ in range(2):
            wanted = self._spec_args(spec)
            kind, detail = idle(self._run("idle", [token, lease, exact_number(wait), *wanted]))
            if kind != "g":
                break
            self._group_missing(wanted)  # its name group was gone: stored again, called again
        if kind == "g":
            return "ready", None
        if kind == "c":
            return "claimed", detail
        if kind == "r":
            return "ready", None
        due_in = as_text(detail)
        if due_in:
            # Wake when the next delayed job comes due or the next lease expires.
            wait = min(wait, max(float(due_in), 0.0))
        try:
            popped = self._block([self._prefix + "h:" + token], wait) if wait > 0 else None
            message = rows(popped)[1] if popped is not None else self._run("unidle", [token, ""])
        except BackendError:
            # A block whose reply was lost may have carried a handed job: the job its
            # token holds is looked up (a claim repeat's rescue, see unidle.lua).
            with contextlib.suppress(BackendError):
                message = self._run("unidle", [token, "1"])
                if message is not None:
                    return inbox_message(message)
            raise
        return ("timeout", None) if message is None else inbox_message(message)

    def wait_for_finish(self: _Backend, job_id: str, timeout: float) -> Job | None:
        until = time.monotonic() + max(timeout, 0.0)
        state, job = self._watch(job_id, 1)
        if state != "wait":
            return job
        try:
            while True:
                left = until - time.monotonic()
                if left <= 0:
                    break
                if self._block([self.done_key(job_id)], left) is not None:
                    found = self.get(job_id)
                    if found is None or found.state.is_finished:
                        return found
        finally:
            with contextlib.suppress(BackendError):
                state, job = self._watch(job_id, -1)
        return job if state == "done" else None

    def _watch(self: _Backend, job_id: str, change: int) -> tuple[str, Job | None]:
        return watched(self._run("watch", [job_id, change]))

    def _block(self: _Backend, keys: list[str], timeout: float) -> Reply:
        """BLPOP for at most ``timeout`` seconds, in slices the socket timeout allows."""
        popped: Reply
        for seconds in block_slices(timeout, self._block_slice):
            with translate_errors():
                if self._connections is None:
                    popped = self._client.blpop(keys, timeout=seconds)
                else:  # on the thread's own connection, as _execute: the wake-up path is hot
                    connection = self._connections.held()
                    try:
                        connection.send_command("BLPOP", *keys, seconds)
                        popped = connection.read_response()
                    except BaseException:  # half a reply may be unread: never reuse it
                        connection.disconnect()
                        raise
            if popped is not None:
                return popped
        return None
