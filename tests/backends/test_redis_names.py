"""Claims across worker names on Redis (issue 20 item 11): the next job across every name a
dispatcher serves comes from the heads (lua/lib/ready.lua), so a claim or an idle wait costs
as many Redis commands for one name as for 2,000; order, priority, caps, pauses and names
not served hold; a name group dropped or lost is stored again. Commands are counted by a
server of each test's own (INFO commandstats), never by time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis

from jobqueue import lifecycle
from jobqueue.backend import BackendOptions, WorkSpec
from jobqueue.backends.redis import RedisBackend
from jobqueue.backends.redis.groups import LAYOUT, group_digest
from jobqueue.job import Job, JobState
from jobqueue.testing import ManualClock
from tests.backends.redis_fixtures import (
    delete_namespace,
    free_port,
    new_namespace,
    start_redis_server,
    stop_process,
)
from tests.backends.test_seam_redis import open_backend

W = JobState.WAITING


def new(name: str, data: object = 1, **fields: Any) -> Job:
    return Job(id="", data=data, name=name, created_at=0.0, run_at=0.0, **fields)


@pytest.fixture(params=["redis", "redis-scripts", "fakeredis"])
def store(request: pytest.FixtureRequest) -> Iterator[RedisBackend]:
    made = open_backend(request.param, request, BackendOptions(clock=ManualClock()))
    yield made
    delete_namespace(made.client, made.namespace)
    made.close()


def spec(*names: str, caps: dict[str, int] | None = None) -> WorkSpec:
    return WorkSpec(names, lease_seconds=10, max_active=caps or {}, dispatcher="d1")


def claim_data(store: RedisBackend, work: WorkSpec, limit: int = 1) -> list[object]:
    return [c.job.data for c in store.claim_many(work, limit)]


def test_claims_follow_priority_then_enqueue_order_across_names(store: RedisBackend) -> None:
    store.insert([new("a", 1), new("b", 2), new("c", 3), new("a", 4), new("b", 5, priority=7)])
    work = spec("a", "b", "c")
    assert claim_data(store, work) == [5]  # the highest priority first, whatever its name
    assert claim_data(store, work, 3) == [1, 2, 3]
    assert claim_data(store, work, 5) == [4]


def test_a_retried_job_queues_behind_later_jobs_of_other_names(store: RedisBackend) -> None:
    (first,) = store.insert([new("a", "first")])
    store.insert([new("b", "later")])
    (claim,) = store.claim_many(spec("a"), 1)
    assert claim.job.id == first.id
    store.apply([lifecycle.on_release(claim.job, claim.token, 0.0)])
    assert claim_data(store, spec("a", "b"), 2) == ["later", "first"]


def test_names_not_served_are_left_alone(store: RedisBackend) -> None:
    store.insert([new("other", n) for n in range(40)] + [new("mine", "m")])
    assert claim_data(store, spec("mine"), 5) == ["m"]
    assert claim_data(store, spec("mine"), 5) == []
    assert claim_data(store, spec("other"), 50) == list(range(40))


def test_a_name_at_its_cap_is_passed_over(store: RedisBackend) -> None:
    store.insert([new("a", 1), new("a", 2), new("b", 3)])
    work = spec("a", "b", caps={"a": 1})
    assert claim_data(store, work, 3) == [1, 3]
    assert claim_data(store, work, 3) == []


def test_a_paused_name_leaves_the_heads_until_resumed(store: RedisBackend) -> None:
    store.insert([new("a", 1), new("b", 2), new("a", 3)])
    store.set_paused("worker", "a", True)
    assert claim_data(store, spec("a", "b"), 5) == [2]
    store.insert([new("a", 4)])  # submitted while paused: still not claimable
    assert claim_data(store, spec("a", "b"), 5) == []
    store.set_paused("worker", "a", False)
    assert claim_data(store, spec("a", "b"), 5) == [1, 3, 4]


def test_a_batch_from_a_name_alone_at_its_level_keeps_order(store: RedisBackend) -> None:
    store.insert([new("a", n) for n in range(10)] + [new("b", "high", priority=1)])
    assert claim_data(store, spec("a", "b"), 4) == ["high", 0, 1, 2]
    store.insert([new("b", "later")])
    assert claim_data(store, spec("a", "b"), 20) == [3, 4, 5, 6, 7, 8, 9, "later"]


def test_removing_the_first_waiting_job_moves_the_head(store: RedisBackend) -> None:
    first, _, _ = store.insert([new("a", 1), new("b", 2), new("a", 3)])
    assert store.delete([first.id]) == 1  # "a" now starts later than "b"
    assert claim_data(store, spec("a", "b"), 3) == [2, 3]


def test_a_dropped_group_is_stored_again(store: RedisBackend) -> None:
    work = spec("a", "b")
    store.insert([new("a", 1), new("a", 2)])
    assert claim_data(store, work) == [1]
    digest = group_digest(work.names)
    assert store.client.delete(store._prefix + "G:" + digest) == 1
    assert claim_data(store, work) == [2]  # told it was missing: stored, claimed again
    assert store.client.exists(store._prefix + "G:" + digest) == 1


def test_housekeeping_drops_groups_unused_for_a_day(store: RedisBackend) -> None:
    work = spec("a")
    assert store.claim_many(work, 1) == []
    key = store._prefix + "G:" + group_digest(work.names)
    assert store.client.exists(key) == 1
    assert isinstance(store.options.clock, ManualClock)
    store.options.clock.advance(86400 + 1)
    store.housekeep()
    assert store.client.exists(key) == 0
    store.insert([new("a", 1)])
    assert claim_data(store, work) == [1]


def test_an_idle_waiter_of_a_group_is_handed_a_new_job(store: RedisBackend) -> None:
    work = spec(*(f"n{i}" for i in range(300)))
    assert store.wait_for_claim(work, 0.0) is False
    # A waiter registered just before a submit is handed the job (see test_redis_handoff).
    token = "t1"
    reply = store._run("idle", [token, "+10", "5", *store._spec_args(work)])
    assert reply[0] in (b"w", "w")
    store.insert([new("n123", "x")])
    handed = store.client.lpop(store._prefix + "h:" + token)
    assert handed is not None
    job_id, fields = json.loads(handed)[:2]
    assert dict(zip(fields[::2], fields[1::2], strict=True))["k"] == token
    assert store.get(job_id) is not None and store.get(job_id).data == "x"  # type: ignore[union-attr]


def test_an_old_namespace_gets_its_heads(store: RedisBackend) -> None:
    """A namespace whose heads were never written (as 0.1 wrote it) gets them from its lists
    before the first claim."""
    store.insert([new("a", 1), new("b", 2, priority=3)])
    client, prefix = store.client, store._prefix
    for key in client.keys(prefix + "H*"):
        client.delete(key)
    client.delete(prefix + "layout")
    fresh = RedisBackend(client, store.options, namespace=store.namespace)
    assert claim_data(fresh, spec("a", "b"), 5) == [2, 1]
    assert client.get(prefix + "layout") == LAYOUT.encode()


# -- the cost does not grow with the names -----------------------------------------------------


def _commands(client: Any) -> int:
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


@pytest.fixture
def counting(tmp_path: Path) -> Iterator[redis.Redis]:
    port = free_port()
    server = start_redis_server(tmp_path, port)
    try:
        client = redis.Redis(port=port)
        yield client
        client.close()
    finally:
        stop_process(server)


def _claim_cost(client: redis.Redis, names: int) -> tuple[int, int]:
    """Commands of one claim and of one idle registration, for a dispatcher serving
    ``names`` names that each have waiting jobs."""
    store = RedisBackend(client, BackendOptions(), namespace=new_namespace())
    served = tuple(f"n{i:05d}" for i in range(names))
    store.insert([new(name, n) for n in range(2) for name in served])
    work = spec(*served)
    assert len(store.claim_many(work, 1)) == 1  # the group stored, the layout checked
    client.config_resetstat()
    before = _commands(client)
    assert len(store.claim_many(work, 1)) == 1
    claim = _commands(client) - before
    empty = RedisBackend(client, BackendOptions(), namespace=new_namespace())
    assert empty.wait_for_claim(work, 0.0) is False  # stores the group in that namespace
    client.config_resetstat()
    before = _commands(client)
    assert empty._run("idle", ["t", "+10", "0.01", *empty._spec_args(work)])[0] == b"w"
    idle = _commands(client) - before
    return claim, idle


@pytest.mark.redis
def test_a_claim_and_an_idle_wait_cost_the_same_for_one_name_or_2000(
    counting: redis.Redis,
) -> None:
    one = _claim_cost(counting, 1)
    many = _claim_cost(counting, 2000)
    assert many[0] <= one[0] + 2, (one, many)  # + a second page of heads at most
    assert many[1] == one[1], (one, many)


def test_fakeredis_has_the_commands_the_heads_use() -> None:
    """LRANGE+LTRIM rather than LPOP with a count (Redis 6.2+), so older servers and
    fakeredis run the batch pop too."""
    made = RedisBackend(fakeredis.FakeRedis(), BackendOptions(), namespace=new_namespace())
    made.insert([new("a", n) for n in range(5)])
    assert claim_data(made, spec("a"), 5) == [0, 1, 2, 3, 4]
    assert made.counts()["a"][JobState.ACTIVE] == 5
