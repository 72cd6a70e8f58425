"""The Redis backend's operator calls: running a delayed job now, cancelling in bulk and
reading the per-minute outcome counts (``Backend.promote``, ``Backend.cancel_many``,
``Reads.outcome_counts``), each a script of its own.

:class:`~jobqueue.backends.redis.RedisBackend` mixes them in; they live here so that its
module stays readable. They only build script arguments and decode replies: the scripts
(``promote.lua``, ``cancel_many.lua``, ``outcomes.lua``) do the work, each call one atomic
step. The counts themselves are written by the transitions' scripts (``count_outcome`` in
``lua/lib/counts.lua``): one small hash per minute, ``P o:MINUTE``, expiring a day and an
hour later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

from jobqueue.backends.redis.codec import (
    STATE_CODES,
    Arg,
    Reply,
    as_text,
    decode_job,
    state_refusal,
)
from jobqueue.backends.redis.wire import looked_up, rows
from jobqueue.job import Job, JobState

_CANCELLABLE = (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE)
# The outcome hashes' field letters (count_outcome in lua/lib/counts.lua), as AttemptOutcome values.
_OUTCOMES = {"c": "completed", "f": "failed", "r": "retried", "x": "cancelled"}


class _Scripts(Protocol):
    """What the mixin needs of the backend it is mixed into."""

    def _run(self, script: str, args: Sequence[Arg]) -> Reply: ...

    def _batched(self, script: str, args: list[Arg]) -> int: ...


class OperatorCalls:
    """``promote``, ``cancel_many`` and ``outcome_counts`` for ``RedisBackend``."""

    def promote(self: _Scripts, job_id: str) -> Job | None:
        outcome, detail = looked_up(self._run("promote", [job_id]))
        if outcome == "gone":
            return None
        if outcome == "state":
            raise state_refusal(job_id, detail, "only delayed jobs are run ahead of time")
        return decode_job(rows(detail))

    def cancel_many(self: _Scripts, state: JobState, name: str | None = None) -> int:
        if state not in _CANCELLABLE:
            return 0
        named = "" if name is None else "=" + name
        return self._batched("cancel_many", [STATE_CODES[state], named])

    def outcome_counts(self: _Scripts, since_minute: int) -> dict[int, dict[str, int]]:
        return counted_outcomes(self._run("outcomes", [int(since_minute)]))


def counted_outcomes(reply: Reply) -> dict[int, dict[str, int]]:
    """outcomes.lua's flat reply (minute, then its letter/count pairs) as a mapping; a field
    that is no outcome, or no count (foreign data), is left out."""
    flat = rows(reply)
    counts: dict[int, dict[str, int]] = {}
    for i in range(0, len(flat), 2):
        pairs = rows(flat[i + 1])
        found: dict[str, int] = {}
        for k in range(0, len(pairs), 2):
            outcome = _OUTCOMES.get(as_text(pairs[k]))
            try:
                if outcome is not None:
                    found[outcome] = int(cast("bytes", pairs[k + 1]))
            except ValueError:
                continue
        if found:
            counts[int(cast("bytes", flat[i]))] = found
    return counts
