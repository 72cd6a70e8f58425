"""A full Redis (``maxmemory`` reached, policy ``noeviction``) refuses new jobs and nothing
else: submits raise ``BackendFullError`` and store nothing, while a job already stored is
claimed, renews its lease past its length, reports progress, logs and completes -- once.

And a Redis whose ``maxmemory-policy`` can evict keys is warned about, once per backend.
Each test runs a redis-server of its own: the shared one is never reconfigured.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobqueue.backend import BackendOptions, TickClaim, WorkSpec
from jobqueue.backends.redis import RedisBackend
from jobqueue.engine import Engine
from jobqueue.errors import BackendFullError
from jobqueue.job import Job, JobError, JobState
from tests.reliability.support import OwnRedis, Processes, app_env, wait_until

pytestmark = [pytest.mark.redis]

NAMESPACE = "full"
BALLAST = "x" * 20_000  # job data that fills the server quickly


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path / "redis", "--maxmemory", "8mb", "--maxmemory-policy", "noeviction")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def new_job(name: str, data: Any = None) -> Job:
    return Job(id="", name=name, data={"n": 1} if data is None else data, created_at=0, run_at=0)


def fill(backend: RedisBackend) -> int:
    """Submit ballast until Redis refuses, then small jobs until it refuses even those;
    checks that each refused submit stored nothing and returns how many jobs are stored."""
    for ballast in (BALLAST, ""):
        for _ in range(10_000):
            before = sum(Engine(backend).count_by_state().values())
            try:
                Engine(backend).submit_many([new_job("ballast", ballast) for _ in range(10)])
            except BackendFullError as exc:
                assert "maxmemory" in str(exc) and "nothing was stored" in str(exc)
                assert sum(Engine(backend).count_by_state().values()) == before
                break
        else:
            raise AssertionError("Redis never filled up")
    # Right at the limit, the memory a refused command's own arguments took is freed again
    # and lets the next small submit in; set the limit well below what is used, so the
    # server stays full for the rest of the test (our own server: ours to reconfigure).
    client = backend.client
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used - 1024 * 1024)
    return before


def test_a_full_redis_refuses_submits_and_lets_stored_jobs_finish(full_redis: OwnRedis) -> None:
    backend = RedisBackend(full_redis.client(), BackendOptions(), namespace=NAMESPACE)
    jobs = Engine(backend).submit_many([new_job("work") for _ in range(4)])
    stored = fill(backend)
    with pytest.raises(BackendFullError):
        Engine(backend).submit(new_job("work"))
    assert sum(Engine(backend).count_by_state().values()) == stored
    # A tick's claim stores a job too: refused whole, the schedule's record as it was.
    with pytest.raises(BackendFullError):
        backend.claim_tick(TickClaim("nightly", "{}", 60, new_job("work")))
    assert Engine(backend).schedule_record("nightly") is None
    assert sum(Engine(backend).count_by_state().values()) == stored

    spec = WorkSpec(("work",), lease_seconds=30)
    claim = Engine(backend).claim(spec)
    assert claim is not None and claim.job.id == jobs[0].id
    assert Engine(backend).renew(claim.job.id, claim.token, 60) is True
    assert Engine(backend).set_progress(claim.job.id, claim.token, 0.5, "halfway") is True
    assert Engine(backend).add_log(claim.job.id, claim.token, "still going") is True
    following = Engine(backend).complete(claim.job.id, claim.token, {"ok": True}, spec)
    assert following is not None and following.job.id == jobs[1].id
    assert Engine(backend).fail(following.job.id, following.token, JobError("E", "no"), None) is (
        JobState.FAILED
    )
    third = Engine(backend).claim(spec)
    assert third is not None and Engine(backend).release(third.job.id, third.token) is True

    done = backend.get(jobs[0].id)
    assert done is not None and done.state is JobState.COMPLETED
    assert done.progress == 0.5 and [entry.message for entry in done.logs] == ["still going"]
    assert done.result == {"ok": True} and done.attempts_made == 1
    backend.close()


def test_a_job_longer_than_its_lease_runs_once_at_maxmemory(
    full_redis: OwnRedis, processes: Processes, tmp_path: Path
) -> None:
    backend = RedisBackend(full_redis.client(), BackendOptions(), namespace=NAMESPACE)
    # Lease 1 s, job 4 x 0.75 s: it lives only through renewals made while Redis is full.
    job = Engine(backend).submit(new_job("outlive", {"steps": 4, "step_seconds": 0.75}))
    fill(backend)
    runs = tmp_path / "runs.txt"
    env = app_env(full_redis.url, NAMESPACE, lease=1.0)
    env["JQ_REL_RUNS"] = str(runs)
    command = [sys.executable, "-m", "jobqueue", "--app", "tests.reliability.maxmemory_app:queue"]
    dispatcher = processes.start([*command, "worker", "--log-level", "WARNING"], env, "worker")

    def finished() -> Job | None:
        found = backend.get(job.id)
        return found if found is not None and found.state.is_finished else None

    done = wait_until(finished, 60, "the long job to finish at maxmemory")
    assert done.state is JobState.COMPLETED, done.error
    assert runs.read_text().split() == [job.id]  # ran exactly once
    assert done.attempts_made == 1 and done.stalls == 0
    assert done.progress == 1.0 and len(done.logs) == 4
    with pytest.raises(BackendFullError):
        Engine(backend).submit(new_job("outlive", {"steps": 1, "step_seconds": 0}))
    assert dispatcher.poll() is None, processes.log_of(dispatcher)
    backend.close()


# -- the eviction policy warning ---------------------------------------------------------------


@pytest.fixture
def evicting_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    policy = ("--maxmemory-policy", "allkeys-lru")
    server = OwnRedis(tmp_path / "redis", "--maxmemory", "64mb", *policy)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "jobqueue.backends.redis" and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "allkeys-random"])
def test_an_evicting_policy_is_warned_about_once(
    evicting_redis: OwnRedis, caplog: pytest.LogCaptureFixture, policy: str
) -> None:
    admin = evicting_redis.client()
    admin.config_set("maxmemory-policy", policy)  # our own server: ours to reconfigure
    caplog.set_level(logging.DEBUG, logger="jobqueue.backends.redis")
    backend = RedisBackend(evicting_redis.client(), BackendOptions(), namespace="warn")
    Engine(backend).submit(new_job("a"))
    Engine(backend).submit(new_job("a"))
    assert Engine(backend).claim(WorkSpec(("a",))) is not None
    (warning,) = warnings_of(caplog)
    assert policy in warning and "noeviction" in warning
    backend.close()
    admin.close()


def test_noeviction_is_not_warned_about(
    full_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="jobqueue.backends.redis")
    backend = RedisBackend(full_redis.client(), BackendOptions(), namespace="quiet")
    Engine(backend).submit(new_job("a"))
    assert warnings_of(caplog) == []
    backend.close()


def test_a_user_without_config_rights_is_not_warned(
    evicting_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    admin = evicting_redis.client()
    admin.acl_setuser(
        "app", enabled=True, passwords=["+app-secret"], keys=["*"], commands=["+@all", "-config"]
    )
    caplog.set_level(logging.DEBUG, logger="jobqueue.backends.redis")
    client = redis.Redis(port=evicting_redis.port, username="app", password="app-secret")
    backend = RedisBackend(client, BackendOptions(), namespace="acl")
    stored = Engine(backend).submit(new_job("a"))
    assert backend.get(stored.id) is not None
    assert warnings_of(caplog) == []
    assert any("maxmemory-policy" in r.getMessage() for r in caplog.records)  # at debug level
    backend.close()
    admin.close()
