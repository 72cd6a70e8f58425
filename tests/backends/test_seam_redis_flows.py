"""Flows on the Redis backend's storage seam, each method called directly: a flow inserted
blocked with its "@k" references translated, in one call whatever its size; blocked jobs
listed, counted, never claimed, promoted or expired, deleted; a dependency's outcome
delivered (``Change.deliver``): its guard, the outcome written, the dependent released
(waiting or delayed) only once every dependency delivered -- on real Redis (functions and
scripts) and on fakeredis."""

from __future__ import annotations

from typing import Any

from redis.cluster import RedisCluster

from jobqueue.backend import BackendOptions
from jobqueue.backends.redis import RedisBackend
from jobqueue.backends.redis.wire import SUBMIT_BATCH
from jobqueue.changes import Change, ClaimAsk, Conflict, Delivery, InState, Selector
from jobqueue.dependency import Dependency
from jobqueue.job import Job, JobState
from jobqueue.testing import ManualClock
from tests.backends.redis_fixtures import redis_url
from tests.backends.test_redis_cluster import cluster_ports, namespaces_on_two_shards
from tests.backends.test_seam_redis import (
    SPEC,
    clock,
    completion,
    got,
    lose_next_reply,
    losing,
    new,
    store,
)

__all__ = ["cluster_ports", "losing", "redis_url", "store"]

W, D, A, B = JobState.WAITING, JobState.DELAYED, JobState.ACTIVE, JobState.BLOCKED
C, F, X = JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED


def flow_job(data: object, after: tuple[int, ...] = (), before: tuple[int, ...] = ()) -> Job:
    """A job of a flow whose first job is the call's job 0: it depends on the call's jobs
    ``after`` and is depended on by ``before`` (rule "cancel"), as submit_flow builds it."""
    return new(
        data,
        flow_id="@0",
        depends_on=tuple(Dependency(f"@{k}") for k in after),
        dependents=tuple(Dependency(f"@{k}", "ignore") for k in before),
    )


def diamond(store: RedisBackend) -> list[Job]:
    """0 -> (1, 2) -> 3."""
    return store.insert(
        [
            flow_job("root", before=(1, 2)),
            flow_job("left", after=(0,), before=(3,)),
            flow_job("right", after=(0,), before=(3,)),
            flow_job("join", after=(1, 2)),
        ]
    )


def delivery(to_job: Job, from_job: Job, outcome: dict[str, Any], to: JobState = W) -> Change:
    return Change(
        to_job.id,
        InState(frozenset({B})),
        to,
        deliver=Delivery(from_job.id, frozenset({C, F, X}), outcome),
    )


def test_a_flow_is_stored_blocked_with_its_references_translated(store: RedisBackend) -> None:
    root, left, right, join = diamond(store)
    assert [job.state for job in (root, left, right, join)] == [W, B, B, B]
    for job in (root, left, right, join):
        stored = got(store, job.id)
        assert stored.flow_id == root.id and stored == job
    assert got(store, left.id).depends_on == (Dependency(root.id),)
    assert got(store, root.id).dependents == (
        Dependency(left.id, "ignore"),
        Dependency(right.id, "ignore"),
    )
    assert got(store, join.id).depends_on == (Dependency(left.id), Dependency(right.id))
    assert got(store, join.id).dependency_outcomes == {}
    assert store.counts()["a"][B] == 3 and store.counts()["a"][W] == 1
    listed = store.scan(Selector(B), 0, 10)
    assert [job.id for job in listed] == [left.id, right.id, join.id]
    assert [job.id for job in store.scan(Selector(B, name="a"), 1, 1)] == [right.id]
    assert store.scan(Selector(B, name="other"), 0, 10) == []


def test_blocked_jobs_are_never_claimed_promoted_or_expired(store: RedisBackend) -> None:
    root, *_ = diamond(store)
    clock(store).advance(3600)
    assert store.housekeep() == 0
    claims = store.claim_many(SPEC, 10)
    assert [c.job.id for c in claims] == [root.id]
    clock(store).advance(3600)
    assert store.expired(10)[0].job.id == root.id and len(store.expired(10)) == 1
    assert store.counts()["a"][B] == 3


def test_an_ordinary_job_stores_no_flow_field(store: RedisBackend) -> None:
    (job,) = store.insert([new(1)])
    fields = store.client.hkeys(f"jq:{{{store.namespace}}}:j:{job.id}")
    assert {f.decode() for f in fields} & {"F", "A", "N", "Y"} == set()
    assert got(store, job.id).flow_id is None and got(store, job.id).depends_on == ()


def test_a_flow_larger_than_a_batch_goes_in_one_call(store: RedisBackend) -> None:
    size = SUBMIT_BATCH + 2
    jobs = [flow_job(0, before=(size - 1,))]
    jobs += [flow_job(k, after=(k - 1,)) for k in range(1, size)]
    stored = store.insert(jobs)
    assert [job.state for job in stored] == [W] + [B] * (size - 1)
    last = got(store, stored[-1].id)
    assert last.depends_on == (Dependency(stored[-2].id),)
    assert got(store, stored[0].id).dependents == (Dependency(last.id, "ignore"),)


def test_a_delivery_releases_the_dependent_once_every_dependency_delivered(
    store: RedisBackend,
) -> None:
    root, left, right, join = diamond(store)
    (claim,) = store.claim_many(SPEC, 1)
    done = {"state": "completed", "result": 0.1 + 0.2}
    results, claims = store.apply(
        [completion(claim, 0.1 + 0.2), delivery(left, root, done), delivery(right, root, done)],
        ClaimAsk(SPEC, 2),
    )
    assert results == [None, None, None]  # the root's completion passes both guards
    assert sorted(c.job.id for c in claims) == sorted([left.id, right.id])
    assert claims[0].job.dependency_outcomes == {root.id: done}  # exact float: not re-encoded
    first, second = claims
    assert store.apply([completion(first, {"n": [1, 2]})])[0] == [None]
    out_first = {"state": "completed", "result": {"n": [1, 2]}}
    # One of two dependencies: written, the job stays blocked in its place.
    assert store.apply([delivery(join, first.job, out_first)]) == ([None], [])
    assert got(store, join.id).state is B
    assert got(store, join.id).dependency_outcomes == {first.job.id: out_first}
    assert [job.id for job in store.scan(Selector(B), 0, 10)] == [join.id]
    # Delivered again (a resend): still one entry, replaced.
    again = {"state": "completed", "result": "again"}
    assert store.apply([delivery(join, first.job, again)]) == ([None], [])
    assert got(store, join.id).dependency_outcomes == {first.job.id: again}
    # Before the second dependency finished: refused, with the dependent's state.
    (conflict,), _ = store.apply([delivery(join, second.job, {"state": "completed"})])
    assert conflict == Conflict(B)
    failed = {"state": "failed", "error": None}
    store.apply([completion(second, "r")])
    assert store.apply([delivery(join, second.job, failed)], ClaimAsk(SPEC, 1))[0] == [None]
    released = got(store, join.id)
    assert released.state is A  # waiting, then claimed in the same step
    assert released.dependency_outcomes == {first.job.id: again, second.job.id: failed}
    assert store.counts()["a"].get(B, 0) == 0


def test_a_dependent_whose_run_at_is_ahead_is_released_delayed(store: RedisBackend) -> None:
    now = clock(store)()
    root, child = store.insert(
        [
            flow_job("root", before=(1,)),
            new("child", flow_id="@0", depends_on=(Dependency("@0"),), run_at=now + 60),
        ]
    )
    assert child.state is B
    (claim,) = store.claim_many(SPEC, 1)
    store.apply([completion(claim), delivery(child, root, {"state": "completed"})])
    assert got(store, child.id).state is D
    clock(store).advance(61)
    store.housekeep()
    assert got(store, child.id).state is W


def test_a_delivery_to_a_finished_state_and_a_retry_into_blocked(store: RedisBackend) -> None:
    root, child = store.insert([flow_job("root", before=(1,)), flow_job("child", after=(0,))])
    cancelled = {"state": "cancelled", "error": None}
    root_cancel = Change(root.id, InState(frozenset({W})), X)
    assert store.apply([root_cancel, delivery(child, root, cancelled, to=X)])[0] == [None, None]
    gone = got(store, child.id)
    assert gone.state is X and gone.dependency_outcomes == {root.id: cancelled}
    assert store.scan(Selector(B), 0, 10) == [] and store.counts()["a"][X] == 2
    # An operator's retry of the flow: the child back into BLOCKED, its outcomes cleared.
    retry = Change(
        child.id,
        InState(frozenset({X, F})),
        B,
        set={"dependency_outcomes": {}, "error": None, "finished_at": None},
    )
    assert store.apply([retry]) == ([None], [])
    back = got(store, child.id)
    assert back.state is B and back.dependency_outcomes == {} and back.finished_at is None
    assert [job.id for job in store.scan(Selector(B), 0, 10)] == [child.id]
    assert store.delete([child.id]) == 1
    assert store.scan(Selector(B), 0, 10) == [] and store.counts()["a"].get(B, 0) == 0


def test_a_blocked_job_holds_its_unique_key(store: RedisBackend) -> None:
    _, child = store.insert(
        [
            flow_job("root", before=(1,)),
            new("child", flow_id="@0", unique_key="k", depends_on=(Dependency("@0"),)),
        ]
    )
    (again,) = store.insert([new("other", unique_key="k")])
    assert again.id == child.id and again.deduplicated and again.state is B


def test_a_reference_to_a_job_deduplicated_onto_a_live_one(store: RedisBackend) -> None:
    (live,) = store.insert([new("live", unique_key="u")])
    root, shared, child = store.insert(
        [
            flow_job("root", before=(2,)),
            new("shared", flow_id="@0", unique_key="u"),
            new("child", flow_id="@0", depends_on=(Dependency("@0"), Dependency("@1"))),
        ]
    )
    assert shared.id == live.id and shared.deduplicated
    assert child.depends_on == (Dependency(root.id), Dependency(live.id))
    assert got(store, child.id).depends_on == child.depends_on
    assert got(store, root.id).dependents == (Dependency(child.id, "ignore"),)


def test_a_flow_on_a_cluster_shard(cluster_ports: list[int]) -> None:
    """The flow paths keep to the namespace's hash tag: the blocked set, the ids a flow's
    call works out ahead, the dependency read by a delivery."""
    client = RedisCluster(host="127.0.0.1", port=cluster_ports[0])
    _, namespace = namespaces_on_two_shards(client)
    store = RedisBackend(client, BackendOptions(clock=ManualClock()), namespace=namespace)
    try:
        root, left, right, join = diamond(store)
        assert [j.id for j in store.scan(Selector(B), 0, 10)] == [left.id, right.id, join.id]
        (claim,) = store.claim_many(SPEC, 1)
        done = {"state": "completed", "result": 1}
        results, claims = store.apply(
            [completion(claim, 1), delivery(left, root, done), delivery(right, root, done)],
            ClaimAsk(SPEC, 2),
        )
        assert results == [None, None, None] and len(claims) == 2
        assert got(store, join.id).state is B and store.counts()["a"][B] == 1
        assert store.delete([join.id]) == 1 and store.scan(Selector(B), 0, 10) == []
    finally:
        for key in client.keys(f"jq:{{{namespace}}}:*", target_nodes="all"):
            client.delete(key)
        store.close()


def test_a_resent_delivery_is_answered_written(losing: RedisBackend) -> None:
    store = losing
    root, child = store.insert([flow_job("root", before=(1,)), flow_job("child", after=(0,))])
    (claim,) = store.claim_many(SPEC, 1)
    done = {"state": "completed", "result": "r"}
    sent = lose_next_reply(store)
    results, _ = store.apply([completion(claim), delivery(child, root, done)])
    assert len(sent) == 2  # sent again, marked as a repeat
    assert results == [None, None]  # the first run released the child: written
    released = got(store, child.id)
    assert released.state is W and released.dependency_outcomes == {root.id: done}
    assert store.counts()["a"][W] == 1 and store.counts()["a"].get(B, 0) == 0


def test_outcomes_live_in_a_hash_of_their_own_and_go_with_their_job(store: RedisBackend) -> None:
    prefix = f"jq:{{{store.namespace}}}:"
    root, child = store.insert([flow_job("root", before=(1,)), flow_job("child", after=(0,))])
    (claim,) = store.claim_many(SPEC, 1)
    done = {"state": "completed", "result": [1.25, {"deep": None}]}
    store.apply([completion(claim), delivery(child, root, done)])
    assert store.client.hgetall(prefix + f"y:{child.id}") == {
        root.id.encode(): b'{"state":"completed","result":[1.25,{"deep":null}]}'
    }
    assert got(store, child.id).dependency_outcomes == {root.id: done}
    # Set whole by a change: the old ones go, the count of those missing follows.
    other = {"elsewhere": {"state": "failed", "error": None}}
    requeue = Change(child.id, InState(frozenset({W})), W, set={"dependency_outcomes": other})
    assert store.apply([requeue]) == ([None], [])
    assert got(store, child.id).dependency_outcomes == other
    assert store.client.hget(prefix + f"j:{child.id}", "Z") == b"1"
    assert store.delete([child.id]) == 1
    assert not store.client.exists(prefix + f"y:{child.id}")
    # Submitted with outcomes (a store's copy of a flow, say): kept as given.
    given = {root.id: done}
    (copied,) = store.insert([new("copy", flow_id=root.id, dependency_outcomes=given)])
    assert copied.state is W and got(store, copied.id).dependency_outcomes == given


def test_a_stray_list_entry_of_a_blocked_job_is_never_claimed(store: RedisBackend) -> None:
    _, child = store.insert([flow_job("root", before=(1,)), flow_job("child", after=(0,))])
    store.client.lpush(f"jq:{{{store.namespace}}}:r:a:0", child.id)  # before the root
    claims = store.claim_many(SPEC, 2)
    assert [c.job.data for c in claims] == ["root"]
    assert got(store, child.id).state is B


def test_retention_takes_a_finished_flow_jobs_outcomes_with_it(store: RedisBackend) -> None:
    outcomes_key = f"jq:{{{store.namespace}}}:y:"
    root, child = store.insert([flow_job("root", before=(1,)), flow_job("child", after=(0,))])
    (claim,) = store.claim_many(SPEC, 1)
    store.apply([completion(claim), delivery(child, root, {"state": "completed"})])
    (claim,) = store.claim_many(SPEC, 1)
    store.apply([completion(claim)])
    assert store.client.exists(outcomes_key + child.id)
    store.insert([new(n) for n in range(3)])
    for claim in store.claim_many(SPEC, 3):
        store.apply([completion(claim)])
    assert store.housekeep() == 2  # completed_count=3: the flow's two jobs go
    assert store.get(child.id) is None and not store.client.exists(outcomes_key + child.id)
