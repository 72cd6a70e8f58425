"""Claims that stay fast while a long transaction pins the xmin horizon (PostgreSQL).

Every claimed job leaves a dead entry at the head of the waiting index (the claim moves its
row out of the partial index ``jobqueue_waiting``). Vacuum cannot remove those entries while
an older snapshot lives (an open ``psql`` session, a slow report), and a claim that reads the
index from its start steps over every one of them: one worker fell from 8,000 to 1,300
processed/s after 150 s of a pinned horizon (``bench/postgres_hot.py --soak``).

A ``ClaimCursor`` remembers, per name, the furthest run-order position it claimed at each
priority level (``(priority, seq)``, the seq the job had while it waited; the last
``MAX_LEVELS`` levels claimed) and lets the claim *seek* past them: the name's index range is
cut into ranges that leave out each known level's claimed stretch (``priority = q AND seq <=
s_q``): priorities above the highest known level, level ``q`` after ``s_q``, priorities
strictly between two known levels, ..., below the lowest. In that order the ranges are the
run order without the stretches, so a seek claims what a full scan would, minus the jobs in a
stretch. Those stretches hold the dead entries, and rarely a live job: one whose lock a
claimer skipped (``SKIP LOCKED``) before the locker rolled back, one stored with an order
number from an older block (numbers come in per-transaction blocks, ``SEQ_BLOCK_SIZE``), a
promoted or requeued job numbered so. The full scan from the index start (the claim as it
always was) finds those. The rule:

- **Normal mode**: every claim is a full scan, as before. ``enter_after`` (3) full scans in a
  row that take longer than ``slow_scan`` (5 ms: dead entries piling up, not one busy
  moment) put the name in **cursor mode**.
- **Cursor mode**: a claim seeks. A full scan runs instead when one is due: ``scan_every``
  (0.2 s) after the last one, stretched to ``SCAN_SHARE`` times that scan's duration so that
  full scans take at most about a tenth of the claim time however slow they get; and again
  right after a full scan that found a job inside a stretch (until one finds none). A seek
  that finds fewer jobs than asked is followed by a full scan for the rest in the same
  claim, so a claim comes back short only when the full scan does too.
- A full scan faster than ``slow_scan`` returns the name to normal mode (the horizon moved
  on and the dead entries went).

So nothing is lost (a claim returns fewer jobs than asked only after a full scan), nothing
waits in a stretch longer than the next due full scan, and priorities keep their order (a
higher priority is in the first range, never in a stretch of a lower level).

The cursor decides nothing about which job is claimed and holds no lock: it is advice on
where to look. It is not shared between processes; each process's claims keep their own.
Users: a claim of one name (``store._heads``: ``CLAIM_SEEK``) and the heads of two names
(``claims.next_waiting``: ``WAITING_HEAD_SEEK``); the cross-name order read for more names
(``jobqueue_waiting_order``) has none yet. PostgreSQL's one-step call (``jobqueue_apply_held``,
``postgres.one_step``) claims by full scan: it reports its claim's duration and positions here
(``scanned``), and a claim for a name in cursor mode goes the store's way instead, which seeks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

SLOW_SCAN = 0.005
"""A full-scan claim slower than this (seconds) counts towards cursor mode; a faster one
leaves it."""
ENTER_AFTER = 3
"""Slow full scans in a row that put a name in cursor mode: one slow claim is as likely a
busy machine as dead index entries, and cursor mode costs PostgreSQL the one-step call."""
SCAN_EVERY = 0.2
"""In cursor mode, a full scan at least this often (seconds) ..."""
SCAN_SHARE = 9.0
"""... and, when full scans are slow, no sooner than this many times the last one's duration
after it (full scans then take at most a tenth of the time)."""
MAX_LEVELS = 4
"""Priority levels remembered per name (the ones claimed last); a level forgotten is read
from its start again (its dead entries stepped over) until claimed again."""

PRIORITY_MAX = (1 << 63) - 1
PRIORITY_MIN = -(1 << 63)
"""Bounds of a ``bigint``: the outer ranges' ends, and "from the level's start"."""

_log = logging.getLogger("jobqueue.backends.claim_cursor")


@dataclass(frozen=True, slots=True)
class SeekRanges:
    """Where a seek reads a name's waiting jobs, range by range in run order: range ``i`` is
    ``bottoms[i] <= priority <= tops[i] AND seq > afters[i]`` (statement ``CLAIM_SEEK``, or
    any claim that takes these three arrays)."""

    tops: list[int]
    bottoms: list[int]
    afters: list[int]


@dataclass(slots=True)
class _Track:
    """One name's cursor."""

    seeking: bool = False
    levels: dict[int, int] = field(default_factory=dict)
    """priority -> furthest seq claimed at it, least recently claimed first."""
    next_scan: float = 0.0
    rescan: bool = False
    slow: int = 0
    """Slow full scans in a row while not seeking."""

    def note(self, positions: Iterable[tuple[int, int]]) -> bool:
        """Remember claimed ``(priority, seq)`` positions; whether one was inside a stretch."""
        inside = False
        levels = self.levels
        for priority, seq in positions:
            last = levels.pop(priority, None)
            if last is not None and seq <= last:
                inside = True
            levels[priority] = seq if last is None else max(seq, last)
            if len(levels) > MAX_LEVELS:
                del levels[next(iter(levels))]
        return inside

    def ranges(self) -> SeekRanges:
        tops: list[int] = []
        bottoms: list[int] = []
        afters: list[int] = []
        top = PRIORITY_MAX  # the highest priority not yet covered
        for priority in sorted(self.levels, reverse=True):
            if priority < top:  # the priorities strictly above this level, below the last
                tops.append(top)
                bottoms.append(priority + 1)
                afters.append(PRIORITY_MIN)
            tops.append(priority)
            bottoms.append(priority)
            afters.append(self.levels[priority])
            top = priority - 1
        if top >= PRIORITY_MIN:  # below the lowest level
            tops.append(top)
            bottoms.append(PRIORITY_MIN)
            afters.append(PRIORITY_MIN)
        return SeekRanges(tops, bottoms, afters)


class ClaimCursor:
    """The claim positions of one store's claims, per name (see the module).

    A claim asks ``plan(name)``: ``None`` means a full scan, which it reports with
    ``scanned``; ranges mean a seek, reported with ``sought`` (then, if it found fewer jobs
    than asked, a full scan for the rest). Counters (``full_scans``, ``seeks``, ``entered``)
    say what claims did; thresholds are attributes (tests set them)."""

    def __init__(
        self,
        *,
        slow_scan: float = SLOW_SCAN,
        scan_every: float = SCAN_EVERY,
        enter_after: int = ENTER_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slow_scan = slow_scan
        self.scan_every = scan_every
        self.enter_after = enter_after
        self.clock = clock
        self.full_scans = 0
        self.seeks = 0
        self.entered = 0
        """Times a name entered cursor mode."""
        self._tracks: dict[str, _Track] = {}

    def seeking(self, name: str) -> bool:
        """Whether ``name`` is in cursor mode."""
        track = self._tracks.get(name)
        return track is not None and track.seeking

    def plan(self, name: str) -> SeekRanges | None:
        """Where the next claim of ``name`` seeks, or ``None`` for a full scan."""
        track = self._tracks.get(name)
        if track is None or not track.seeking or track.rescan:
            return None
        if self.clock() >= track.next_scan:
            return None
        return track.ranges()

    def sought(self, name: str, positions: Iterable[tuple[int, int]]) -> None:
        """A seek of ``name`` claimed jobs at ``positions`` (``(priority, seq)``, the seq
        each had while waiting)."""
        self.seeks += 1
        track = self._tracks.get(name)
        if track is not None:
            track.note(positions)

    def scanned(self, name: str, positions: Iterable[tuple[int, int]], seconds: float) -> None:
        """A full scan of ``name`` claimed jobs at ``positions`` and took ``seconds``."""
        self.full_scans += 1
        track = self._tracks.get(name)
        if seconds < self.slow_scan:
            if track is not None:
                if track.seeking:
                    _log.info("claims of %r read the index from its start again", name)
                del self._tracks[name]
            return
        if track is None:
            track = self._tracks[name] = _Track()
        if not track.seeking:
            track.slow += 1
            if track.slow < self.enter_after:
                return
            track.seeking = True
            self.entered += 1
            _log.info(
                "a claim of %r took %.1f ms (dead index entries: a long transaction?); "
                "claims seek past the jobs claimed",
                name,
                seconds * 1000,
            )
            track.note(positions)
            track.rescan = False
        else:
            track.rescan = track.note(positions)
        track.next_scan = self.clock() + max(self.scan_every, SCAN_SHARE * seconds)
