"""Job ids that are never handed out twice, even after a store goes back in time.

A store's id counter can lose its latest increments: a Redis replica promoted before it had
copied the primary's last writes, an SQLite file restored from a backup. Counting on from
there would give a new job the id some client already holds, which would then read another
job's data and result. So every backend takes the next id as ``max(counter + 1,
clock_floor())``: the wall clock in microseconds. Ids stay decimal strings, unique and
increasing within one store's life; old stores' small ids keep working (the first new id
jumps past them). The guarantee holds as long as the failover or restore takes longer than
the clock difference between the old and the new host (a millisecond on NTP-synced hosts).
Microseconds stay below 2**53 (exact in a double: Lua, JavaScript) until the year 2255.
"""

from __future__ import annotations

import time


def clock_floor() -> int:
    """The smallest id a new job may get now: the wall clock in microseconds (the real clock,
    never a test's injected one: the point is time that really passed)."""
    return time.time_ns() // 1000


def next_id(counter: int) -> int:
    """The next id after ``counter`` (the last id handed out): the counter's successor or
    the clock floor, whichever is larger (a batch goes on from it one by one)."""
    return max(counter + 1, clock_floor())
