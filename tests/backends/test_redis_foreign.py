"""A waiting id whose job key holds foreign data (issue 18 item 7), on real Redis and on
fakeredis: the claim logs it (with its id), fails it as corrupt with the reason under the
name of the list it waited in, and the name's counts come out right. On main such an id was
dropped without a word and its name's waiting count stayed one too high for good."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis

from jobqueue.backend import BackendOptions, WorkSpec
from jobqueue.backends.redis import RedisBackend
from jobqueue.engine import Engine
from jobqueue.job import Job, JobState
from jobqueue.testing import ManualClock
from jobqueue.testing.contract import spec
from tests.backends.redis_fixtures import delete_namespace, new_namespace, redis_url

__all__ = ["redis_url"]  # the fixture, re-exported for pytest

SPEC = WorkSpec(("a",), lease_seconds=10)


@pytest.fixture(params=["fakeredis", "redis"])
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[RedisBackend, Any, str]]:
    """A backend, a raw client of its server, and its key prefix."""
    ns = new_namespace()
    if request.param == "fakeredis":
        client: Any = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    else:
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    backend = RedisBackend(client, BackendOptions(clock=ManualClock()), namespace=ns)
    try:
        yield backend, client, f"jq:{{{ns}}}:"
    finally:
        delete_namespace(client, ns)
        backend.close()


def submit(backend: RedisBackend, n: int) -> list[Job]:
    now = backend.options.clock()
    return Engine(backend).submit_many(
        [Job(id="", name="a", data={"i": i}, created_at=now, run_at=now) for i in range(n)]
    )


def claim_all(backend: RedisBackend, many: bool) -> list[str]:
    if many:
        return [c.job.id for c in backend.claim_many(spec("a"), 10)]
    out = []
    while (claim := Engine(backend).claim(spec("a"))) is not None:
        out.append(claim.job.id)
    return out


FOREIGN = {
    "string over the hash": (lambda c, k: c.set(k, "x"), "holds a string, not a job hash"),
    "a list over the hash": (lambda c, k: (c.delete(k), c.rpush(k, "x")), "holds a list"),
    "hash without its state": (lambda c, k: c.hdel(k, "s"), "lacks field s"),
    "hash without name and created": (lambda c, k: c.hdel(k, "n", "c"), "lacks field n, c"),
}


@pytest.mark.parametrize("many", [False, True], ids=["claim", "claim_many"])
@pytest.mark.parametrize("kind", list(FOREIGN))
def test_a_waiting_id_over_foreign_data_is_logged_failed_and_counted(
    setup: tuple[RedisBackend, Any, str],
    kind: str,
    many: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend, client, prefix = setup
    first, bad, last = submit(backend, 3)
    damage, reason = FOREIGN[kind]
    damage(client, f"{prefix}j:{bad.id}")
    with caplog.at_level(logging.WARNING, logger="jobqueue.backends.redis"):
        assert claim_all(backend, many) == [first.id, last.id]
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.name == "jobqueue.backends.redis" and r.levelno >= logging.WARNING
    ]
    assert any(f"job {bad.id} " in m and reason in m for m in logged), logged
    failed = backend.get(bad.id)
    assert failed is not None and failed.state is JobState.FAILED and failed.name == "a"
    assert failed.error is not None and failed.error.type == "CorruptJobError"
    assert reason in failed.error.message
    counts = Engine(backend).count_by_name()["a"]
    assert counts[JobState.WAITING] == 0
    assert counts[JobState.ACTIVE] == 2 and counts[JobState.FAILED] == 1
    assert Engine(backend).count_by_state()[JobState.WAITING] == 0


def test_a_foreign_id_never_counted_leaves_the_counts_right(
    setup: tuple[RedisBackend, Any, str],
) -> None:
    """An id pushed into a waiting list by someone else was never counted: dropping it
    must not take a real job off the count either."""
    backend, client, prefix = setup
    (good,) = submit(backend, 1)
    client.rpush(f"{prefix}r:a:0", "9001")
    client.set(f"{prefix}j:9001", "x")
    assert Engine(backend).count_by_name()["a"][JobState.WAITING] == 1  # the list holds 2 ids
    claim = Engine(backend).claim(spec("a"))
    assert claim is not None and claim.job.id == good.id
    assert Engine(backend).claim(spec("a")) is None
    counts = Engine(backend).count_by_name()["a"]
    assert counts[JobState.WAITING] == 0 and counts[JobState.ACTIVE] == 1
    assert counts[JobState.FAILED] == 1  # the foreign id, failed as corrupt under "a"


def test_a_foreign_id_handed_to_an_idle_waiter_is_failed_and_the_waiter_woken(
    setup: tuple[RedisBackend, Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    backend, client, prefix = setup
    result: list[object] = []
    waiter = threading.Thread(target=lambda: result.append(backend.wait_for_claim(SPEC, 20)))
    waiter.start()
    deadline = time.monotonic() + 10
    while not client.hlen(prefix + "W"):  # registered: the next ready job is handed to it
        assert time.monotonic() < deadline, "the waiter never registered"
        time.sleep(0.002)
    client.rpush(f"{prefix}r:a:0", "9001")  # ahead of the submit below, with no signal
    client.zadd(f"{prefix}R:a", {"0": 0})
    client.set(f"{prefix}j:9001", "x")
    with caplog.at_level(logging.WARNING, logger="jobqueue.backends.redis"):
        (good,) = submit(backend, 1)
        waiter.join(timeout=15)
    assert not waiter.is_alive() and result == [True]  # woken, to claim for itself
    assert any("9001" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    failed = backend.get("9001")
    assert failed is not None and failed.state is JobState.FAILED
    claim = Engine(backend).claim(SPEC)
    assert claim is not None and claim.job.id == good.id
    counts = Engine(backend).count_by_name()["a"]
    assert counts[JobState.WAITING] == 0 and counts[JobState.ACTIVE] == 1
    assert counts[JobState.FAILED] == 1
