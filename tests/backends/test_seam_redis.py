"""The storage seam (``jobqueue.backend.Backend``) on the Redis backend, each method called
directly: guards and their conflicts, what a written change stores, the reads, housekeeping,
lost replies, a namespace written by 0.1.0 -- on real Redis (functions and scripts) and on
fakeredis. Time is a ManualClock the scripts receive as "now" (``server_clock`` off)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from redis.cluster import RedisCluster

from jobqueue import lifecycle
from jobqueue.backend import (
    Backend,
    BackendOptions,
    DispatcherInfo,
    LeaseStatus,
    Retention,
    WorkSpec,
)
from jobqueue.backends.redis import RedisBackend
from jobqueue.backends.redis.scripts import SCRIPT_NAMES
from jobqueue.changes import (
    Change,
    ClaimAsk,
    Conflict,
    Expired,
    Held,
    InState,
    Selector,
)
from jobqueue.errors import ReplicationTimeoutError
from jobqueue.job import JSON, AttemptOutcome, Job, JobError, JobState
from jobqueue.testing import ManualClock
from jobqueue.values import Claim, TickClaim
from tests.backends.redis_fixtures import (
    delete_namespace,
    free_port,
    new_namespace,
    redis_url,
    start_redis_server,
    stop_process,
)
from tests.backends.test_redis_cluster import cluster_ports, namespaces_on_two_shards
from tests.reliability.sentinels import ReplicatedRedis, replicated

__all__ = ["cluster_ports", "redis_url", "replicated"]

SPEC = WorkSpec(("a",), lease_seconds=10, dispatcher="d1")
W, D, A = JobState.WAITING, JobState.DELAYED, JobState.ACTIVE
C, F, X = JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED


def open_backend(kind: str, request: pytest.FixtureRequest, options: BackendOptions) -> Any:
    client: Any
    if kind == "fakeredis":
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    else:
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    made = RedisBackend(client, options, namespace=new_namespace())
    if kind == "redis-scripts":
        made.calls.functions = False  # as a server without Redis Functions: EVALSHA
    return made


@pytest.fixture(params=["redis", "redis-scripts", "fakeredis"])
def store(request: pytest.FixtureRequest) -> Iterator[RedisBackend]:
    options = BackendOptions(clock=ManualClock(), retention=Retention(completed_count=3))
    made = open_backend(request.param, request, options)
    yield made
    delete_namespace(made.client, made.namespace)
    made.close()


def clock(store: RedisBackend) -> ManualClock:
    assert isinstance(store.options.clock, ManualClock)
    return store.options.clock


def new(data: object = 1, **fields: Any) -> Job:
    fields = {"name": "a", "created_at": 0.0, "run_at": 0.0, **fields}
    return Job(id="", data=data, **fields)


def claimed(store: RedisBackend, count: int = 1) -> list[Claim]:
    claims = store.claim_many(SPEC, count)
    assert len(claims) == count
    return claims


def got(store: RedisBackend, job_id: str) -> Job:
    found = store.get(job_id)
    assert found is not None
    return found


def completion(claim: Claim, result: JSON = "r") -> Change:
    return lifecycle.on_complete(claim.job.id, claim.token, result)


# The old protocol's verbs: the core's (Engine) now, neither a method nor a script here.
OLD_VERBS = ("submit", "submit_many", "claim", "complete", "fail", "release", "renew")
OLD_VERBS += ("set_progress", "add_log", "finish_many", "cancel", "finish_cancelled", "retry")
OLD_VERBS += ("retry_many", "purge", "maintain", "recover_expired", "remove", "promote")
OLD_VERBS += ("cancel_many", "list_jobs", "count_by_state", "count_by_name", "pause", "resume")
OLD_SCRIPTS = ("claim", "complete", "fail", "release", "renew", "progress", "log", "recover")
OLD_SCRIPTS += ("remove", "count", "list", "finish_many", "cancel", "finish_cancelled", "retry")
OLD_SCRIPTS += ("retry_many", "purge", "maintain", "promote", "cancel_many")


def test_the_backend_is_on_the_seam(store: RedisBackend) -> None:
    assert isinstance(store, Backend)
    assert [verb for verb in OLD_VERBS if hasattr(store, verb)] == []
    assert set(OLD_SCRIPTS).isdisjoint(SCRIPT_NAMES)


# -- insert -----------------------------------------------------------------------------------


def test_insert_stores_waiting_and_delayed_jobs_and_dedups_unique_keys(store: RedisBackend) -> None:
    now = clock(store)()
    first, later, dup, other = store.insert(
        [
            new(1, unique_key="k"),
            new(2, run_at=now + 30),
            new(3, unique_key="k"),  # held by the first of this very call
            new(4, unique_key="other"),
        ]
    )
    assert (first.state, later.state, other.state) == (W, D, W)
    assert dup.id == first.id and dup.deduplicated and dup.data == 1
    assert store.insert([new(5, unique_key="other")])[0].id == other.id
    assert store.counts()["a"][W] == 2 and store.counts()["a"][D] == 1


# -- apply: the hot path ----------------------------------------------------------------------


def test_complete_and_claim_next_in_one_apply(store: RedisBackend) -> None:
    one, two = store.insert([new(1), new(2)])
    (claim,) = claimed(store)
    clock(store).advance(2)
    results, claims = store.apply([completion(claim)], ClaimAsk(SPEC, 1))
    assert results == [None]
    assert [c.job.id for c in claims] == [two.id] and claims[0].job.state is A
    done = got(store, one.id)
    assert done.state is C and done.result == "r" and done.finished_at == clock(store)()
    assert [(a.number, a.outcome, a.dispatcher) for a in done.history] == [
        (1, AttemptOutcome.COMPLETED, "d1")
    ]
    assert store.counts()["a"][C] == 1 and store.counts()["a"][A] == 1
    assert list(store.outcome_counts(0).values()) == [{"completed": 1}]
    # The same change again: refused, and told that this token's complete ended the lease.
    again = store.apply([completion(claim, "other")])
    assert again == ([Conflict(C, ended_by="complete")], [])
    assert got(store, one.id).result == "r"


def test_a_batch_of_changes_then_claims(store: RedisBackend) -> None:
    jobs = store.insert([new(n) for n in range(5)])
    first = claimed(store, 2)
    results, claims = store.apply([completion(c) for c in first], ClaimAsk(SPEC, 10))
    assert results == [None, None]
    assert [c.job.id for c in claims] == [job.id for job in jobs[2:]]
    assert store.counts()["a"] == {W: 0, D: 0, A: 3, C: 2, F: 0, X: 0, JobState.BLOCKED: 0}


def test_fail_into_delayed_appends_the_attempt_and_queues_last(store: RedisBackend) -> None:
    store.insert([new(1)])
    (claim,) = claimed(store)
    queued = store.insert([new(2, run_at=clock(store)() + 5)])[0]
    error = JobError("E", "boom")
    now = clock(store)()
    change = lifecycle.on_fail(claim.job, claim.token, error, now + 5, now)
    assert change.to is D
    assert store.apply([change]) == ([None], [])
    failed = got(store, claim.job.id)
    assert failed.state is D and failed.run_at == now + 5 and failed.error == error
    assert failed.attempts_made == 1 and failed.dispatcher is None
    assert [(a.outcome, a.error) for a in failed.history] == [(AttemptOutcome.RETRIED, error)]
    # Same run_at as the job submitted before it: the new sequence number puts it last.
    assert [job.id for job in store.scan(Selector(D), 0, 10)] == [queued.id, claim.job.id]
    assert list(store.outcome_counts(0).values()) == [{"retried": 1}]
    again = store.apply([change])[0][0]
    assert again == Conflict(D, ended_by="fail")


def test_a_release_gives_the_attempt_back(store: RedisBackend) -> None:
    first, second = store.insert([new(1), new(2)])
    (claim,) = claimed(store)
    assert store.apply([lifecycle.on_release(claim.job, claim.token, 0.0)]) == ([None], [])
    released = got(store, first.id)
    assert released.state is W and released.attempts_made == 0
    assert [(a.number, a.outcome) for a in released.history] == [(1, AttemptOutcome.RELEASED)]
    assert [job.id for job in store.scan(Selector(W), 0, 10)] == [second.id, first.id]
    assert store.outcome_counts(0) == {}


# -- apply: guards ----------------------------------------------------------------------------


def test_a_held_guard_fails_once_the_lease_expired(store: RedisBackend) -> None:
    store.insert([new()])
    (claim,) = claimed(store)
    clock(store).advance(SPEC.lease_seconds)
    assert store.apply([completion(claim)]) == ([Conflict(A)], [])
    assert got(store, claim.job.id).state is A


def test_a_held_guard_with_a_cancel_flag_that_changed(store: RedisBackend) -> None:
    store.insert([new()])
    (claim,) = claimed(store)
    cancel = lifecycle.on_cancel(got(store, claim.job.id))
    assert cancel is not None and store.apply([cancel]) == ([None], [])
    assert got(store, claim.job.id).cancel_requested
    statuses = store.heartbeat(None, [(claim.job.id, claim.token)], 10)
    assert statuses == [LeaseStatus.CANCEL]
    # Decided for a job without the flag: refused, the token still holding its lease.
    change = lifecycle.on_fail(claim.job, claim.token, JobError("E", "x"), None, 0.0)
    assert store.apply([change]) == ([Conflict(A, held=True, cancel_requested=True)], [])
    decided_again = lifecycle.on_fail(
        got(store, claim.job.id), claim.token, JobError("E", "x"), None, 0.0
    )
    assert decided_again.to is X and store.apply([decided_again]) == ([None], [])
    cancelled = got(store, claim.job.id)
    assert cancelled.state is X and cancelled.error == JobError("E", "x")
    assert list(store.outcome_counts(0).values()) == [{"cancelled": 1}]


def test_an_expired_guard_and_the_expired_read(store: RedisBackend) -> None:
    store.insert([new(1), new(2)])
    early, late = claimed(store, 1)[0], None
    clock(store).advance(1)
    (late,) = claimed(store)
    stall = lifecycle.on_stall(got(store, early.job.id), 3, 0.0, early.token)
    assert store.apply([stall]) == ([Conflict(A, held=True)], [])  # not expired yet
    assert store.expired(10) == []
    clock(store).advance(SPEC.lease_seconds)
    found = store.expired(10)
    assert [(c.job.id, c.token) for c in found] == [
        (early.job.id, early.token),
        (late.job.id, late.token),
    ]
    assert store.expired(1)[0].job.id == early.job.id  # soonest expired first
    assert found[0].lease_expires_at == found[0].job.lease_expires_at
    assert store.apply([stall]) == ([None], [])
    stalled = got(store, early.job.id)
    assert stalled.state is W and stalled.stalls == 1 and stalled.attempts_made == 1
    assert [a.outcome for a in stalled.history] == [AttemptOutcome.STALLED]
    # The expired holder is fenced: its complete is refused, and no call ended its lease.
    assert store.apply([completion(early)]) == ([Conflict(W)], [])
    assert [c.job.id for c in store.expired(10)] == [late.job.id]


def test_an_expired_guard_of_another_token_is_refused(store: RedisBackend) -> None:
    store.insert([new()])
    (claim,) = claimed(store)
    clock(store).advance(SPEC.lease_seconds)
    change = Change(claim.job.id, Expired("not-the-token"), W, run_at=0.0)
    assert store.apply([change]) == ([Conflict(A)], [])


def test_no_such_job(store: RedisBackend) -> None:
    change = Change("404", InState(frozenset({D})), W, run_at=0.0)
    assert store.apply([change]) == ([Conflict(None)], [])
    # Foreign data under a job key is no job either: nothing is written, nothing raised.
    (job,) = store.insert([new()])
    store.client.hdel(f"{store.calls.prefix}j:{job.id}", "n")
    cancel = Change(job.id, InState(frozenset({W})), X)
    assert store.apply([cancel, cancel]) == ([Conflict(None), Conflict(None)], [])
    store.client.set(f"{store.calls.prefix}j:{job.id}", "x")
    assert store.apply([cancel]) == ([Conflict(None)], [])


# -- apply: the control plane's changes --------------------------------------------------------


def test_cancel_a_waiting_job_frees_its_key_and_wakes_waiters(store: RedisBackend) -> None:
    (job,) = store.insert([new(unique_key="k")])
    assert store._watch(job.id, 1) == ("wait", None)  # a finish-waiter registered
    change = lifecycle.on_cancel(job)
    assert change is not None and store.apply([change]) == ([None], [])
    cancelled = got(store, job.id)
    assert cancelled.state is X and cancelled.finished_at == clock(store)()
    assert store.client.llen(store.done_key(job.id)) == 1  # the waiter was woken
    assert store.insert([new(unique_key="k")])[0].id != job.id  # the key is free
    assert store.scan(Selector(W), 0, 10)[0].id != job.id
    assert store.outcome_counts(0) == {}  # no attempt ended


def test_retry_fences_and_is_refused_while_the_unique_key_is_held(store: RedisBackend) -> None:
    (job,) = store.insert([new(unique_key="k")])
    (claim,) = claimed(store)
    store.apply([lifecycle.on_fail(claim.job, claim.token, JobError("E", "x"), None, 0.0)])
    assert store.apply([completion(claim)])[0] == [Conflict(F, ended_by="fail")]
    (holder,) = store.insert([new(unique_key="k")])
    retry = lifecycle.on_retry(got(store, job.id), 0.0)
    assert store.apply([retry]) == ([Conflict(F, unique_holder=holder.id)], [])
    store.delete([holder.id])
    assert store.apply([retry]) == ([None], [])
    again = got(store, job.id)
    assert (again.state, again.attempts_made, again.stalls, again.finished_at) == (W, 0, 0, None)
    assert again.error == JobError("E", "x") and len(again.history) == 1
    # A new life: the old token's fail is forgotten.
    assert store.apply([completion(claim)])[0] == [Conflict(W)]
    assert store.insert([new(unique_key="k")])[0].id == job.id  # it holds the key again


def test_promote_runs_a_delayed_job_now(store: RedisBackend) -> None:
    first, delayed = store.insert([new(1), new(2, run_at=clock(store)() + 60)])
    clock(store).advance(1)
    assert store.apply([lifecycle.on_promote(delayed)]) == ([None], [])
    promoted = got(store, delayed.id)
    assert promoted.state is W and promoted.run_at == clock(store)()
    assert [c.job.id for c in store.claim_many(SPEC, 2)] == [first.id, delayed.id]
    assert store.apply([lifecycle.on_promote(delayed)])[0] == [Conflict(A)]


def test_a_corrupt_claim_fails_without_an_attempt(store: RedisBackend) -> None:
    store.insert([new()])
    (claim,) = claimed(store)
    assert store.apply([lifecycle.on_corrupt(claim.job.id, "bad")]) == ([None], [])
    failed = got(store, claim.job.id)
    assert failed.state is F and failed.history == [] and failed.error is not None
    assert store.expired(10) == [] and store.counts()["a"][A] == 0


def test_a_record_the_claim_cannot_decode_is_failed_and_skipped(store: RedisBackend) -> None:
    bad, good = store.insert([new(1), new(2)])
    store.client.hdel(f"{store.calls.prefix}j:{bad.id}", "c")  # its creation time lost
    assert [c.job.id for c in store.apply([], ClaimAsk(SPEC, 1))[1]] == [good.id]
    failed = got(store, bad.id)
    assert failed.state is F and failed.error is not None
    assert failed.error.type == "CorruptJobError" and "lacks field c" in failed.error.message
    assert store.counts()["a"][F] == 1 and store.expired(10) == []
    assert list(store.outcome_counts(0).values()) == [{"failed": 1}]


# -- the other writes -------------------------------------------------------------------------


def test_annotate_progress_and_log_in_one_call(store: RedisBackend) -> None:
    store.insert([new()])
    (claim,) = claimed(store)
    assert store.annotate(claim.job.id, claim.token, progress=(40.0, "m" * 3000), log="line")
    job = got(store, claim.job.id)
    assert job.progress == 40.0 and job.progress_message == "m" * 2000
    assert [(entry.at, entry.message) for entry in job.logs] == [(clock(store)(), "line")]
    assert store.annotate(claim.job.id, claim.token, progress=(50.0, None))
    assert got(store, claim.job.id).progress_message is None
    assert not store.annotate(claim.job.id, "stolen", log="x")
    clock(store).advance(SPEC.lease_seconds)
    assert not store.annotate(claim.job.id, claim.token, log="late")
    assert len(got(store, claim.job.id).logs) == 1


def test_delete_many(store: RedisBackend) -> None:
    one, two, _ = store.insert([new(1, unique_key="k"), new(2), new(3)])
    (claim,) = claimed(store)
    assert store.delete([one.id, two.id, "404"]) == 2
    assert store.get(one.id) is None and store.get(two.id) is None
    assert store.insert([new(unique_key="k")])[0].id != one.id
    assert store.counts()["a"][W] == 2 and store.counts()["a"][A] == 0
    assert store.expired(10) == [] and claim.job.id == one.id


def test_heartbeat_without_a_dispatcher_renews_leases_only(store: RedisBackend) -> None:
    store.insert([new()])
    (claim,) = claimed(store)
    clock(store).advance(9)
    assert store.heartbeat(None, [(claim.job.id, claim.token)], 10) == [LeaseStatus.HELD]
    clock(store).advance(9)
    assert got(store, claim.job.id).lease_expires_at == clock(store)() + 1
    assert store.dispatchers() == []


def test_pause_and_forget(store: RedisBackend) -> None:
    store.insert([new()])
    store.set_paused("worker", "a", True)
    assert store.paused() == {"a"} and store.claim_many(SPEC, 1) == []
    store.set_paused("worker", "a", False)
    assert store.paused() == frozenset() and len(store.claim_many(SPEC, 1)) == 1
    store.set_paused("schedule", "s", True)
    (record,) = store.schedule_records("s")
    assert record.paused and store.schedule_records("nope") == []
    store.claim_tick(TickClaim("t", "{}", 100.0, None))
    assert [r.name for r in store.schedule_records()] == ["s", "t"]
    assert store.forget("schedule", "s") and not store.forget("schedule", "s")
    info = DispatcherInfo("d1", "host", 1, ("a",), 1, 0.0, 0.0)
    store.heartbeat(info, [], 10)
    assert [d.id for d in store.dispatchers()] == ["d1"]
    assert store.forget("dispatcher", "d1") and not store.forget("dispatcher", "d1")


def test_housekeep_promotes_and_retains_but_recovers_no_stall(store: RedisBackend) -> None:
    store.insert([new(n) for n in range(5)] + [new("later", run_at=clock(store)() + 5)])
    claims = claimed(store, 5)
    store.apply([completion(c) for c in claims[:4]])
    store.heartbeat(DispatcherInfo("d1", "host", 1, ("a",), 1, 0.0, 0.0), [], 1)
    clock(store).advance(SPEC.lease_seconds)
    assert store.housekeep() == 2  # the due job promoted, one completed job past the count
    counts = store.counts()["a"]
    assert (counts[W], counts[C], counts[A]) == (1, 3, 1)  # the expired lease stays
    assert store.expired(10)[0].job.id == claims[4].job.id
    assert store.dispatchers() == [] and store.client.zcard(store.calls.prefix + "dispatchers") == 0


# -- the reads --------------------------------------------------------------------------------


def test_scan_orders_and_filters(store: RedisBackend) -> None:
    now = clock(store)()
    low, high, other, low2 = store.insert([new(1), new(2, priority=5), new(3, name="b"), new(4)])
    assert [j.id for j in store.scan(Selector(W), 0, 10)] == [high.id, low.id, other.id, low2.id]
    assert [j.id for j in store.scan(Selector(W, "a"), 1, 10)] == [low.id, low2.id]
    assert [j.id for j in store.scan(Selector(W, "b"), 0, 10)] == [other.id]
    late, soon = store.insert([new(5, run_at=now + 20), new(6, run_at=now + 10)])
    assert [j.id for j in store.scan(Selector(D), 0, 10)] == [soon.id, late.id]
    spec = WorkSpec(("a", "b"), lease_seconds=10)
    for claim in store.claim_many(spec, 4):
        clock(store).advance(1)
        store.apply([completion(claim)])
    done = store.scan(Selector(C), 0, 10)
    assert [j.id for j in done] == [low2.id, other.id, low.id, high.id]  # newest first
    assert [j.id for j in store.scan(Selector(C, "a"), 0, 1)] == [low2.id]
    assert [j.id for j in store.scan(Selector(C, "a"), 1, 5)] == [low.id, high.id]
    before = done[1].finished_at
    assert before is not None  # strictly before: the job finished then is left out
    assert [j.id for j in store.scan(Selector(C, None, before), 0, 10)] == [low.id, high.id]
    assert [j.id for j in store.scan(Selector(C, "b", before), 0, 10)] == []
    assert store.scan(Selector(C), 0, 0) == []


# -- lost replies -----------------------------------------------------------------------------


def lose_next_reply(backend: RedisBackend) -> list[int]:
    """Make the next reply on this thread's connection arrive and then be lost (the server
    applied the command); returns a list counting the script calls sent from then on."""
    backend.counts()  # the thread's connection is open (and fakeredis's scripts chosen)
    for name in SCRIPT_NAMES:  # so that the reply lost is not a NOSCRIPT (on scripts)
        backend.client.script_load(backend.calls.scripts[name].source)
    assert backend._connections is not None
    connection: Any = backend._connections.held()
    sent: list[int] = []
    send, read = connection.send_packed_command, connection.read_response

    def counting_send(command: Any, *args: Any, **kwargs: Any) -> None:
        head = bytes(command[0] if isinstance(command, list) else command)[:32]
        if b"\r\nFCALL\r\n" in head or b"\r\nEVALSHA\r\n" in head:
            sent.append(1)
        send(command, *args, **kwargs)

    def losing_read(*args: Any, **kwargs: Any) -> Any:
        del connection.read_response  # once only
        read(*args, **kwargs)  # the server applied it and answered...
        raise redis.exceptions.ConnectionError("reply lost on purpose")  # ...in vain

    connection.send_packed_command = counting_send
    connection.read_response = losing_read
    return sent


@pytest.fixture(params=["redis", "fakeredis"])
def losing(request: pytest.FixtureRequest) -> Iterator[RedisBackend]:
    made = open_backend(request.param, request, BackendOptions(clock=ManualClock()))
    yield made
    delete_namespace(made.client, made.namespace)
    made.close()


def test_a_resent_apply_answers_its_first_claims(losing: RedisBackend) -> None:
    store = losing
    _, second, _ = store.insert([new(1), new(2), new(3)])
    (claim,) = claimed(store)
    sent = lose_next_reply(store)
    results, claims = store.apply([completion(claim)], ClaimAsk(SPEC, 1))
    assert len(sent) == 2  # sent again, marked as a repeat
    # Written by the first run: the resend answers as that run did ...
    assert results == [None]
    # ... and gets the job the first run claimed, not a third one.
    assert [c.job.id for c in claims] == [second.id]
    assert store.counts()["a"][A] == 1
    assert list(store.outcome_counts(0).values()) == [{"completed": 1}]


@pytest.mark.parametrize("to", [W, X])
def test_a_resent_control_change_is_answered_written(losing: RedisBackend, to: JobState) -> None:
    store = losing
    (job,) = store.insert([new(run_at=clock(store)() + 60)])
    change = lifecycle.on_promote(job) if to is W else lifecycle.on_cancel(job)
    assert change is not None
    sent = lose_next_reply(store)
    assert store.apply([change]) == ([None], [])
    assert len(sent) == 2 and got(store, job.id).state is to
    assert store.apply([change]) == ([Conflict(to)], [])  # not a resend: the conflict


def test_a_resent_annotate_logs_once(losing: RedisBackend) -> None:
    store = losing
    store.insert([new()])
    (claim,) = claimed(store)
    sent = lose_next_reply(store)
    assert store.annotate(claim.job.id, claim.token, progress=(5.0, None), log="once")
    assert len(sent) == 2
    job = got(store, claim.job.id)
    assert [entry.message for entry in job.logs] == ["once"] and job.progress == 5.0


# -- a namespace written by 0.1.0 --------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.redis
def test_a_namespace_written_by_0_1_0(redis_url: str) -> None:
    from tests.backends.fixtures.release_jobs import READ_AT
    from tests.backends.test_upgrade_release import restore_namespace

    client = redis.Redis.from_url(redis_url)
    namespace = new_namespace()
    restore_namespace(client, json.loads((FIXTURES / "redis-0.1.0.json").read_text()), namespace)
    store = RedisBackend(client, BackendOptions(clock=ManualClock(READ_AT)), namespace=namespace)
    try:
        # The completed job's lease was ended by complete (K 'c'): a repeat is told so.
        assert store.apply([Change("1", Held("bea38e8577f55a52"), C)])[0] == [
            Conflict(C, ended_by="complete")
        ]
        (active,) = store.scan(Selector(A), 0, 10)
        assert active.id == "3" and active.unique_key == "mail:c"
        assert store.expired(10) == []
        clock(store).advance(2 * 3600)
        (stalled,) = store.expired(10)
        assert stalled.token == "fbb091e508dacbcb"
        change = lifecycle.on_stall(stalled.job, 3, 0.0, stalled.token)
        assert store.apply([change]) == ([None], [])
        recovered = got(store, "3")
        assert recovered.state is W and recovered.stalls == 1
        assert [a.outcome for a in recovered.history] == [AttemptOutcome.STALLED]
        retry = lifecycle.on_retry(got(store, "2"), 0.0)
        assert store.apply([retry]) == ([None], [])
        assert got(store, "2").attempts_made == 0
        assert store.delete(["1", "2"]) == 2
    finally:
        delete_namespace(client, namespace)
        client.close()


# -- the hot path's cost ----------------------------------------------------------------------


# Redis commands (Lua's redis.call included) of the old verbs on the test below's run: 30 jobs
# by complete-and-claim-next (complete.lua), and by finish_many.lua with 5 claims a call,
# measured on this branch before the old verbs go (apply: 604 and 425 then).
OLD_COMPLETE_COMMANDS = 784
OLD_FINISH_MANY_COMMANDS = 467


@pytest.mark.redis
def test_apply_costs_no_more_redis_commands_than_the_old_verbs(tmp_path: Path) -> None:
    """complete+claim-next and a batch of finishes cost no more Redis commands through apply
    than through the old verbs, counted by a server of this test's own (INFO commandstats)."""
    port = free_port()
    server = start_redis_server(tmp_path, port)
    try:
        client = redis.Redis(port=port)

        def commands() -> int:
            stats = client.info("commandstats")
            return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")

        counted: dict[int, int] = {}
        for limit in (1, 5):
            store = RedisBackend(client, BackendOptions(), namespace=f"count{limit}")
            store.insert([new(n) for n in range(30)])
            claims = claimed(store)
            client.config_resetstat()
            before = commands()
            while claims:
                ask = ClaimAsk(SPEC, limit)
                claims = store.apply([completion(c, 1) for c in claims], ask)[1]
            counted[limit] = commands() - before
        assert counted[1] <= OLD_COMPLETE_COMMANDS, counted
        assert counted[5] <= OLD_FINISH_MANY_COMMANDS, counted
    finally:
        stop_process(server)


# -- replica acknowledgement ------------------------------------------------------------------


def test_an_apply_with_replicas_waits_for_them(replicated: ReplicatedRedis) -> None:
    # A second: a replica on a busy test machine may take a good part of one to acknowledge.
    url = f"redis://127.0.0.1:{replicated.primary_port}/0?replicas=1&replica_timeout=1"
    store = RedisBackend.from_url(url, BackendOptions(namespace=new_namespace()))
    try:
        store.insert([new()])
        (claim,) = claimed(store)
        replicated.lag_replica()
        with pytest.raises(
            ReplicationTimeoutError, match=f"the apply of job {claim.job.id} is stored"
        ):
            store.apply([completion(claim)], ClaimAsk(SPEC, 1))
        replicated.unpause_replica()
        # Stored on the primary: sent again, the change is found written by this token.
        assert store.apply([completion(claim)]) == ([Conflict(C, ended_by="complete")], [])
    finally:
        delete_namespace(store.client, store.namespace)
        store.close()


# -- Redis Cluster ----------------------------------------------------------------------------


@pytest.mark.cluster
def test_the_seam_on_a_cluster_shard(cluster_ports: list[int]) -> None:
    """Every seam script keeps to the namespace's hash tag (and declares the slot guard), so
    it runs on the shard owning the namespace, through EVALSHA as cluster clients call."""
    client = RedisCluster(host="127.0.0.1", port=cluster_ports[0])
    _, namespace = namespaces_on_two_shards(client)
    store = RedisBackend(client, BackendOptions(clock=ManualClock()), namespace=namespace)
    try:
        assert not store.calls.functions
        first, second = store.insert([new(1, unique_key="k"), new(2, run_at=clock(store)() + 5)])
        (claim,) = claimed(store)
        clock(store).advance(5)
        results, claims = store.apply([completion(claim)], ClaimAsk(SPEC, 1))
        assert results == [None] and [c.job.id for c in claims] == [second.id]
        assert store.annotate(second.id, claims[0].token, progress=(1.0, "m"), log="l")
        assert [j.id for j in store.scan(Selector(C), 0, 10)] == [first.id]
        clock(store).advance(SPEC.lease_seconds)
        (stalled,) = store.expired(10)
        assert store.apply([lifecycle.on_stall(stalled.job, 3, 0.0, stalled.token)])[0] == [None]
        assert store.housekeep() == 0 and store.counts()["a"][W] == 1
        assert store.heartbeat(None, [], 10) == [] and not store.forget("dispatcher", "d1")
        store.set_paused("worker", "a", True)
        assert store.claim_many(SPEC, 1) == []
        assert store.delete([first.id, second.id]) == 2
    finally:
        for key in client.keys(f"jq:{{{namespace}}}:*", target_nodes="all"):
            client.delete(key)
        store.close()
