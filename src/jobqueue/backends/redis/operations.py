"""The Redis backend's operator calls: running a delayed job now and cancelling in bulk (see
``Backend.promote`` and ``Backend.cancel_many``), each a script of its own.

:class:`~jobqueue.backends.redis.RedisBackend` mixes them in; they live here so that its
module stays readable. They only build script arguments and decode replies: the scripts
(``promote.lua``, ``cancel_many.lua``) do the work, each call one atomic step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from jobqueue.backends.redis.codec import STATE_CODES, STATES, as_text, decode_job
from jobqueue.errors import JobStateError
from jobqueue.job import Job, JobState

_CANCELLABLE = (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE)


class _Scripts(Protocol):
    """What the mixin needs of the backend it is mixed into."""

    def _run(self, script: str, args: Sequence[Any]) -> Any: ...

    def _batched(self, script: str, args: list[Any]) -> int: ...


class OperatorCalls:
    """``promote`` and ``cancel_many`` for ``RedisBackend``."""

    def promote(self: _Scripts, job_id: str) -> Job | None:
        reply = self._run("promote", [job_id])
        outcome = as_text(reply[0])
        if outcome == "gone":
            return None
        if outcome == "state":
            state = STATES.get(as_text(reply[1]))
            shown = state.value if state else "unreadable"
            raise JobStateError(f"job {job_id} is {shown}: only delayed jobs are run ahead of time")
        return decode_job(reply[1])

    def cancel_many(self: _Scripts, state: JobState, name: str | None = None) -> int:
        if state not in _CANCELLABLE:
            return 0
        named = "" if name is None else "=" + name
        return self._batched("cancel_many", [STATE_CODES[state], named])
