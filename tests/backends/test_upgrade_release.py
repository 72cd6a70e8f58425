"""Upgrades keep data: stores written by released code are read intact and processed.

The 0.1.0 fixtures (made by ``fixtures/make_release_fixtures.py`` at commit 2f5f4ef) are an
SQLite file at schema version 9 and a Redis namespace dumped key by key (DUMP payloads of a
Redis 7.0 server, restored here under a fresh namespace). Both hold the jobs of
``fixtures/release_jobs.py``: every state, unique keys, a paused name, a schedule's record and
outcome counts. The version-1 SQLite file (``fixtures/sqlite-v1.db``, commit dd81be6) is read
in test_sqlite_migrations.py; here its jobs are processed too.

Time is the writer's fixed clock, moved by the test: at ``READ_AT`` everything is as it was
left; at ``AFTER`` the active job's lease has expired (it is recovered and run again) and the
delayed job is due.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobqueue import JobQueue, JobState, Retention
from tests.backends.fixtures.release_jobs import (
    AFTER,
    HOUR,
    JOBS,
    NOW,
    PAUSED,
    READ_AT,
    SCHEDULE,
    SCHEDULE_TICK,
)
from tests.backends.redis_fixtures import delete_namespace, new_namespace

FIXTURES = Path(__file__).parent / "fixtures"
REDIS_DUMP = FIXTURES / "redis-0.1.0.json"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def restore_namespace(client: Any, dump: dict[str, Any], namespace: str) -> None:
    for key, entry in dump["keys"].items():
        ttl = max(entry["pttl"], 0)  # -1: no expiry, which RESTORE writes as 0
        client.restore(f"jq:{{{namespace}}}:{key}", ttl, bytes.fromhex(entry["dump"]))


@pytest.fixture(params=["sqlite", "redis"])
def release_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store holding the 0.1.0 fixture: a copy of the SQLite file, or the Redis dump
    restored under a new namespace (deleted after)."""
    if request.param == "sqlite":
        path = tmp_path / "jobs.db"
        shutil.copyfile(FIXTURES / "sqlite-v9.db", path)
        yield f"sqlite:///{path}"
        return
    base = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(base)
    dump = json.loads(REDIS_DUMP.read_text())
    server = client.info("server")["redis_version"]
    if tuple(map(int, server.split(".")[:2])) < (7, 0):
        pytest.fail(f"the dump holds Redis 7.0 DUMP payloads; this server is {server}")
    namespace = new_namespace()
    try:
        restore_namespace(client, dump, namespace)
        yield f"{base}?namespace={namespace}"
    finally:
        delete_namespace(client, namespace)
        client.close()


def _open(url: str, clock: Clock, **options: Any) -> JobQueue:
    queue = JobQueue(url, clock=clock, load_entrypoints=False, **options)
    queue.add_worker("mail", lambda job: {"mailed": job.data["to"]})
    queue.add_worker("index", lambda job: {"indexed": job.data["doc"]})
    queue.add_worker("report", lambda job: "reported")
    return queue


def _work_until(queue: JobQueue, clock: Clock, done: set[str]) -> None:
    """Burst runs until every job of ``done`` completed: bounded, since a recovery may come
    from the maintenance at the end of one run and its job run by the next."""
    for _ in range(5):
        queue.work(burst=True)
        states = {job_id: queue.get_job_by_id(job_id) for job_id in done}
        if all(j is not None and j.state is JobState.COMPLETED for j in states.values()):
            return
    raise AssertionError({k: v.state if v else None for k, v in states.items()})


def test_the_fixtures_are_the_release_s() -> None:
    conn = sqlite3.connect(FIXTURES / "sqlite-v9.db")
    try:
        (version,) = conn.execute(
            "SELECT value FROM jobqueue_meta WHERE key = 'schema_version'"
        ).fetchone()
    finally:
        conn.close()
    assert int(version) == 9
    dump = json.loads(REDIS_DUMP.read_text())
    assert dump["redis_version"].startswith("7.0.") and "2f5f4ef" in dump["written_by"]
    assert {"id", "j:1", "j:10", "paused", "schedules", "u"} <= set(dump["keys"])


def test_every_job_of_the_release_reads_intact(release_url: str) -> None:
    queue = _open(release_url, Clock(READ_AT))
    try:
        for job_id, spec in JOBS.items():
            job = queue.get_job_by_id(job_id)
            if spec["state"] == "removed":
                assert job is None
                continue
            assert job is not None, job_id
            options = spec["options"]
            assert (job.state.value, job.name, job.data) == (
                spec["state"],
                spec["name"],
                spec["data"],
            ), job_id
            assert job.priority == options.get("priority", 0)
            assert job.unique_key == options.get("unique_key")
            assert job.attempts == options.get("attempts", 1)
            assert job.timeout == options.get("timeout")
            assert job.created_at == NOW
            assert job.run_at == NOW + options.get("delay", 0.0)
            assert job.attempts_made == spec.get("attempts_made", 0), job_id
            assert job.title == spec.get("title"), job_id
            assert [line.message for line in job.logs] == spec.get("logs", []), job_id
            assert job.progress == spec.get("progress", 0.0), job_id
            assert job.result == spec.get("result")
            assert (str(job.error) if job.error else None) == spec.get("error")

        failed = queue.get_job_by_id("2")
        assert failed is not None and failed.error is not None
        assert failed.error.traceback.startswith("Traceback")
        assert [a.outcome.value for a in failed.history] == ["retried", "failed"]
        assert [a.dispatcher for a in failed.history] == ["host-a:1234"] * 2
        active = queue.get_job_by_id("3")
        assert active is not None and active.lease_expires_at == NOW + HOUR
        assert active.progress_message == "half way" and active.dispatcher == "host-a:1234"

        expected = Counter(s["state"] for s in JOBS.values() if s["state"] != "removed")
        counts = queue.count_by_state()
        assert {state.value: n for state, n in counts.items() if n} == dict(expected)
        by_name = queue.count_by_name()
        for name in ("mail", "index", "report"):
            want = Counter(
                s["state"] for s in JOBS.values() if s["name"] == name and s["state"] != "removed"
            )
            assert {st.value: n for st, n in by_name[name].items() if n} == dict(want), name
        waiting = [job.id for job in queue.list_jobs(JobState.WAITING)]
        assert sorted(waiting) == sorted(i for i, s in JOBS.items() if s["state"] == "waiting")
        assert queue.paused() == frozenset({PAUSED})

        (schedule,) = queue.schedules()
        assert (schedule.name, schedule.last_tick, schedule.last_job_id) == (
            SCHEDULE["name"],
            SCHEDULE_TICK,
            "10",
        )
        assert schedule.last_job_state is JobState.WAITING

        totals: Counter[str] = Counter()
        for bucket in queue.throughput("minute"):
            totals.update(completed=bucket.completed, failed=bucket.failed)
            totals.update(retried=bucket.retried, cancelled=bucket.cancelled)
        # Attempts only: cancelling a waiting job ends no attempt.
        assert +totals == Counter(completed=1, failed=1, retried=1)

        # A unique key still held answers with its holder and stores nothing new.
        again = queue.submit_job("mail", {"to": "d@example.com"}, unique_key="mail:d")
        assert again.id == "4" and again.deduplicated
        assert queue.count_by_state() == counts
    finally:
        queue.close()


def test_the_release_s_jobs_are_processed_after_the_upgrade(release_url: str) -> None:
    clock = Clock(READ_AT)
    queue = _open(release_url, clock)
    try:
        # Now: the waiting jobs of names not paused; the leased and the delayed ones wait.
        _work_until(queue, clock, {"4", "5"})
        assert queue.get_job_by_id("3").state is JobState.ACTIVE  # type: ignore[union-attr]
        assert queue.get_job_by_id("6").state is JobState.DELAYED  # type: ignore[union-attr]
        assert queue.get_job_by_id("9").state is JobState.WAITING  # type: ignore[union-attr]

        clock.now = AFTER  # the lease has expired and the delayed job is due
        _work_until(queue, clock, {"3", "6"})
        recovered = queue.get_job_by_id("3")
        assert recovered is not None and recovered.result == {"mailed": "c@example.com"}
        assert recovered.stalls == 1 and recovered.attempts_made == 2
        assert [line.message for line in recovered.logs][:1] == ["started"]

        queue.resume(PAUSED)
        _work_until(queue, clock, {"9", "10"})
        assert queue.get_job_by_id("10").result == "reported"  # type: ignore[union-attr]

        retried = queue.retry_job("2")  # a failed job of the release runs again on request
        assert retried.state is JobState.WAITING
        _work_until(queue, clock, {"2"})

        finished = {job_id: queue.get_job_by_id(job_id) for job_id in JOBS}
        assert finished["1"].result == JOBS["1"]["result"]  # type: ignore[union-attr]
        assert finished["7"].state is JobState.CANCELLED  # type: ignore[union-attr]
        assert finished["8"] is None
        # Ids go on: a new job takes none of the release's ids, the removed one's included.
        new = queue.submit_job("index", {"doc": 46})
        assert new.id not in JOBS
    finally:
        queue.close()


def test_a_version_1_file_s_jobs_are_processed_after_the_upgrade(tmp_path: Path) -> None:
    """The schema-1 file (make_sqlite_v1.py): its leases and delays end in 2100."""
    path = tmp_path / "jobs.db"
    shutil.copyfile(FIXTURES / "sqlite-v1.db", path)
    far = 4_102_444_800.0
    keep = Retention(None, None, None, None, None, None)  # the year 2100 would trim 2023's jobs
    clock = Clock(far - 60)
    queue = _open(f"sqlite:///{path}", clock, retention=keep)
    try:
        _work_until(queue, clock, {"4", "5"})
        assert queue.get_job_by_id("3").state is JobState.ACTIVE  # type: ignore[union-attr]
        assert queue.get_job_by_id("6").state is JobState.DELAYED  # type: ignore[union-attr]
        clock.now = far + 60
        _work_until(queue, clock, {"3", "6"})
        recovered = queue.get_job_by_id("3")
        assert recovered is not None and recovered.stalls == 1
        assert recovered.result == {"mailed": "c@example.com"} and recovered.unique_key == "mail:c"
        done = queue.get_job_by_id("1")
        assert done is not None and done.result == {"sent": 1, "ids": ["m1"]}
        failed = queue.get_job_by_id("2")
        assert failed is not None and failed.state is JobState.FAILED
        assert queue.get_job_by_id("7") is None
        new = queue.submit_job("mail", {"to": "e@example.com"})
        assert new.id not in {str(i) for i in range(1, 8)}
    finally:
        queue.close()
