"""Claims that seek past the claim cursor while a snapshot pins the xmin horizon (issue 21,
``jobqueue.backends.sql.claim_cursor``), on real PostgreSQL.

No timing decides anything here: the cursor's threshold is set so that every full scan counts
as slow (cursor mode from the first claim) and its clock is the test's, so a timed full scan
runs exactly when a test moves the clock. What a claim did is read from the cursor's
counters (full scans, seeks, mode switches)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from jobqueue.backend import WorkSpec
from jobqueue.backends.postgres import PostgresBackend
from jobqueue.backends.sql.claim_cursor import (
    MAX_LEVELS,
    PRIORITY_MAX,
    PRIORITY_MIN,
    ClaimCursor,
    _Track,
)
from jobqueue.engine import Engine
from jobqueue.job import Job, JobState
from tests.backends.postgres_fixtures import drop_schema, new_schema, postgres_url
from tests.backends.test_postgres_concurrency import run_released_together

__all__ = ["postgres_url"]

pytestmark = pytest.mark.postgres

NAME = "soak"
SPEC = WorkSpec(names=(NAME,), lease_seconds=60)


class Queue:
    """A backend whose claim cursor enters cursor mode on the first claim and runs a timed
    full scan only when ``tick`` moves its clock past one."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = schema
        self.backend = PostgresBackend(f"{url}?schema={schema}")
        self.engine = Engine(self.backend)
        cursor = self.backend.claim_cursor
        assert cursor is not None
        self.cursor: ClaimCursor = cursor
        self.now = 0.0
        cursor.clock = lambda: self.now
        cursor.slow_scan = 0.0  # every full scan is "slow": no timing decides the mode
        cursor.enter_after = 1  # the first slow one enters cursor mode
        cursor.scan_every = 60.0

    def tick(self) -> None:
        """Past the next timed full scan."""
        self.now += 3600.0

    def submit(self, count: int, priority: int = 0) -> list[str]:
        now = time.time()
        jobs = [
            Job(id="", name=NAME, data={"n": n}, created_at=now, run_at=now, priority=priority)
            for n in range(count)
        ]
        return [job.id for job in self.engine.submit_many(jobs)]

    def claim(self, limit: int) -> list[str]:
        return [claim.job.id for claim in self.engine.claim_many(SPEC, limit)]

    def counters(self) -> tuple[int, int, int]:
        return self.cursor.full_scans, self.cursor.seeks, self.cursor.entered


@pytest.fixture
def queue(postgres_url: str) -> Iterator[Queue]:
    schema = new_schema()
    made = Queue(postgres_url, schema)
    try:
        yield made
    finally:
        made.engine.close()
        drop_schema(postgres_url, schema)


@pytest.fixture
def pinned(postgres_url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A session holding a snapshot (and an xid) open: vacuum can remove no row version
    dead since, so every claimed job's index entry stays."""
    conn = psycopg.connect(postgres_url, autocommit=True)
    try:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SELECT txid_current()")
        yield conn
    finally:
        conn.close()


def test_claims_seek_past_the_claimed_jobs_while_a_snapshot_pins_the_horizon(
    queue: Queue, pinned: psycopg.Connection[tuple[Any, ...]]
) -> None:
    ids = queue.submit(200)
    claimed = queue.claim(10)
    assert claimed == ids[:10]
    assert queue.counters() == (1, 0, 1)  # one full scan, slow: cursor mode
    assert queue.cursor.seeking(NAME)
    for start in range(10, 200, 10):
        claimed = queue.claim(10)
        assert claimed == ids[start : start + 10]  # run order, none skipped
    assert queue.counters() == (1, 19, 1)  # every later claim a seek
    # Nothing left after the cursor: the seek finds none, so the full scan runs too.
    assert queue.claim(10) == []
    assert queue.counters() == (2, 20, 1)
    with psycopg.connect(queue.url) as conn:
        waiting = conn.execute(
            f"SELECT count(*) FROM {queue.schema}.jobqueue_jobs WHERE state = 'waiting'"
        ).fetchone()
    assert waiting == (0,)


def test_a_higher_priority_job_is_claimed_first_by_the_seek(
    queue: Queue, pinned: psycopg.Connection[tuple[Any, ...]]
) -> None:
    ids = queue.submit(30)
    assert queue.claim(5) == ids[:5]
    (urgent,) = queue.submit(1, priority=5)
    assert queue.claim(3) == [urgent, *ids[5:7]]
    (lower,) = queue.submit(1, priority=-1)
    assert queue.claim(24) == [*ids[7:], lower]  # all that wait: no short seek
    assert queue.counters() == (1, 2, 1)  # the seeks found them all: no full scan


def test_a_job_numbered_from_an_older_block_is_claimed_by_the_next_full_scan(
    queue: Queue, pinned: psycopg.Connection[tuple[Any, ...]]
) -> None:
    ids = queue.submit(40)
    assert queue.claim(10) == ids[:10]
    (late,) = queue.submit(1)
    # As if another process had stored it with a number of its older block: it sorts before
    # the jobs this process claimed (the order numbers come in per-transaction blocks).
    with psycopg.connect(queue.url, autocommit=True) as conn:
        conn.execute(
            f"UPDATE {queue.schema}.jobqueue_jobs SET seq = (SELECT min(seq) - 1 FROM "
            f"{queue.schema}.jobqueue_jobs) WHERE id = %s",
            (int(late),),
        )
    assert queue.claim(5) == ids[10:15]  # a seek: it reads after the cursor only
    assert queue.counters() == (1, 1, 1)
    queue.tick()  # a full scan is due
    assert queue.claim(5) == [late, *ids[15:19]]
    assert queue.counters() == (2, 1, 1)
    # It was inside the claimed stretch: the next claim scans in full again, finds none
    # there, and the seeks resume.
    assert queue.claim(5) == ids[19:24]
    assert queue.counters() == (3, 1, 1)
    assert queue.claim(5) == ids[24:29]
    assert queue.counters() == (3, 2, 1)


def test_a_job_whose_lock_was_skipped_then_released_is_still_claimed(
    queue: Queue, postgres_url: str, pinned: psycopg.Connection[tuple[Any, ...]]
) -> None:
    ids = queue.submit(20)
    assert queue.claim(5) == ids[:5]
    with psycopg.connect(postgres_url) as other:  # a claimer that locks the head ...
        other.execute(
            f"SELECT id FROM {queue.schema}.jobqueue_jobs WHERE id = %s FOR UPDATE",
            (int(ids[5]),),
        )
        assert queue.claim(5) == ids[6:11]  # ... skipped
        other.rollback()  # ... then rolls back: the job waits before the cursor
    claimed = queue.claim(20)
    assert claimed == [ids[5], *ids[11:]]  # the seek came up short: the full scan found it
    assert queue.counters() == (2, 2, 1)


def test_a_fast_full_scan_returns_to_normal_mode(queue: Queue) -> None:
    ids = queue.submit(10)
    assert queue.claim(2) == ids[:2]
    assert queue.cursor.seeking(NAME)
    queue.cursor.slow_scan = float("inf")  # every full scan fast from now on
    queue.tick()
    assert queue.claim(2) == ids[2:4]
    assert not queue.cursor.seeking(NAME)
    assert queue.claim(2) == ids[4:6]
    assert queue.counters() == (3, 0, 1)


def test_names_keep_cursors_of_their_own(queue: Queue) -> None:
    ids = queue.submit(4)
    now = time.time()
    (other,) = queue.engine.submit_many(
        [Job(id="", name="other", data={}, created_at=now, run_at=now)]
    )
    assert queue.claim(2) == ids[:2]
    assert queue.cursor.seeking(NAME) and not queue.cursor.seeking("other")
    claims = queue.engine.claim_many(WorkSpec(names=("other",), lease_seconds=60), 5)
    assert [claim.job.id for claim in claims] == [other.id]


def test_a_claim_for_two_names_seeks_per_name(
    queue: Queue, pinned: psycopg.Connection[tuple[Any, ...]]
) -> None:
    now = time.time()
    jobs = [
        Job(id="", name=name, data={}, created_at=now, run_at=now)
        for _ in range(6)
        for name in (NAME, "other")
    ]
    ids = [job.id for job in queue.engine.submit_many(jobs)]  # the names take turns
    both = WorkSpec(names=(NAME, "other"), lease_seconds=60)
    assert [claim.job.id for claim in queue.engine.claim_many(both, 2)] == ids[:2]
    # The first claim is PostgreSQL's one-step call (jobqueue_apply_held): a full scan of both
    # names, timed and reported for each (both slow: cursor mode).
    assert queue.counters() == (2, 0, 2)
    # In cursor mode the claims take the store's way, which reads both heads per job it
    # takes, each by seeking.
    assert [claim.job.id for claim in queue.engine.claim_many(both, 8)] == ids[2:10]
    assert queue.counters() == (2, 16, 2)  # every head since a seek
    (urgent,) = queue.submit(1, priority=5)
    assert [claim.job.id for claim in queue.engine.claim_many(both, 3)] == [urgent, *ids[10:]]
    # The third job: nothing after the first name's cursor any more, so it is read in full
    # after its seek.
    assert queue.counters() == (3, 22, 2)
    # Nothing after either cursor: each seek finds none, then each name is read in full.
    assert queue.engine.claim_many(both, 1) == []
    assert queue.counters() == (5, 24, 2)


def test_processes_claiming_in_cursor_mode_run_each_job_once_and_lose_none(
    postgres_url: str, pinned: psycopg.Connection[tuple[Any, ...]]
) -> None:
    """Claimers seeking side by side skip each other's locked rows (and the rows a seek
    locked but did not claim, until its commit) while submitters add jobs numbered from
    their own blocks: every job still runs, once."""
    schema = new_schema()
    url = f"{postgres_url}?schema={schema}"
    upfront, submitters, each = 200, 2, 100
    total = upfront + submitters * each
    backend = PostgresBackend(url)
    try:
        now = time.time()
        first = backend.insert(
            [Job(id="", name="c", data={}, created_at=now, run_at=now) for _ in range(upfront)]
        )
        commands = [["submit-many", url, "c", str(each)] for _ in range(submitters)]
        commands += [["claim-seeking", url, "c", str(total), batch] for batch in ("1", "5", "5")]
        outputs = run_released_together(commands)
        submitted = [job.id for job in first]
        for out in outputs[:submitters]:
            submitted += json.loads(out[-1])
        claimed = [line.split()[0] for out in outputs[submitters:] for line in out]
        assert len(set(submitted)) == total
        assert sorted(claimed) == sorted(submitted)  # each exactly once, none lost
        assert backend.counts()["c"][JobState.COMPLETED] == total
    finally:
        backend.close()
        drop_schema(postgres_url, schema)


# -- the ranges a seek reads (no database) ----------------------------------------------------


def test_ranges_leave_out_each_known_levels_claimed_stretch() -> None:
    track = _Track()
    assert track.note([(0, 50), (5, 100), (0, 40)]) is True  # (0, 40) is inside (0, <= 50)
    ranges = track.ranges()
    assert list(zip(ranges.tops, ranges.bottoms, ranges.afters, strict=True)) == [
        (PRIORITY_MAX, 6, PRIORITY_MIN),  # above the highest level
        (5, 5, 100),
        (4, 1, PRIORITY_MIN),  # strictly between the levels
        (0, 0, 50),
        (-1, PRIORITY_MIN, PRIORITY_MIN),  # below the lowest
    ]
    assert _Track().ranges().tops == [PRIORITY_MAX]  # no level: the whole index
    adjacent = _Track()
    adjacent.note([(1, 7), (0, 3), (PRIORITY_MIN, 9)])
    ranges = adjacent.ranges()
    assert list(zip(ranges.tops, ranges.bottoms, ranges.afters, strict=True)) == [
        (PRIORITY_MAX, 2, PRIORITY_MIN),
        (1, 1, 7),
        (0, 0, 3),
        (-1, PRIORITY_MIN + 1, PRIORITY_MIN),
        (PRIORITY_MIN, PRIORITY_MIN, 9),
    ]


def test_only_the_levels_claimed_last_are_kept() -> None:
    track = _Track()
    track.note([(level, 1) for level in range(MAX_LEVELS + 2)])
    assert sorted(track.levels) == list(range(2, MAX_LEVELS + 2))
    track.note([(2, 5), (MAX_LEVELS + 2, 1)])  # 2 claimed again: 3 is the oldest now
    assert sorted(track.levels) == [2, *range(4, MAX_LEVELS + 3)]


def test_cursor_mode_needs_several_slow_full_scans_in_a_row() -> None:
    # One slow claim is as likely a busy machine as dead index entries.
    cursor = ClaimCursor(slow_scan=0.005, enter_after=3, clock=lambda: 0.0)
    cursor.scanned("a", [(0, 10)], 0.010)
    cursor.scanned("a", [(0, 20)], 0.010)
    assert not cursor.seeking("a")
    cursor.scanned("a", [(0, 30)], 0.001)  # a fast one: the count starts again
    cursor.scanned("a", [(0, 40)], 0.010)
    cursor.scanned("a", [(0, 50)], 0.010)
    assert not cursor.seeking("a") and cursor.entered == 0
    cursor.scanned("a", [(0, 60)], 0.010)
    assert cursor.seeking("a") and cursor.entered == 1
    assert cursor.plan("a") is not None  # and the next claim seeks
