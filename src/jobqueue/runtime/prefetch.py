"""How many jobs a dispatcher's slot claims at once: a fixed depth, or adaptive (the default).

Claiming ahead saves round trips for tiny jobs but hoards heavy ones: a slot holding fifty
one-second jobs keeps them from idle dispatchers for fifty seconds. The adaptive policy claims
ahead only what it expects to finish within ``BUDGET`` seconds, and only while the backlog is
deep, so heavy jobs stay spread across dispatchers while tiny jobs run at prefetch speed.

* **Estimate.** Each slot keeps an exponentially weighted mean of its handlers' run times per
  worker name, seeded at ``SEED`` seconds (pessimistic): the first jobs of a name the slot has
  not run are claimed one at a time until it has shown that it is short.
* **Limit.** ``clamp(floor(BUDGET / mean), 1, MAX_DEPTH)``, where ``mean`` is the slowest
  among the names this slot claimed in its last ``WINDOW`` jobs. A claim draws from every
  name the slot serves, so the limit must hold for the slowest of them; counting only names
  seen lately keeps a registered but idle heavy worker from disabling prefetch for ever,
  and a name's first claimed job (at the seed) brings the depth back to 1 at once.
* **Depth.** Starts at 1 and doubles, up to the limit, after each claim that came back full
  (the backlog is at least that deep); a claim that came back short drops it to 1 (the
  backlog is shallow: whatever is left should go to whichever dispatcher is idle), and so does
  a job that ran longer than ``BUDGET`` (the jobs behind it may be as heavy).

A slot's policy is its own (no locking): each slot learns from the jobs it runs.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol

BUDGET = 0.02
"""Seconds of expected work a slot may hold claimed ahead (adaptive)."""

MAX_DEPTH = 50
"""The most jobs an adaptive slot claims at once."""

SEED = 1.0
"""The run time (seconds) assumed for a name before this slot has run its jobs: well above
``BUDGET``, so they are claimed one at a time until their runs pull the mean down."""

ALPHA = 0.25
"""Weight of the newest run in a name's mean: about the last ten runs count."""

WINDOW = 2 * MAX_DEPTH
"""A name counts towards the limit while the slot claimed one of its jobs among its last this
many claimed jobs."""


class PrefetchPolicy(Protocol):
    """What a dispatcher's slot asks before each claim and tells after claims and runs."""

    def depth(self) -> int:
        """How many jobs the slot should hold (claimed ahead, or the one about to run)."""
        ...

    def claimed(self, asked: int, names: Iterable[str]) -> None:
        """A claim for ``asked`` jobs brought jobs of these ``names`` (one entry per job)."""
        ...

    def ran(self, name: str, seconds: float) -> None:
        """A job of ``name`` ran for ``seconds`` (handler and hooks, not recording)."""
        ...


class FixedPrefetch:
    """``prefetch=N``: always hold up to N jobs, whatever they cost."""

    def __init__(self, depth: int) -> None:
        self._depth = depth

    def depth(self) -> int:
        return self._depth

    def claimed(self, asked: int, names: Iterable[str]) -> None:
        pass

    def ran(self, name: str, seconds: float) -> None:
        pass


class AdaptivePrefetch:
    """``prefetch=None``: claim ahead only short jobs from a deep backlog. See the module
    docstring."""

    def __init__(
        self,
        *,
        budget: float = BUDGET,
        max_depth: int = MAX_DEPTH,
        seed: float = SEED,
        alpha: float = ALPHA,
        window: int = WINDOW,
    ) -> None:
        self.budget = budget
        self.max_depth = max_depth
        self.seed = seed
        self.alpha = alpha
        self.window = window
        self.means: dict[str, float] = {}
        """Each name's weighted mean run time (seconds) in this slot."""
        self._depth = 1
        self._claims = 0  # jobs claimed so far
        # The names claimed among the last ``window`` jobs -> _claims when each was last
        # claimed, oldest first: expiring is popping from the front, so a claim's cost does
        # not grow with the number of names served (at most ``window`` are recent).
        self._recent: OrderedDict[str, int] = OrderedDict()
        # Max-heap (negated) of (mean, name) for the recent names. Entries go stale lazily
        # (the name expired or its mean moved) and are dropped when they reach the top; a
        # recent name always has an entry holding its current mean.
        self._slowest: list[tuple[float, str]] = []
        # Recent names whose mean moved since the last limit(): pushed once there, not on
        # every run (a deep claim of one name runs it up to max_depth times in between).
        self._moved: set[str] = set()

    def _push(self, name: str) -> None:
        heapq.heappush(self._slowest, (-self.means[name], name))
        if len(self._slowest) > 4 * self.window:
            # Stale entries below the top are never popped: rebuild (amortized O(1)).
            self._slowest = [(-self.means[recent], recent) for recent in self._recent]
            heapq.heapify(self._slowest)

    def limit(self) -> int:
        """The depth the slowest recent name allows (1 before any claim)."""
        recent = self._recent
        while recent:
            name, at = next(iter(recent.items()))
            if self._claims - at < self.window:
                break
            del recent[name]
        if self._moved:
            for name in self._moved:
                if name in recent:
                    self._push(name)
            self._moved.clear()
        heap = self._slowest
        while heap:
            negated, name = heap[0]
            if name in recent and self.means[name] == -negated:
                break
            heapq.heappop(heap)
        if not heap:
            return 1
        slowest = -heap[0][0]
        if slowest <= 0:  # a clock too coarse to see the runs: as short as can be
            return self.max_depth
        # The epsilon: runs of exactly budget / n must allow n despite rounding.
        return max(1, min(self.max_depth, math.floor(self.budget / slowest + 1e-9)))

    def depth(self) -> int:
        return min(self._depth, self.limit())

    def claimed(self, asked: int, names: Iterable[str]) -> None:
        if asked <= 0:
            return
        got = 0
        recent = self._recent
        for name in names:
            got += 1
            self.means.setdefault(name, self.seed)
            known = name in recent
            if known:
                recent.move_to_end(name)
            recent[name] = self._claims + got
            if not known:
                self._push(name)  # once recent: a rebuild in _push must include it
        self._claims += got
        # Growing only on a full claim: a short one means we just took the whole backlog.
        self._depth = min(self._depth * 2, self.limit()) if got >= asked else 1

    def ran(self, name: str, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        mean = self.means.get(name, self.seed)
        self.means[name] = mean + self.alpha * (seconds - mean)
        if name in self._recent:
            self._moved.add(name)
        if seconds > self.budget:
            # The mean follows within a few runs; the jobs held behind a long one may be just
            # as long, so stop claiming ahead now rather than a few runs later.
            self._depth = 1


def make_policy(prefetch: int | None) -> PrefetchPolicy:
    """The policy of one slot: adaptive for ``None``, else a fixed depth."""
    return AdaptivePrefetch() if prefetch is None else FixedPrefetch(prefetch)
