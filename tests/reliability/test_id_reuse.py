"""An id acknowledged to a client is never given to another job, even after the store went
back in time: a Redis replica promoted before it copied the primary's last writes (its id
counter lags), an SQLite file restored from a backup. Both are reproduced here exactly as
they leave the store -- the counter and the jobs of an earlier moment -- and the ids handed
out afterwards must all be new (``jobqueue.ids``: the next id is at least the wall clock in
microseconds). The real failover, with Sentinel and processes, is test_redis_failover.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import redis

from jobqueue.backend import BackendOptions
from jobqueue.backends.sqlite import SQLiteBackend
from jobqueue.engine import Engine
from jobqueue.job import Job
from tests.reliability.support import key, open_backend


def _job(n: int) -> Job:
    return Job(id="", name="effect", data={"n": n})


def test_a_redis_counter_that_lost_its_last_increments_never_reissues_an_id(
    redis_url: str, namespace: str
) -> None:
    backend = Engine(open_backend(redis_url, namespace))
    client = redis.Redis.from_url(redis_url)
    try:
        backend.submit_many([_job(n) for n in range(3)])
        # What a replica cut off here holds: this counter, and none of the jobs after it.
        counter = client.get(key(namespace, "id"))
        assert counter is not None
        acknowledged = [backend.submit(_job(n)).id for n in range(3)]
        acknowledged += [job.id for job in backend.submit_many([_job(n) for n in range(3)])]
        client.set(key(namespace, "id"), counter)
        client.delete(*(key(namespace, f"j:{job_id}") for job_id in acknowledged))

        after = [backend.submit(_job(n)).id for n in range(3)]
        after += [job.id for job in backend.submit_many([_job(n) for n in range(3)])]

        assert not set(after) & set(acknowledged), (acknowledged, after)
        assert min(int(i) for i in after) > max(int(i) for i in acknowledged)
        assert [int(i) for i in after] == sorted({int(i) for i in after})
        assert all(backend.get(i) is not None for i in after)
    finally:
        client.close()
        backend.close()


def test_an_old_redis_namespace_with_small_ids_keeps_them_and_goes_on_above(
    redis_url: str, namespace: str
) -> None:
    """A namespace from before the clock floor (counter at 41, ids 1..41): its jobs stay
    readable under their ids, and new ones get larger ids."""
    backend = Engine(open_backend(redis_url, namespace))
    client = redis.Redis.from_url(redis_url)
    try:
        old = backend.submit(_job(0))
        client.rename(key(namespace, f"j:{old.id}"), key(namespace, "j:41"))
        client.set(key(namespace, "id"), 41)
        fetched = backend.get("41")
        assert fetched is not None and fetched.data == {"n": 0}
        new = backend.submit(_job(1))
        assert int(new.id) > 41 and backend.get("41") is not None
    finally:
        client.close()
        backend.close()


def test_an_sqlite_file_restored_from_a_backup_never_reissues_an_id(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    url = f"sqlite:///{path}"
    backend = Engine(SQLiteBackend.from_url(url, BackendOptions()))
    backend.submit_many([_job(n) for n in range(3)])
    backend.close()
    backup = tmp_path / "backup.db"
    with sqlite3.connect(path) as source, sqlite3.connect(backup) as target:
        source.backup(target)

    backend = Engine(SQLiteBackend.from_url(url, BackendOptions()))
    acknowledged = [backend.submit(_job(n)).id for n in range(3)]
    acknowledged += [job.id for job in backend.submit_many([_job(n) for n in range(3)])]
    backend.close()
    for leftover in tmp_path.glob("jobs.db-*"):  # the WAL of the file replaced
        leftover.unlink()
    backup.replace(path)

    backend = Engine(SQLiteBackend.from_url(url, BackendOptions()))
    try:
        after = [backend.submit(_job(n)).id for n in range(3)]
        after += [job.id for job in backend.submit_many([_job(n) for n in range(3)])]
        assert not set(after) & set(acknowledged), (acknowledged, after)
        assert min(int(i) for i in after) > max(int(i) for i in acknowledged)
        assert [int(i) for i in after] == sorted({int(i) for i in after})
    finally:
        backend.close()
