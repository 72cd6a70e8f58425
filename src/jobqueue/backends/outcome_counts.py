"""Per-minute outcome counts kept in a dict: the in-memory backend's (``Reads.outcome_counts``),
and a ready-made piece for any backend that keeps its state in Python objects.

Not thread-safe by itself: the backend calls it under the lock of the transition it counts,
so the count and the move it counts are one step.
"""

from __future__ import annotations

from jobqueue import lifecycle
from jobqueue.job import AttemptOutcome


class OutcomeCounts:
    """Finished attempts per minute (``lifecycle.outcome_minute``) by outcome, bounded by
    ``trim`` to what ``lifecycle.OUTCOME_MINUTES_KEPT`` keeps."""

    def __init__(self) -> None:
        self._minutes: dict[int, dict[str, int]] = {}

    def add(self, now: float, outcome: AttemptOutcome) -> None:
        """Count one attempt that ended at ``now``."""
        counts = self._minutes.setdefault(lifecycle.outcome_minute(now), {})
        counts[outcome.value] = counts.get(outcome.value, 0) + 1

    def read(self, since_minute: int, now: float) -> dict[int, dict[str, int]]:
        """The kept minutes from ``since_minute`` up to ``now``'s that have counts, oldest
        first (a copy); minutes past keeping are left out even before ``trim``."""
        first = max(since_minute, lifecycle.first_kept_minute(now))
        last = lifecycle.outcome_minute(now)
        return {
            minute: dict(counts)
            for minute, counts in sorted(self._minutes.items())
            if first <= minute <= last
        }

    def trim(self, now: float) -> None:
        """Forget the minutes older than the policy keeps: at most a day and an hour stay."""
        first = lifecycle.first_kept_minute(now)
        for minute in [m for m in self._minutes if m < first]:
            del self._minutes[minute]
