"""The shared backend contract on the Redis backend, against real Redis and fakeredis, plus
what only Redis has: URLs, key layout, corrupt data, unreachable servers."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis

from jobqueue.backend import Backend, BackendOptions, Retention, TickClaim
from jobqueue.backends.redis import RedisBackend
from jobqueue.backends.redis.scripts import Library, load_library, load_scripts
from jobqueue.errors import BackendUnavailableError, CorruptJobError, InvalidOptionError
from jobqueue.job import Job, JobState
from jobqueue.testing import BackendContract, ManualClock
from jobqueue.testing.contract import HandoffContract, spec
from tests.backends.redis_fixtures import delete_namespace, new_namespace, redis_url, verbs

__all__ = ["redis_url"]  # the fixture, re-exported for pytest


def redis_of(backend: object) -> RedisBackend:
    """The RedisBackend a contract test holds: itself, or the store under the core's
    ``Engine`` (``engine.store``)."""
    store = getattr(backend, "store", backend)
    assert isinstance(store, RedisBackend)
    return store


def dispose(backend: object) -> None:
    """Delete the backend's own namespace (nothing else) and close it."""
    store = redis_of(backend)
    delete_namespace(store.client, store.namespace)
    store.close()


class RedisContract(BackendContract, HandoffContract):
    """Disposal deletes the backend's own namespace, and checks that is all it wrote."""

    def dispose_backend(self, backend: Backend) -> None:
        dispose(backend)


@pytest.mark.redis
class TestRedisBackendOnRealRedis(RedisContract):
    url: str

    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str) -> None:
        self.url = redis_url

    def make_backend(self, options: BackendOptions) -> Backend:
        return RedisBackend.from_url(
            self.url, dataclasses.replace(options, namespace=new_namespace())
        )

    def open_same_store(self, backend: Backend, options: BackendOptions) -> Backend:
        store = redis_of(backend)  # a client of its own, the same namespace
        return RedisBackend.from_url(
            self.url, dataclasses.replace(options, namespace=store.namespace)
        )


class TestRedisBackendOnFakeRedis(RedisContract):
    def make_backend(self, options: BackendOptions) -> Backend:
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        return RedisBackend(client, options, namespace=new_namespace())

    def open_same_store(self, backend: Backend, options: BackendOptions) -> Backend:
        store = redis_of(backend)  # a client of its own on the same server
        client = fakeredis.FakeRedis(
            server=store.client.connection_pool.connection_kwargs["server"]
        )
        return RedisBackend(client, options, namespace=store.namespace)


@pytest.mark.redis
class TestRedisBackendOnRealRedisWithScripts(TestRedisBackendOnRealRedis):
    """As a server without Redis Functions is served: every call an EVALSHA."""

    def make_backend(self, options: BackendOptions) -> Backend:
        return scripts_only(super().make_backend(options))

    def open_same_store(self, backend: Backend, options: BackendOptions) -> Backend:
        return scripts_only(super().open_same_store(backend, options))


class TestRedisBackendOnFakeRedis6(RedisContract):
    """A Redis 6 (fakeredis playing one): no Functions, no shebangs, so the plain scripts."""

    def make_backend(self, options: BackendOptions) -> Backend:
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(version=(6, 2)))
        return RedisBackend(client, options, namespace=new_namespace())

    def open_same_store(self, backend: Backend, options: BackendOptions) -> Backend:
        store = redis_of(backend)
        client = fakeredis.FakeRedis(
            server=store.client.connection_pool.connection_kwargs["server"]
        )
        return RedisBackend(client, options, namespace=store.namespace)


def scripts_only(backend: Backend) -> Backend:
    redis_of(backend).calls.functions = False
    return backend


# -- Redis-only behaviour (on fakeredis: fast, no server needed) --------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake() -> Iterator[Any]:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    yield client
    client.close()


@pytest.fixture
def backend(fake: Any, clock: ManualClock) -> RedisBackend:
    return RedisBackend(fake, BackendOptions(clock=clock), namespace="ns1")


def job(clock: ManualClock, name: str = "a", **fields: Any) -> Job:
    return Job(
        id="",
        name=name,
        data=fields.pop("data", {"n": 1}),
        created_at=clock(),
        run_at=fields.pop("run_at", clock()),
        **fields,
    )


def test_every_key_shares_the_namespace_hash_tag(
    backend: RedisBackend, fake: Any, clock: ManualClock
) -> None:
    first = verbs(backend).submit(job(clock, unique_key="u"))
    verbs(backend).submit(job(clock, run_at=clock() + 50))
    claim = verbs(backend).claim(spec("a"))
    assert claim is not None and claim.job.id == first.id
    verbs(backend).add_log(first.id, claim.token, "hello")
    verbs(backend).complete(first.id, claim.token, 1, None)
    backend.claim_tick(TickClaim("nightly {x}", "{}", 60, job(clock)))
    verbs(backend).pause_schedule("other")
    keys = [k.decode() for k in fake.keys("*")]
    assert keys and all(k.startswith("jq:{ns1}:") for k in keys), keys


def test_namespaces_are_kept_apart(fake: Any, clock: ManualClock) -> None:
    one = RedisBackend(fake, BackendOptions(clock=clock), namespace="one")
    two = RedisBackend(fake, BackendOptions(clock=clock), namespace="two")
    verbs(one).submit(job(clock))
    assert verbs(two).claim(spec("a")) is None
    assert verbs(one).claim(spec("a")) is not None


def test_priority_out_of_range_is_refused(backend: RedisBackend, clock: ManualClock) -> None:
    with pytest.raises(InvalidOptionError):
        verbs(backend).submit(job(clock, priority=1_000_001))
    assert sum(verbs(backend).count_by_state().values()) == 0


def test_extreme_priorities_keep_fifo(backend: RedisBackend, clock: ManualClock) -> None:
    for label, priority in [
        ("lo1", -1_000_000),
        ("hi1", 1_000_000),
        ("lo2", -1_000_000),
        ("hi2", 1_000_000),
        ("mid", 0),
    ]:
        verbs(backend).submit(job(clock, data=label, priority=priority))
    order = []
    while (claim := verbs(backend).claim(spec("a"))) is not None:
        order.append(claim.job.data)
    assert order == ["hi1", "hi2", "mid", "lo1", "lo2"]


def test_corrupt_job_is_failed_and_the_queue_goes_on(
    backend: RedisBackend, fake: Any, clock: ManualClock
) -> None:
    bad = verbs(backend).submit(job(clock, priority=5))
    good = verbs(backend).submit(job(clock))
    fake.hset(f"jq:{{ns1}}:j:{bad.id}", "d", "{not json")
    with pytest.raises(CorruptJobError):
        backend.get(bad.id)
    claim = verbs(backend).claim(spec("a"))
    assert claim is not None and claim.job.id == good.id
    counts = verbs(backend).count_by_state()
    assert counts[JobState.FAILED] == 1 and counts[JobState.ACTIVE] == 1
    raw = fake.hget(f"jq:{{ns1}}:j:{bad.id}", "E").decode()
    assert "CorruptJobError" in raw


def test_corrupt_job_in_a_batch_claim_is_failed(
    backend: RedisBackend, fake: Any, clock: ManualClock
) -> None:
    first, bad, last = (verbs(backend).submit(job(clock, data=i)) for i in range(3))
    fake.hset(f"jq:{{ns1}}:j:{bad.id}", "o", "[1]")  # ours, but unreadable options
    claims = backend.claim_many(spec("a"), 3)
    assert [c.job.id for c in claims] == [first.id, last.id]
    assert verbs(backend).count_by_state()[JobState.FAILED] == 1
    [listed] = verbs(backend).list_jobs(JobState.FAILED)  # unreadable: shown marked, not a crash
    assert listed.id == bad.id and listed.unreadable and listed.name == "a"
    assert listed.error is not None and listed.error.type == "CorruptJobError"
    with pytest.raises(CorruptJobError):
        backend.get(bad.id)
    assert "CorruptJobError" in fake.hget(f"jq:{{ns1}}:j:{bad.id}", "E").decode()


def test_foreign_entries_are_skipped(backend: RedisBackend, fake: Any, clock: ManualClock) -> None:
    good = verbs(backend).submit(job(clock))
    fake.lpush("jq:{ns1}:r:a:0", "9002", "9001")  # ahead of the real job
    fake.zadd("jq:{ns1}:R:a", {"7": 7})  # a priority level with no list
    fake.set("jq:{ns1}:j:9002", "a string, not a hash")
    with pytest.raises(CorruptJobError):
        backend.get("9002")
    claim = verbs(backend).claim(spec("a"))
    assert claim is not None and claim.job.id == good.id
    assert verbs(backend).claim(spec("a")) is None


def test_non_utf8_record_is_corrupt(backend: RedisBackend, fake: Any, clock: ManualClock) -> None:
    stored = verbs(backend).submit(job(clock))
    fake.hset(f"jq:{{ns1}}:j:{stored.id}", "n", b"\xff\xfe")
    with pytest.raises(CorruptJobError):
        backend.get(stored.id)


def test_memory_stays_flat_under_retention(fake: Any, clock: ManualClock) -> None:
    options = BackendOptions(clock=clock, retention=Retention(completed_count=5, failed_count=5))
    backend = RedisBackend(fake, options, namespace="flat")
    verbs(backend).submit_many([job(clock, unique_key=f"k{i}") for i in range(60)])
    claim = verbs(backend).claim(spec("a"))
    while claim is not None:
        clock.advance(1)
        verbs(backend).add_log(claim.job.id, claim.token, "line")
        claim = verbs(backend).complete(claim.job.id, claim.token, "ok", spec("a"))
    verbs(backend).maintain()  # retention is housekeeping's (the store's housekeep)
    assert verbs(backend).count_by_state()[JobState.COMPLETED] == 5
    job_keys = fake.keys("jq:{flat}:j:*")
    assert len(job_keys) == 5
    assert len(fake.keys("jq:{flat}:l:*")) == 5
    assert fake.hlen("jq:{flat}:u") == 0


def test_from_url_options() -> None:
    options = BackendOptions()
    plain = RedisBackend.from_url("redis://:s3cret@db.example:6380/4?namespace=app1", options)
    kwargs = plain.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == (
        "db.example",
        6380,
        4,
        "s3cret",
    )
    assert plain.namespace == "app1"
    tls = RedisBackend.from_url("rediss://h:6390/0", BackendOptions(namespace="opt"))
    assert tls.client.connection_pool.connection_class is redis.SSLConnection
    assert tls.namespace == "opt"
    assert RedisBackend.from_url("redis://h", options).namespace == "jobqueue"


def test_unreachable_server_raises_backend_unavailable(clock: ManualClock) -> None:
    from tests.backends.redis_fixtures import free_port

    backend = RedisBackend.from_url(
        f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=0.5", BackendOptions(clock=clock)
    )
    with pytest.raises(BackendUnavailableError, match="Redis did not answer"):
        verbs(backend).submit(job(clock))
    with pytest.raises(BackendUnavailableError):
        backend.wait_for_work(["a"], 0.1)


# -- periodic schedules -------------------------------------------------------------------------


def test_a_tick_job_out_of_range_changes_nothing(backend: RedisBackend, clock: ManualClock) -> None:
    backend.claim_tick(TickClaim("s", "{}", 60, None))
    before = verbs(backend).schedule_record("s")
    with pytest.raises(InvalidOptionError):
        backend.claim_tick(TickClaim("s", "{}", 120, job(clock, priority=1_000_001)))
    assert verbs(backend).schedule_record("s") == before
    assert sum(verbs(backend).count_by_state().values()) == 0


def test_schedule_records_skip_foreign_data(backend: RedisBackend, fake: Any) -> None:
    backend.claim_tick(TickClaim("mine", "{}", 60, None))
    fake.set("jq:{ns1}:S:foreign", "not a hash")
    fake.sadd("jq:{ns1}:schedules", "foreign", "gone")
    assert [record.name for record in backend.schedule_records()] == ["mine"]
    assert verbs(backend).schedule_record("foreign") is None


def test_tick_times_on_the_server_clock(fake: Any) -> None:
    backend = RedisBackend(fake, BackendOptions(), namespace="ns1", server_clock=True)
    now = time.time()
    later = Job(id="", name="a", data=1, created_at=now, run_at=now + 30)
    result = backend.claim_tick(TickClaim("s", "{}", 60, later))
    assert result.job is not None and result.job.state is JobState.DELAYED
    record = verbs(backend).schedule_record("s")
    server = fake.time()
    assert record is not None and abs(record.updated_at - (server[0] + server[1] / 1e6)) < 5
    stored = backend.get(result.job.id)
    assert stored is not None and abs(stored.run_at - (record.updated_at + 30)) < 1


# -- Redis Functions ----------------------------------------------------------------------------


def library_flags(client: Any, library: str) -> dict[str, set[str]]:
    """FUNCTION LIST's flags of each function of ``library``."""
    listed = client.execute_command("FUNCTION", "LIST", "LIBRARYNAME", library)
    flags: dict[str, set[str]] = {}
    for entry in listed:  # redis-py reads each library and function as a dict
        if entry[b"library_name"].decode() == library:
            for function in entry[b"functions"]:
                flags[function[b"name"].decode()] = {f.decode() for f in function[b"flags"]}
    return flags


def test_a_redis_7_server_gets_the_function_library(fake: Any, clock: ManualClock) -> None:
    backend = RedisBackend(fake, BackendOptions(clock=clock), namespace="fn")
    verbs(backend).submit(job(clock))
    assert backend.calls.functions
    library = load_library()
    flags = library_flags(fake, library.name)
    assert set(flags) == set(library.functions.values())
    assert flags[library.functions["submit"]] == set()  # refused whole at maxmemory
    assert flags[library.functions["apply"]] == {"allow-oom"}
    assert flags[library.functions["count_by_name"]] == {"allow-oom", "no-writes"}
    assert not fake.script_exists(*(s.sha for s in load_scripts().values()))[0]  # no EVALSHA


def test_a_server_that_lost_the_library_gets_it_again(fake: Any, clock: ManualClock) -> None:
    backend = RedisBackend(fake, BackendOptions(clock=clock), namespace="fn")
    first = verbs(backend).submit(job(clock))
    fake.execute_command("FUNCTION", "FLUSH")  # as after a restart or failover
    claim = verbs(backend).claim(spec("a"))
    assert claim is not None and claim.job.id == first.id
    assert backend.calls.functions and library_flags(fake, load_library().name)


def test_a_library_already_loaded_by_another_client_is_used(fake: Any, clock: ManualClock) -> None:
    fake.execute_command("FUNCTION", "LOAD", load_library().source)
    backend = RedisBackend(fake, BackendOptions(clock=clock), namespace="fn")
    verbs(backend).submit(job(clock))
    assert backend.calls.functions


def test_without_functions_the_backend_turns_to_scripts(clock: ManualClock) -> None:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(version=(6, 2)))
    backend = RedisBackend(client, BackendOptions(clock=clock), namespace="fn")
    stored = verbs(backend).submit(job(clock))
    assert not backend.calls.functions
    assert backend.get(stored.id) == stored


@pytest.mark.redis
def test_real_redis_reloads_a_lost_library(redis_url: str) -> None:
    """Under a name of this test's own, so that deleting it (the lost library) touches
    nothing another test or process uses."""
    library = load_library()
    digest = library.name.removeprefix("jobqueue_")  # in the library's and functions' names
    renamed = digest + secrets.token_hex(4)
    mine = Library(
        library.name.replace(digest, renamed),
        library.source.replace(digest, renamed),
        {script: name.replace(digest, renamed) for script, name in library.functions.items()},
    )
    backend = RedisBackend.from_url(redis_url, BackendOptions(namespace=new_namespace()))
    backend.calls.library = mine
    try:
        stored = verbs(backend).submit(Job(id="", name="a", data=1, created_at=0.0, run_at=0.0))
        assert set(library_flags(backend.client, mine.name)) == set(mine.functions.values())
        backend.client.execute_command("FUNCTION", "DELETE", mine.name)
        assert backend.get(stored.id) == stored
        assert backend.calls.functions and library_flags(backend.client, mine.name)
    finally:
        with contextlib.suppress(redis.exceptions.ResponseError):
            backend.client.execute_command("FUNCTION", "DELETE", mine.name)
        delete_namespace(backend.client, backend.namespace)
        backend.close()


def test_an_acl_that_denies_fcall_turns_the_backend_to_scripts(fake: Any) -> None:
    backend = RedisBackend(fake, BackendOptions(), namespace="fn")
    denied = redis.exceptions.NoPermissionError(
        "this user has no permissions to run the 'fcall' command"
    )
    assert backend.calls.library_missing(denied) and not backend.calls.functions
    assert not backend.calls.library_missing(redis.exceptions.ResponseError("ERR something else"))
