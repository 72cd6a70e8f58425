"""Where the outcome counts live, which the shared contract cannot look at: SQLite's table
(its constraints, its trimming, reads beside a writer) and Redis's per-minute hashes (one a
minute, under the namespace's hash tag, expiring a day and an hour later)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis

from jobqueue import lifecycle
from jobqueue.backend import Backend, BackendOptions, WorkSpec
from jobqueue.backends.redis import RedisBackend
from jobqueue.backends.sqlite import SQLiteBackend
from jobqueue.engine import Engine
from jobqueue.job import Job, JobError
from jobqueue.testing import ManualClock
from tests.backends.redis_fixtures import delete_namespace, new_namespace, redis_url

__all__ = ["redis_url"]

SPEC = WorkSpec(("a",), lease_seconds=30)


def finish_one(backend: Backend | Engine, clock: ManualClock, *, fail: bool = False) -> None:
    engine = backend if isinstance(backend, Engine) else Engine(backend)
    job = engine.submit(Job(id="", name="a", data=None, created_at=clock(), run_at=clock()))
    claim = engine.claim(SPEC)
    assert claim is not None and claim.job.id == job.id
    if fail:
        engine.fail(job.id, claim.token, JobError("E", "x"), None)
    else:
        engine.complete(job.id, claim.token, None, None)


# -- SQLite --------------------------------------------------------------------------------------


def test_sqlite_rows_are_checked_and_trimmed_by_maintain(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "jobs.db"
    backend = Engine(SQLiteBackend(str(path), BackendOptions(clock=clock)))
    minute = lifecycle.outcome_minute(clock())
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        finish_one(backend, clock)
        finish_one(backend, clock)
        finish_one(backend, clock, fail=True)
        rows = raw.execute("SELECT minute, outcome, count FROM jobqueue_outcomes ORDER BY 2")
        assert rows.fetchall() == [(minute, "completed", 2), (minute, "failed", 1)]
        for bad in [(minute, "stalled", 1), (minute + 1, "failed", 0), (None, "failed", 1)]:
            with pytest.raises(sqlite3.IntegrityError):
                raw.execute("INSERT INTO jobqueue_outcomes VALUES (?, ?, ?)", bad)
        raw.execute("BEGIN IMMEDIATE")  # another process writing: reads still answer
        try:
            assert backend.outcome_counts(0) == {minute: {"completed": 2, "failed": 1}}
        finally:
            raw.execute("ROLLBACK")
        clock.advance(60 * lifecycle.OUTCOME_MINUTES_KEPT)
        finish_one(backend, clock)
        assert raw.execute("SELECT count(*) FROM jobqueue_outcomes").fetchone() == (3,)
        backend.maintain()
        latest = lifecycle.outcome_minute(clock())
        rows = raw.execute("SELECT minute, outcome, count FROM jobqueue_outcomes")
        assert rows.fetchall() == [(latest, "completed", 1)]
    finally:
        raw.close()
        backend.close()


# -- Redis ---------------------------------------------------------------------------------------


@pytest.fixture(params=["redis", "fakeredis"])
def client(request: pytest.FixtureRequest) -> Iterator[Any]:
    made: Any
    if request.param == "redis":
        made = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    else:
        made = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    yield made
    made.close()


def test_redis_keeps_one_expiring_hash_a_minute(client: Any) -> None:
    clock = ManualClock()
    backend = RedisBackend(client, BackendOptions(clock=clock), namespace=new_namespace())
    prefix = f"jq:{{{backend.namespace}}}:"
    try:
        minute = lifecycle.outcome_minute(clock())
        finish_one(backend, clock)
        finish_one(backend, clock)
        clock.advance(60)
        finish_one(backend, clock, fail=True)
        keys = sorted(key.decode() for key in client.keys(prefix + "o:*"))
        assert keys == [f"{prefix}o:{minute}", f"{prefix}o:{minute + 1}"]
        assert client.hgetall(keys[0]) == {b"c": b"2"}
        assert client.hgetall(keys[1]) == {b"f": b"1"}
        # Each expires once the policy no longer keeps its minute (plus a minute of slack):
        # both were written 20 s into their minute, so both have that long to live.
        kept = lifecycle.OUTCOME_MINUTES_KEPT * 60
        for key in keys:
            assert kept - 60 <= client.ttl(key) <= kept + 60
        assert backend.outcome_counts(minute) == {
            minute: {"completed": 2},
            minute + 1: {"failed": 1},
        }
        client.hset(keys[0], mapping={"zz": "1", "x": "not a number"})  # foreign fields
        assert backend.outcome_counts(minute)[minute] == {"completed": 2}
    finally:
        delete_namespace(client, backend.namespace)
        backend.close()
