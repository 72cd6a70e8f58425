"""How long to wait before retrying a failed attempt (``Job.backoff``)."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from jobqueue.errors import InvalidOptionError
from jobqueue.json_value import JSON

MAX_DELAY_SECONDS = 100 * 365 * 86400.0
"""A job runs at most this far (about 100 years) in the future: ``delay``, a backoff's delays
and ``run_at`` (from now) are refused beyond it, so every stored time is a date."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before retrying a failed attempt.

    ``fixed``: always ``delay`` seconds. ``exponential``: ``delay * 2**(attempt-1)``, capped at
    ``max_delay``. With ``jitter`` the delay is drawn uniformly from ``[delay/2, delay]`` so that
    jobs that failed together do not all retry in the same instant.
    """

    kind: Literal["fixed", "exponential"] = "fixed"
    delay: float = 0.0
    max_delay: float = 3600.0
    jitter: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "exponential"):
            raise InvalidOptionError(
                f"backoff kind must be 'fixed' or 'exponential', not {self.kind!r}"
            )
        for label, value in (("delay", self.delay), ("max_delay", self.max_delay)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not 0 <= value <= MAX_DELAY_SECONDS
            ):
                raise InvalidOptionError(
                    f"backoff {label} must be a number of seconds from 0 to "
                    f"{MAX_DELAY_SECONDS:.0f} (about 100 years), not {value!r}"
                )
        if not isinstance(self.jitter, bool):
            raise InvalidOptionError(f"backoff jitter must be True or False, not {self.jitter!r}")

    @classmethod
    def fixed(cls, delay: float, *, jitter: bool = False) -> Backoff:
        return cls("fixed", delay, max(delay, 3600.0), jitter)

    @classmethod
    def exponential(
        cls, delay: float, *, max_delay: float = 3600.0, jitter: bool = True
    ) -> Backoff:
        return cls("exponential", delay, max_delay, jitter)

    @classmethod
    def parse(cls, value: object) -> Backoff:
        """Accept a ``Backoff``, a number of seconds (fixed), or a mapping of its fields."""
        if isinstance(value, Backoff):
            return value
        if value is None:
            return _DEFAULT_BACKOFF
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls.fixed(float(value))
        if isinstance(value, Mapping):
            unknown = set(value) - {"kind", "delay", "max_delay", "jitter"}
            if unknown:
                raise InvalidOptionError(
                    f"unknown backoff field(s) {sorted(unknown)}; "
                    "use kind, delay, max_delay and jitter"
                )
            return cls(**value)
        raise InvalidOptionError(
            "backoff must be a number of seconds, a Backoff, or a mapping like "
            f"{{'kind': 'exponential', 'delay': 1}}, not {value!r}"
        )

    def delay_for(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if self.kind == "fixed":
            delay = self.delay
        else:
            delay = self.delay * (2.0 ** min(max(attempt - 1, 0), 62))
        delay = min(delay, self.max_delay) if self.kind == "exponential" else delay
        if self.jitter and delay > 0:
            delay = random.uniform(delay / 2, delay)
        return delay

    def to_dict(self) -> dict[str, JSON]:
        return {
            "kind": self.kind,
            "delay": self.delay,
            "max_delay": self.max_delay,
            "jitter": self.jitter,
        }


_DEFAULT_BACKOFF = Backoff()
