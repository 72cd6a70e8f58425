"""A clock tests move by hand, so delays, leases and retention need no sleeping."""

from __future__ import annotations

import threading


class ManualClock:
    """Callable returning a fixed "now" that only ``advance`` moves."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now
