"""Ranges of the queue's time settings: finite, and small enough that every deadline built
from them is a date and every wait on them is one the OS accepts."""

from __future__ import annotations

import math

from jobqueue.errors import InvalidSettingError

MAX_LEASE_SECONDS = 86400.0
"""``lease_seconds`` is at most a day: the heartbeat renews it, so it only bounds how long a
dead dispatcher's jobs wait to be recovered."""

MAX_GRACE_SECONDS = 86400.0
"""``grace_seconds`` (how long running jobs get to finish at shutdown) is at most a day."""

MAX_TIMEOUT_SECONDS = 30 * 86400.0
"""A handler's ``timeout`` is at most 30 days (``None``: no timeout)."""


def validate_seconds(label: str, value: object, high: float) -> float:
    """``value`` as seconds if it is a finite number in ``(0, high]``, else
    ``InvalidSettingError`` naming ``label`` and the range."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= high
    ):
        raise InvalidSettingError(
            f"{label} must be a positive number of seconds, at most {high:.0f}, got {value!r}"
        )
    return float(value)
