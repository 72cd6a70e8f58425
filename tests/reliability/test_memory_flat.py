"""Part 7 -- memory stays flat: 100,000 jobs through a dispatcher on a Redis of the test's own
(so that ``used_memory`` measures this queue alone).

With the default retention (completed jobs: 10,000 at most, for 24 h) memory after 100,000 jobs
is the warm-up level plus the 10,000 retained jobs -- and the same after 50,000 and after
100,000 jobs: throughput does not grow it. With a short retention (100 completed jobs) memory
returns to within 512 KiB of the start. Then every key of the namespace is accounted for: each
kind either carries a TTL or is bounded by a retention path (listed in ``KEY_KINDS``).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobqueue import JobQueue
from jobqueue.backend import Retention
from jobqueue.job import JobState
from tests.reliability.support import OwnRedis, redis_client

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ROUND = 5_000  # jobs submitted in bulk, then worked through, per round
KIB = 1024

# Every kind of key a namespace may hold, and why it cannot grow without end.
KEY_KINDS: dict[str, tuple[str, str]] = {
    "job": (r"j:\d+", "job hash: live (in d, a or a waiting list) or finished (in c/f: retention)"),
    "log": (r"l:\d+", "log lines of a job: capped at MAX_LOGS, deleted with its job"),
    "waiting": (r"r:.+:-?\d+", "waiting ids of one name and priority: emptied lists vanish"),
    "levels": (r"R:.+", "priority levels with waiting jobs, per name: pruned when empty"),
    "heads": (r"H:-?\d+", "one entry per name with waiting jobs at a level: dropped when empty"),
    "head_levels": (r"HL", "the levels that have heads: one entry per level"),
    "groups": (r"G:[0-9a-f]+", "a name group: one per distinct set of served names"),
    "name_groups": (r"g:.+", "the groups of one name: one entry per group holding it"),
    "group_waiters": (
        r"gw:[0-9a-f]+",
        "idle waiters of one group: an entry per waiter, withdrawn after its wait",
    ),
    "group_uses": (r"Gt", "groups by last use: housekeeping drops those unused for a day"),
    "layout": (r"layout", "the namespace's layout version: one string"),
    "waiter_records": (r"W", "idle waiters' records: one per waiter, dropped once past its wait"),
    "inboxes": (r"h:.+", "an idle waiter's inbox: read at once, EXPIRE 60 s"),
    "finish": (r"x:.+", "finish wake-ups for wait_for: EXPIRE 300 s"),
    "submit_lane": (r"i:.+", "a submit lane's last call, for a resend: one per lane, EXPIRE 120 s"),
    "delayed": (r"d", "delayed jobs: bounded by live jobs"),
    "active": (r"a", "active leases: bounded by live jobs"),
    "completed": (r"c", "completed jobs: retention (count and age)"),
    "failed": (r"f", "failed jobs: retention (count and age)"),
    "cancelled": (r"x", "cancelled jobs: retention (count and age)"),
    "paused": (r"paused", "set of paused worker names: bounded by the names registered"),
    "dispatchers": (r"dispatchers", "live dispatchers by expiry: maintain drops expired ones"),
    "dispatcher": (r"dispatcher:.+", "one dispatcher's record: deleted on exit or by maintain"),
    "unique": (r"u", "unique key -> live job: entry removed when the job finishes"),
    "active_count": (r"ac", "active jobs per name: entry removed at zero"),
    "names": (r"N", "set of worker names: bounded by the names registered"),
    "name_counts": (r"n:.+", "jobs per state of one name: a field per state, gone at zero"),
    "counted": (r"nc", "marks a namespace whose every job is counted by name: one flag"),
    "counters": (r"id|q", "job id and enqueue sequence counters: one integer each"),
    "outcomes": (r"o:\d+", "finished attempts of one minute, four fields: EXPIRE past keeping"),
    "schedules": (r"schedules", "set of schedule names: bounded by the schedules declared"),
    "schedule": (r"S:.+", "one schedule's record: a few fields, removed with the schedule"),
    "schedule_ticks": (r"T:.+", "one schedule's recent ticks: LTRIM to SCHEDULE_TICKS_KEPT"),
    "stalled": (r"stalled", "recovered ids until maintain reports them: LTRIM to 10,000"),
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OwnRedis]:
    own = OwnRedis(tmp_path / "redis")
    own.start()
    try:
        yield own
    finally:
        own.kill()


def run_rounds(queue: JobQueue, rounds: int) -> None:
    for _ in range(rounds):
        queue.submit_jobs("noop", [{"n": n} for n in range(ROUND)])
        assert queue.work(burst=True, prefetch=100) == ROUND


def used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def test_default_retention_keeps_memory_flat(server: OwnRedis) -> None:
    began = time.monotonic()
    queue = JobQueue(server.url, namespace="flat", load_entrypoints=False)
    queue.add_worker("noop", lambda job: None)
    client = redis_client(queue)
    run_rounds(queue, 1)  # warm-up: scripts loaded, key structures created
    before = used_memory(client)
    run_rounds(queue, 9)  # 50,000 jobs in all
    at_half = used_memory(client)
    run_rounds(queue, 10)  # 100,000
    after = used_memory(client)

    retained = Retention().completed_count
    assert retained == 10_000
    counts = queue.count_by_state()
    assert counts[JobState.COMPLETED] == retained and sum(counts.values()) == retained
    # Bound: what the 10,000 retained completed jobs take (~300 B each here) plus slack.
    bound = retained * 400 + 1024 * KIB
    assert after - before <= bound, (before, after)
    # Flat: 50,000 more jobs add nothing but a little length to the ids (5 -> 6 digits in
    # 10,000 keys and zset members, allocator size classes): ~150 KiB measured. A leak of even
    # one small key per job would add megabytes.
    assert abs(after - at_half) <= 512 * KIB, (at_half, after)
    kinds = account_for_every_key(client, "flat", retained)
    print(
        f"\n[memory, default retention] jobs=100000 used_memory before={before} "
        f"after_50k={at_half} after_100k={after} growth={after - before} B "
        f"(bound {bound} B = {retained} retained x 400 B + 1 MiB; "
        f"50k->100k drift {after - at_half} B, bound 512 KiB) keys={dict(kinds)} "
        f"duration={time.monotonic() - began:.1f}s"
    )
    queue.close()


def test_short_retention_returns_memory_to_the_start(server: OwnRedis) -> None:
    began = time.monotonic()
    retention = Retention(completed_count=100)
    queue = JobQueue(server.url, namespace="short", retention=retention, load_entrypoints=False)
    queue.add_worker("noop", lambda job: None)
    client = redis_client(queue)
    run_rounds(queue, 1)
    before = used_memory(client)
    run_rounds(queue, 6)  # 30,000 jobs more
    after = used_memory(client)
    assert queue.count_by_state()[JobState.COMPLETED] == 100
    assert after - before <= 512 * KIB, (before, after)
    kinds = account_for_every_key(client, "short", 100)
    print(
        f"\n[memory, completed_count=100] jobs=35000 used_memory before={before} "
        f"after={after} growth={after - before} B (bound 512 KiB) keys={dict(kinds)} "
        f"duration={time.monotonic() - began:.1f}s"
    )
    queue.close()


def account_for_every_key(client: Any, namespace: str, retained: int) -> Counter[str]:
    """Classify every key of the namespace; fail on a key of no known kind, a job hash no
    retention path reaches, or a wake-up key that is neither trimmed nor expiring."""
    prefix = f"jq:{{{namespace}}}:"
    patterns = {kind: re.compile(regex) for kind, (regex, _) in KEY_KINDS.items()}
    finished = {m.decode() for s in "cfx" for m in client.zrange(prefix + s, 0, -1)}
    kinds: Counter[str] = Counter()
    for raw in client.scan_iter(match=prefix + "*", count=1000):
        name = raw.decode()[len(prefix) :]
        kind = next((k for k, p in patterns.items() if p.fullmatch(name)), None)
        assert kind is not None, f"key {raw!r} is of no known kind: nothing bounds it"
        kinds[kind] += 1
        if kind == "job":
            assert name[2:] in finished, f"{name}: finished but not under retention"
        elif kind in ("finish", "submit_lane", "outcomes"):
            assert client.ttl(raw) > 0, f"{name} has no TTL"
        elif kind == "wakeups":
            assert client.llen(raw) <= 64
    assert kinds["job"] == len(finished) == retained
    assert client.zcard(prefix + "c") == retained
    return kinds
