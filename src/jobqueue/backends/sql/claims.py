"""Which waiting jobs a claim takes next, across the names it serves, at a cost that does not
grow with the number of names.

Up to ``SEEK_NAMES`` open names, a seek per name in ``jobqueue_waiting`` (name, priority, seq)
and the best head wins, as before. More names read ``jobqueue_waiting_order`` (priority, seq):
every name's waiting jobs in run order, a page at a time, keeping the served ones; the first
waiting job is usually served, so one short page answers (one statement for 2,000 names where
a seek per name was 2,000). The read is bounded (``SCAN_ROWS``): when that many jobs of other
names (or paused or capped ones) wait ahead and none is served, the seeks answer instead. Both
ways give the same jobs in the same order: priority, then seq, across names.

Nothing here walks the served names per claim on the common path: the spec's names are
prepared once per spec (``Served``), and paused or capped names are a set of exclusions.
Where the dialect has a claim cursor (PostgreSQL: ``claim_cursor``), the seek per name goes
past the jobs this process claimed once reading from the index start turns slow.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from jobqueue.backend import WorkSpec
from jobqueue.backends.sql.claim_cursor import ClaimCursor
from jobqueue.backends.sql.corrupt import (
    fail_corrupt,
    sort_key_problem,
    waiting_head,
    waiting_heads,
)
from jobqueue.backends.sql.transitions import Txn

SEEK_NAMES = 2
"""Up to this many open names, a seek per name: it never reads another name's jobs."""
FIRST_PAGE = 16
SCAN_ROWS = 512
"""Waiting jobs of other names read past, at most, before the claim seeks per name instead."""


@dataclass(frozen=True, slots=True)
class Served:
    """A spec's names as the claim reads them: in order without repeats, as a set, and the
    caps of those names."""

    names: tuple[str, ...]
    wanted: frozenset[str]
    caps: dict[str, int]
    closed: frozenset[str]
    """Names capped at 0 (or less): blocked with no job active."""

    @classmethod
    def of(cls, spec: WorkSpec) -> Served:
        names = tuple(dict.fromkeys(spec.names))
        caps = {name: spec.max_active[name] for name in names if name in spec.max_active}
        closed = frozenset(name for name, cap in caps.items() if cap <= 0)
        return cls(names, frozenset(names), caps, closed)


def served(spec: WorkSpec, last: tuple[WorkSpec, Served] | None) -> tuple[WorkSpec, Served]:
    """``spec`` prepared, reusing ``last`` when it is the same spec (a dispatcher claims with
    the same one every time; equal is enough, so an equal new spec reuses it too)."""
    if last is not None and (last[0] is spec or last[0] == spec):
        return last
    return spec, Served.of(spec)


def active_counts(txn: Txn, caps: Mapping[str, int]) -> dict[str, int]:
    """Active jobs of capped names (a name left out has none); one statement however many
    names are capped."""
    if not caps:
        return {}
    if len(caps) == 1:
        name = next(iter(caps))
        return {name: int(txn.conn.execute(txn.sql.ACTIVE_COUNT, (name,)).fetchone()[0])}
    return {name: int(n) for name, n in txn.conn.execute(txn.sql.ACTIVE_COUNTS) if name in caps}


def next_waiting(
    txn: Txn,
    served: Served,
    blocked: Collection[str],
    count: int,
    cursor: ClaimCursor | None = None,
) -> list[tuple[str, int]]:
    """``(name, id)`` of up to ``count`` waiting jobs of the served names not ``blocked``
    (paused or at their cap; all of them served), in run order, at least one when any waits;
    rows whose sort keys are not integers are failed as corrupt on the way. With a
    ``cursor``, the seeks per name go past it where it says so (``claim_cursor``)."""
    open_count = len(served.names) - len(blocked)
    if open_count <= 0:
        return []
    if open_count > SEEK_NAMES:
        found = _scan(txn, served.wanted, blocked, count)
        if found is not None:
            return found
    if open_count == 1:  # one name: its first ``count`` in one read
        (name,) = (name for name in served.names if name not in blocked)
        return [(name, head[2]) for head in waiting_heads(txn, name, count)]
    best: tuple[int, int, int, str] | None = None
    read: list[tuple[str, float | None]] = []  # name, the full scan's seconds (None: a seek)
    for name in served.names:
        if name in blocked:
            continue
        head, seconds = _head(txn, name, cursor)
        read.append((name, seconds))
        if head is not None:
            entry = (-head[0], head[1], head[2], name)
            best = entry if best is None or entry < best else best
    if cursor is not None:  # the position taken is the winner's; the others' heads stay
        for name, seconds in read:
            taken = [(-best[0], best[1])] if best is not None and best[3] == name else []
            if seconds is None:
                cursor.sought(name, taken)
            else:
                cursor.scanned(name, taken, seconds)
    return [] if best is None else [(best[3], best[2])]


def _head(
    txn: Txn, name: str, cursor: ClaimCursor | None
) -> tuple[tuple[int, int, int] | None, float | None]:
    """``name``'s head and, when it was read from the index start, how long that took: a
    seek past the cursor where it says so (``WAITING_HEAD_SEEK``), the full read when it
    says not or the seek found nothing."""
    ranges = None if cursor is None else cursor.plan(name)
    if cursor is not None and ranges is not None:
        row = txn.conn.execute(
            txn.sql.WAITING_HEAD_SEEK, (ranges.tops, ranges.bottoms, ranges.afters, name)
        ).fetchone()
        if row is not None:
            return (row[0], row[1], row[2]), None
        cursor.sought(name, [])  # came up short: the full read follows (``scanned``)
    started = time.perf_counter()
    head = waiting_head(txn, name)
    return head, time.perf_counter() - started


def _scan(
    txn: Txn, wanted: frozenset[str], blocked: Collection[str], count: int
) -> list[tuple[str, int]] | None:
    """The first ``count`` waiting jobs of ``wanted`` but not ``blocked`` names from the
    cross-name order, or ``None`` when none is among the first ``SCAN_ROWS`` + ``count``."""
    found: list[tuple[str, int]] = []
    corrupt: list[tuple[int, str]] = []
    budget = SCAN_ROWS + count
    offset, size = 0, max(FIRST_PAGE, count)
    complete = False  # the whole waiting set, or enough of it, was read
    while offset < budget:
        size = min(size, budget - offset)
        rows = txn.conn.execute(txn.sql.WAITING_ORDER, (size, offset)).fetchall()
        for name, priority, seq, key in rows:
            if name not in wanted or name in blocked:
                continue
            problem = sort_key_problem(priority, seq)
            if problem is not None:
                corrupt.append((key, problem))
            else:
                found.append((name, key))
                if len(found) == count:
                    break
        if len(found) == count or len(rows) < size:
            complete = True
            break
        offset += size
        size *= 4
    # Failed only now: failing a row takes it out of the order the pages are counted in.
    for key, problem in corrupt:
        fail_corrupt(txn, key, problem)
    return found if found or complete else None
