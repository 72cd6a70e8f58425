"""A clock tests move by hand, so delays, leases and retention need no sleeping."""

from __future__ import annotations

import threading


class ManualClock:
    """Callable returning a fixed "now" that only ``advance`` moves."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._watches: list[tuple[int, threading.Event]] = []

    def __call__(self) -> float:
        with self._lock:
            if self._watches:
                me = threading.get_ident()
                for _, event in [w for w in self._watches if w[0] != me]:
                    event.set()
                self._watches = [w for w in self._watches if not w[1].is_set()]
            return self._now

    def read_elsewhere(self) -> threading.Event:
        """An event set the next time another thread reads this clock: backends read "now"
        right before they block, so a test learns that a waiter is about to block."""
        event = threading.Event()
        with self._lock:
            self._watches.append((threading.get_ident(), event))
        return event

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now
