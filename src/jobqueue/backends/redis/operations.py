"""The Redis backend's per-minute outcome counts (``Backend.outcome_counts``), read by
``outcomes.lua``.

:class:`~jobqueue.backends.redis.RedisBackend` mixes them in. The counts themselves are
written by ``apply.lua`` (``count_outcome`` in ``lua/lib/counts.lua``): one small hash per
minute, ``P o:MINUTE``, expiring a day and an hour later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

from jobqueue.backends.redis.codec import Arg, Reply, as_text
from jobqueue.backends.redis.wire import rows

# The outcome hashes' field letters (count_outcome in lua/lib/counts.lua), as AttemptOutcome values.
_OUTCOMES = {"c": "completed", "f": "failed", "r": "retried", "x": "cancelled"}


class _Scripts(Protocol):
    """What the mixin needs of the backend it is mixed into."""

    def _run(self, script: str, args: Sequence[Arg]) -> Reply: ...


class OperatorCalls:
    """``outcome_counts`` for ``RedisBackend``."""

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
