"""What a run counted: the attempts it started and how the recorded ones ended."""

from __future__ import annotations

import threading

OUTCOMES = ("completed", "failed", "retrying", "snoozed", "cancelled", "lost")


class Tally:
    """Shared by the slots of one dispatcher (under its own lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.processed = 0
        """Attempts started (a job retried twice counts three)."""
        self.outcomes: dict[str, int] = {}
        """How recorded attempts ended: ``completed``, ``failed``, ``retrying`` (failed, to
        run again), ``snoozed`` (put back by the handler), ``cancelled`` and ``lost`` (lease
        lost, outcome discarded)."""

    def reset(self) -> None:
        with self._lock:
            self.processed = 0
            self.outcomes = dict.fromkeys(OUTCOMES, 0)

    def add(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def left(self, max_jobs: int) -> int:
        """How many more attempts ``max_jobs`` allows."""
        with self._lock:
            return max_jobs - self.processed

    def start_one(self, max_jobs: int | None, stopping: threading.Event) -> bool:
        """Count an attempt about to start, unless stopping or ``max_jobs`` is reached."""
        with self._lock:
            if stopping.is_set() or (max_jobs is not None and self.processed >= max_jobs):
                return False
            self.processed += 1
            return True
