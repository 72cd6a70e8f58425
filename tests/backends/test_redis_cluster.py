"""The Redis backend on a real 3-master Redis Cluster built on loopback ports for this test.

Every key of a namespace shares one hash tag, so the scripts run unchanged on the shard that
owns it; two namespaces placed on different shards both work, through a ``RedisCluster``
client and through a ``redis://...?cluster=true`` URL.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from jobqueue import lifecycle
from jobqueue.backend import (
    BackendOptions,
    DispatcherInfo,
    LeaseStatus,
    TickClaim,
    TickOutcome,
    WorkSpec,
)
from jobqueue.backends.redis import RedisBackend
from jobqueue.backends.redis.cluster import GUARD
from jobqueue.errors import BackendUnavailableError
from jobqueue.job import Job, JobError, JobState
from jobqueue.testing import ManualClock
from jobqueue.testing.contract import spec
from tests.backends.redis_fixtures import (
    free_port,
    start_redis_server,
    stop_process,
    unavailable,
    verbs,
)

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    if shutil.which("redis-cli") is None or shutil.which("redis-server") is None:
        unavailable("building a Redis Cluster needs redis-server and redis-cli on PATH")
    root = tmp_path_factory.mktemp("cluster")
    ports = [free_port() for _ in range(3)]
    servers = []
    try:
        for port in ports:
            servers.append(
                start_redis_server(
                    root / str(port),
                    port,
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(root / str(port) / "nodes.conf"),
                    "--cluster-port", str(free_port()),
                    "--cluster-node-timeout", "5000",
                )
            )  # fmt: skip
        create = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports)]
        subprocess.run(
            [*create, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_for_cluster_ok(ports)
        yield ports
    finally:
        for server in servers:
            stop_process(server)


def wait_for_cluster_ok(ports: list[int]) -> None:
    deadline = time.monotonic() + 30
    for port in ports:
        node = redis.Redis(port=port)
        while node.cluster("INFO").get("cluster_state") != "ok":
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster node {port} never reached cluster_state:ok")
            time.sleep(0.1)
        node.close()


def namespaces_on_two_shards(client: RedisCluster) -> tuple[str, str]:
    """Two namespace names whose hash tags live on different master nodes."""
    seen: dict[str, str] = {}
    for i in range(1000):
        ns = f"cl{i}"
        slot = client.keyslot(f"jq:{{{ns}}}:id")
        node = client.nodes_manager.get_node_from_slot(slot).name
        if seen and node not in seen.values():
            return next(iter(seen)), ns
        seen.setdefault(ns, node)
    raise AssertionError("could not place two namespaces on different shards")


def flow(backend: RedisBackend, clock: ManualClock) -> None:
    """Submit, claim, complete-and-claim-next, retry, wait: the hot paths, on one shard."""
    now = clock()
    jobs = verbs(backend).submit_many(
        [Job(id="", name="a", data={"i": i}, created_at=now, run_at=now) for i in range(5)]
    )
    delayed = verbs(backend).submit(
        Job(id="", name="a", data="later", created_at=now, run_at=now + 30)
    )
    assert delayed.state is JobState.DELAYED
    claim = verbs(backend).claim(spec("a"))
    done = 0
    while claim is not None:
        assert claim.job.id == jobs[done].id
        claim = verbs(backend).complete(claim.job.id, claim.token, {"i": done}, spec("a"))
        done += 1
    assert done == 5
    woke: list[bool] = []
    about_to_block = clock.read_elsewhere()  # the waiter reads "now" before it blocks
    waiter = threading.Thread(target=lambda: woke.append(backend.wait_for_work(["b"], 10)))
    waiter.start()
    assert about_to_block.wait(10)
    extra = verbs(backend).submit(Job(id="", name="b", data=None, created_at=now, run_at=now))
    waiter.join(10)
    assert woke == [True]
    claim = verbs(backend).claim(spec("b"))
    assert claim is not None and claim.job.id == extra.id
    finisher = threading.Timer(
        0.2, verbs(backend).complete, args=(extra.id, claim.token, "r", None)
    )
    finisher.start()
    finished = backend.wait_for_finish(extra.id, 10)
    finisher.join()
    assert finished is not None and finished.result == "r"
    clock.advance(30)
    later = verbs(backend).claim(spec("a"))
    assert later is not None and later.job.id == delayed.id
    error = JobError("E", "boom")
    assert verbs(backend).fail(later.job.id, later.token, error, None) is JobState.FAILED
    counts = verbs(backend).count_by_state()
    assert counts[JobState.COMPLETED] == 6 and counts[JobState.FAILED] == 1


def control_flow(backend: RedisBackend, clock: ManualClock) -> None:
    """The control plane on one shard: cancel, retry, purge, pause, heartbeat, dispatchers,
    maintenance, counts by name; running a delayed job now, bulk cancel, lease deadlines and
    outcome counts."""
    now = clock()
    waiting = verbs(backend).submit(Job(id="", name="c", data=1, created_at=now, run_at=now))
    assert verbs(backend).cancel(waiting.id) is JobState.CANCELLED
    retried = verbs(backend).retry(waiting.id)
    assert retried is not None and retried.state is JobState.WAITING
    verbs(backend).pause("c")
    assert backend.paused() == frozenset({"c"}) and verbs(backend).claim(spec("c")) is None
    verbs(backend).resume("c")
    claim = verbs(backend).claim(WorkSpec(names=("c",), lease_seconds=30, dispatcher="d1"))
    assert claim is not None and claim.job.dispatcher == "d1"
    info = DispatcherInfo("d1", "host", 1, ("c",), 1, now)
    assert backend.heartbeat(info, [(claim.job.id, claim.token)], 30) == [LeaseStatus.HELD]
    stored = backend.get(claim.job.id)
    assert stored is not None and stored.lease_expires_at == clock() + 30
    assert [d.id for d in backend.dispatchers()] == ["d1"]
    assert verbs(backend).cancel(claim.job.id) is JobState.ACTIVE
    assert backend.heartbeat(info, [(claim.job.id, claim.token)], 30) == [LeaseStatus.CANCEL]
    assert verbs(backend).finish_cancelled(claim.job.id, claim.token, None)
    assert verbs(backend).count_by_name()["c"][JobState.CANCELLED] == 1
    verbs(backend).remove_dispatcher("d1")
    assert backend.dispatchers() == []
    verbs(backend).maintain()
    later = verbs(backend).submit(Job(id="", name="c", data=2, created_at=now, run_at=clock() + 60))
    promoted = verbs(backend).promote(later.id)
    assert promoted is not None and promoted.state is JobState.WAITING
    assert verbs(backend).cancel_many(JobState.WAITING, "c") == 1
    totals: dict[str, int] = {}
    for counts in backend.outcome_counts(lifecycle.outcome_minute(now) - 60).values():
        for outcome, n in counts.items():
            totals[outcome] = totals.get(outcome, 0) + n
    assert totals == {"completed": 6, "failed": 1, "cancelled": 1}  # flow()'s and the cancel
    assert verbs(backend).purge(JobState.CANCELLED, "c") == 2
    assert "c" not in verbs(backend).count_by_name()


def schedule_flow(backend: RedisBackend, clock: ManualClock) -> None:
    """Periodic schedules on one shard: a tick's claim stores its job in the same script as
    the schedule's record, so every key it touches is the namespace's."""
    now = clock()
    tick = float(int(now))
    job = Job(id="", name="sched", data={"t": 1}, created_at=now, run_at=now)
    assert backend.claim_tick(TickClaim("nightly", "{}", tick, None)).outcome is (
        TickOutcome.RECORDED
    )
    result = backend.claim_tick(TickClaim("nightly", "{}", tick + 60, job))
    assert result.outcome is TickOutcome.SUBMITTED and result.job is not None
    again = backend.claim_tick(TickClaim("nightly", "{}", tick + 60, job))
    assert again.outcome is TickOutcome.ALREADY_CLAIMED
    skipped = backend.claim_tick(TickClaim("nightly", "{}", tick + 120, job))
    assert skipped.outcome is TickOutcome.OVERLAP_SKIPPED
    verbs(backend).pause_schedule("nightly")
    record = verbs(backend).schedule_record("nightly")
    assert record is not None and record.paused and record.last_job_id == result.job.id
    assert [r.name for r in backend.schedule_records()] == ["nightly"]
    assert verbs(backend).remove_schedule("nightly") is True
    assert verbs(backend).remove(result.job.id) is True


def test_two_namespaces_on_two_shards(cluster_ports: list[int]) -> None:
    client = RedisCluster(host="127.0.0.1", port=cluster_ports[0])
    first, second = namespaces_on_two_shards(client)
    clock = ManualClock()
    by_client = RedisBackend(client, BackendOptions(clock=clock), namespace=first)
    by_url = RedisBackend.from_url(
        f"redis://127.0.0.1:{cluster_ports[1]}/0?cluster=true&namespace={second}",
        BackendOptions(clock=clock),
    )
    assert isinstance(by_url.client, RedisCluster)
    try:
        for backend in (by_client, by_url):
            flow(backend, clock)
            control_flow(backend, clock)
            schedule_flow(backend, clock)
        for ns in (first, second):
            keys = [k.decode() for k in client.keys(f"jq:{{{ns}}}:*", target_nodes="all")]
            assert keys and {client.keyslot(k) for k in keys} == {client.keyslot(keys[0])}
    finally:
        for backend, ns in ((by_client, first), (by_url, second)):
            for key in client.keys(f"jq:{{{ns}}}:*", target_nodes="all"):
                client.delete(key)
            backend.close()


class SlotMove:
    """Moving one slot from its owner to another master, step by step, as ``redis-cli
    --cluster reshard`` does: IMPORTING on the target, MIGRATING on the source, MIGRATE of
    its keys a few at a time, then the new owner announced to every master."""

    def __init__(self, client: RedisCluster, slot: int) -> None:
        self.slot = slot
        self.source = client.nodes_manager.get_node_from_slot(slot)
        self.target = next(n for n in client.get_primaries() if n.name != self.source.name)
        self.masters = [redis.Redis(port=n.port) for n in client.get_primaries()]
        self.src = redis.Redis(port=self.source.port)
        self.dst = redis.Redis(port=self.target.port)
        self.src_id = self.src.execute_command("CLUSTER MYID").decode()
        self.dst_id = self.dst.execute_command("CLUSTER MYID").decode()

    def start(self) -> None:
        self.dst.execute_command("CLUSTER", "SETSLOT", self.slot, "IMPORTING", self.src_id)
        self.src.execute_command("CLUSTER", "SETSLOT", self.slot, "MIGRATING", self.dst_id)

    def keys_left(self) -> list[bytes]:
        return list(self.src.execute_command("CLUSTER", "GETKEYSINSLOT", self.slot, 10_000))

    def migrate(self, keys: list[bytes]) -> None:
        if keys:
            port = self.target.port
            self.src.execute_command("MIGRATE", "127.0.0.1", port, "", 0, 5000, "KEYS", *keys)

    def finish(self) -> None:
        self.migrate(self.keys_left())
        for node in [self.dst, self.src, *self.masters]:
            node.execute_command("CLUSTER", "SETSLOT", self.slot, "NODE", self.dst_id)

    def close(self) -> None:
        for node in [self.src, self.dst, *self.masters]:
            node.close()


def test_resharding_the_namespace_refuses_calls_retryably_and_drops_nothing(
    cluster_ports: list[int],
) -> None:
    """While the namespace's slot migrates, every call is refused with the retryable
    BackendUnavailableError before its script runs (the guard key), whichever keys have
    moved yet; once the slot has moved, the refused submits go through on retry and every
    job is there, in order, counted right. On main the refusal was a plain BackendError
    ("Script attempted to access a non local key"), the class not worth retrying."""
    client = RedisCluster(host="127.0.0.1", port=cluster_ports[0])
    ns = "reshard"
    prefix = f"jq:{{{ns}}}:"
    clock = ManualClock()
    backend = RedisBackend(client, BackendOptions(clock=clock), namespace=ns)
    move = SlotMove(client, client.keyslot(prefix + "id"))
    # A client of the source node alone, as a misconfigured app would hold.
    plain = RedisBackend(
        redis.Redis(port=move.source.port), BackendOptions(clock=clock), namespace=ns
    )
    now = clock()

    def job(i: int) -> Job:
        return Job(id="", name="m", data={"i": i}, created_at=now, run_at=now, unique_key=f"u{i}")

    try:
        stored = verbs(backend).submit_many([job(i) for i in range(6)])
        first = verbs(backend).claim(spec("m"))
        assert first is not None and first.job.id == stored[0].id
        move.start()
        refused: list[int] = []
        keys = move.keys_left()
        job_keys = [k for k in keys if k.startswith(f"{prefix}j:".encode())]
        # Before any key moved, with the next job's hash gone, with half of all gone.
        steps = [[], [f"{prefix}j:{stored[1].id}".encode()], keys[: len(keys) // 2]]
        for i, moving in enumerate(steps):
            move.migrate([k for k in moving if k in move.keys_left()])
            for call in (
                lambda n=10 + i: verbs(backend).submit(job(n)),
                lambda: verbs(backend).claim(spec("m")),
                lambda: backend.get(stored[1].id),
                lambda: verbs(backend).count_by_state(),
                lambda: verbs(plain).claim(spec("m")),
                lambda: plain.get(stored[1].id),
            ):
                with pytest.raises(BackendUnavailableError, match="slot moves"):
                    call()
            refused.append(10 + i)
        assert job_keys  # the jobs' hashes were in the slot
        move.finish()
        client.nodes_manager.initialize()  # as it would after the MOVED it gets next
        assert client.nodes_manager.get_node_from_slot(move.slot).name == move.target.name
        again = [verbs(backend).submit(job(i)) for i in refused]  # the retries of the refused
        assert [j.state for j in again] == [JobState.WAITING] * 3
        claimed = []
        while (claim := verbs(backend).claim(spec("m"))) is not None:
            claimed.append(claim.job.id)
        assert claimed == [j.id for j in stored[1:]] + [j.id for j in again]
        counts = verbs(backend).count_by_state()
        assert counts[JobState.ACTIVE] == 9 and counts[JobState.WAITING] == 0
        assert verbs(backend).count_by_name()["m"][JobState.ACTIVE] == 9
        assert client.exists(prefix + GUARD) == 0
    finally:
        for key in client.keys(f"{prefix}*", target_nodes="all"):
            client.delete(key)
        move.close()
        plain.close()
        backend.close()


def test_a_refused_read_inside_a_script_is_no_missing_job(cluster_ports: list[int]) -> None:
    """Without the guard key (as a caller of the scripts declaring only the id counter), a
    script does run on the source node mid-migration, and a pcall'd read of a key that has
    moved is refused. That refusal must fail the call retryably, not read as a missing
    key: on main count_by_name() answered {} -- the name's counts hash had "vanished"."""
    client = RedisCluster(host="127.0.0.1", port=cluster_ports[0])
    ns = "refusedread"
    prefix = f"jq:{{{ns}}}:"
    clock = ManualClock()
    move = SlotMove(client, client.keyslot(prefix + "id"))
    backend = RedisBackend(
        redis.Redis(port=move.source.port), BackendOptions(clock=clock), namespace=ns
    )
    backend.calls.route = (prefix + "id",)  # no guard: the script runs, its read is refused
    now = clock()
    try:
        stored = verbs(backend).submit(Job(id="", name="m", data=1, created_at=now, run_at=now))
        assert verbs(backend).count_by_name()["m"][JobState.WAITING] == 1
        move.start()
        move.migrate([f"{prefix}n:m".encode()])  # the name's counts, read through pcall
        with pytest.raises(BackendUnavailableError, match="non local key"):
            verbs(backend).count_by_name()
        move.finish()
        client.nodes_manager.initialize()
        moved = RedisBackend(client, BackendOptions(clock=clock), namespace=ns)
        found = moved.get(stored.id)
        assert found is not None and found.data == 1
        assert verbs(moved).count_by_name()["m"][JobState.WAITING] == 1
        moved.close()
    finally:
        for key in client.keys(f"{prefix}*", target_nodes="all"):
            client.delete(key)
        move.close()
        backend.close()
