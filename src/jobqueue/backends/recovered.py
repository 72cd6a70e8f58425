"""The jobs a backend recovered from expired leases, kept until maintenance reports them.

A backend recovers an expired lease in whichever call finds it first: a claim, an idle wait,
``maintain`` or ``recover_expired``. Only the last two return jobs, so the others note the
ids here and the next of those two returns them as well: each recovered job is reported
once, by the process that recovered it, whose dispatcher then fires
``jobqueue_job_stalled``. (Redis keeps the same list in the server, see
``redis/lua/lib/housekeeping.lua``.)
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

MAX_NOTED = 10_000
"""Ids kept at most: a process that recovers leases but never runs maintenance (no
dispatcher) must not grow without bound; past this the oldest go unreported."""


class RecoveredLeases:
    """Ids of jobs whose expired lease this backend recovered, oldest first."""

    def __init__(self, limit: int = MAX_NOTED) -> None:
        self._ids: deque[str] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def note(self, job_ids: Iterable[str]) -> None:
        with self._lock:
            self._ids.extend(job_ids)

    def take(self) -> list[str]:
        """Every id noted so far, in recovery order; they are forgotten here."""
        with self._lock:
            taken = list(self._ids)
            self._ids.clear()
            return taken
