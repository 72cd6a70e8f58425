"""Which waiting jobs a claim takes next, across the names it serves, at a cost that does not
grow with the number of names.

Up to ``SEEK_NAMES`` names, a seek per name in ``jobqueue_waiting`` (name, priority, seq) and
the best head wins, as before. More names read ``jobqueue_waiting_order`` (priority, seq): every
name's waiting jobs in run order, a page at a time, keeping the served ones; the first waiting
job is usually served, so one short page answers (one statement for 2,000 names where a seek
per name was 2,000). The read is bounded (``SCAN_ROWS``): when that many jobs of other names
(or paused or capped ones) wait ahead and none is served, the seeks answer instead. Both ways
give the same jobs in the same order: priority, then seq, across names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jobqueue.backends.sql.corrupt import fail_corrupt, sort_key_problem, waiting_head
from jobqueue.backends.sql.transitions import Txn

SEEK_NAMES = 2
"""Up to this many names, a seek per name: it never reads another name's jobs."""
FIRST_PAGE = 16
SCAN_ROWS = 512
"""Waiting jobs of other names read past, at most, before the claim seeks per name instead."""


def active_counts(txn: Txn, caps: Mapping[str, int]) -> dict[str, int]:
    """Active jobs of each capped name; one statement however many names are capped."""
    if len(caps) == 1:
        name = next(iter(caps))
        return {name: int(txn.conn.execute(txn.sql.ACTIVE_COUNT, (name,)).fetchone()[0])}
    if not caps:
        return {}
    counts = {name: int(n) for name, n in txn.conn.execute(txn.sql.ACTIVE_COUNTS)}
    return {name: counts.get(name, 0) for name in caps}


def next_waiting(txn: Txn, names: Sequence[str], count: int) -> list[tuple[str, int]]:
    """``(name, id)`` of up to ``count`` waiting jobs of ``names`` in run order (at least one
    when any waits); rows whose sort keys are not integers are failed as corrupt on the way."""
    if len(names) > SEEK_NAMES:
        found = _scan(txn, frozenset(names), count)
        if found is not None:
            return found
    best: tuple[int, int, int, str] | None = None
    for name in names:
        head = waiting_head(txn, name)
        if head is not None:
            entry = (-head[0], head[1], head[2], name)
            best = entry if best is None or entry < best else best
    return [] if best is None else [(best[3], best[2])]


def _scan(txn: Txn, wanted: frozenset[str], count: int) -> list[tuple[str, int]] | None:
    """The first ``count`` waiting jobs of ``wanted`` from the cross-name order, or ``None``
    when none is among the first ``SCAN_ROWS`` (+ ``count``) waiting jobs."""
    found: list[tuple[str, int]] = []
    corrupt: list[tuple[int, str]] = []
    budget = SCAN_ROWS + count
    offset, size = 0, max(FIRST_PAGE, count)
    complete = False  # the whole waiting set, or enough of it, was read
    while offset < budget:
        size = min(size, budget - offset)
        rows = txn.conn.execute(txn.sql.WAITING_ORDER, (size, offset)).fetchall()
        for name, priority, seq, key in rows:
            if name not in wanted:
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
