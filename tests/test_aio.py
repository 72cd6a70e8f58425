"""The asyncio facade on every backend: same results, errors and hooks as the sync facade, and
an event loop that keeps running while a ``wait_for`` waits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fakeredis
import fakeredis.aioredis
import psycopg
import pytest

from jobqueue import (
    AsyncJobQueue,
    BackendUnavailableError,
    ConfigurationError,
    InvalidArgumentError,
    InvalidOptionError,
    JobQueue,
    JobState,
    NotSerializableError,
    PayloadTooLargeError,
    UnknownWorkerError,
    hookimpl,
)
from jobqueue.aio import ThreadedAsyncBackend
from jobqueue.backend import BackendOptions
from jobqueue.backends.postgres.aio import AsyncPostgresBackend
from jobqueue.backends.postgres.submit import COPY_ROWS
from jobqueue.backends.redis import RedisBackend
from jobqueue.backends.redis.aio import AsyncRedisBackend
from jobqueue.errors import JobNotFoundError
from jobqueue.job import Job
from tests.backends.postgres_fixtures import drop_schema, new_schema
from tests.backends.redis_fixtures import delete_namespace, new_namespace, redis_url

__all__ = ["redis_url"]  # the fixture, re-exported for pytest

KINDS = [
    "memory",
    "sqlite",
    "fakeredis",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


class Recorder:
    """A plugin that keeps the ids of submitted jobs."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    @hookimpl
    def jobqueue_job_submitted(self, job: Job) -> None:
        self.submitted.append(job.id)


@dataclass
class Gate:
    """A handler that tells when it runs and finishes only when released."""

    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, job: Job) -> dict[str, Any]:
        self.started.set()
        assert self.release.wait(30), "the test never released the job"
        return {"doubled": job.data["n"] * 2}


@dataclass
class Setup:
    kind: str
    queue: JobQueue
    aq: AsyncJobQueue
    hooks: Recorder
    gate: Gate

    def run(self, main: Callable[[], Awaitable[None]]) -> None:
        """Run ``main`` in a fresh event loop, closing the async side at the end."""

        async def scoped() -> None:
            try:
                await main()
            finally:
                await self.aq.close()

        asyncio.run(scoped())


@pytest.fixture(params=KINDS)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    kind: str = request.param
    hooks = Recorder()
    common: dict[str, Any] = {"plugins": [hooks], "load_entrypoints": False}
    namespace: str | None = None  # a real-Redis namespace to delete afterwards
    schema: str | None = None  # a PostgreSQL schema to drop afterwards
    if kind == "memory":
        queue = JobQueue("memory://", **common)
        aq = queue.aio
    elif kind == "sqlite":
        queue = JobQueue(f"sqlite:///{tmp_path}/jobs.db", **common)
        aq = queue.aio
    elif kind == "fakeredis":
        # One fake server for the sync client (dispatchers) and the asyncio one (the facade).
        server = fakeredis.FakeServer()
        sync = RedisBackend(
            fakeredis.FakeRedis(server=server), BackendOptions(), namespace=new_namespace()
        )
        queue = JobQueue(backend=sync, **common)
        native = AsyncRedisBackend(sync, lambda: fakeredis.aioredis.FakeRedis(server=server))
        aq = AsyncJobQueue(queue=queue, backend=native)
    elif kind == "postgres":
        schema = new_schema()
        queue = JobQueue(f"{request.getfixturevalue('postgres_url')}?schema={schema}", **common)
        aq = queue.aio
    else:
        namespace = new_namespace()
        queue = JobQueue(request.getfixturevalue("redis_url"), namespace=namespace, **common)
        aq = queue.aio
    gate = Gate()
    queue.add_worker("double", lambda job: {"doubled": job.data["n"] * 2})
    queue.add_worker("gate", gate)
    try:
        yield Setup(kind, queue, aq, hooks, gate)
    finally:
        gate.release.set()
        if namespace is not None:
            store = getattr(queue.backend, "store", queue.backend)  # under the core's Engine
            assert isinstance(store, RedisBackend)
            delete_namespace(store.client, namespace)
        queue.close()
        if schema is not None:
            drop_schema(request.getfixturevalue("postgres_url"), schema)


def test_redis_and_postgres_speak_asyncio_and_the_others_run_in_threads(setup: Setup) -> None:
    expected: type[object] = ThreadedAsyncBackend
    if "redis" in setup.kind:
        expected = AsyncRedisBackend
    elif setup.kind == "postgres":
        expected = AsyncPostgresBackend
    assert isinstance(setup.aq.backend, expected)


@pytest.mark.postgres
def test_postgres_facade_starts_no_thread_and_hands_nothing_to_one(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submits (a transactional one too), reads, counts, removal and a wait run on psycopg's
    async connections: no thread is started and nothing is handed to one
    (``asyncio.to_thread``, an executor)."""
    schema = new_schema()
    queue = JobQueue(f"{postgres_url}?schema={schema}", load_entrypoints=False)
    queue.add_worker("double", lambda job: None)
    aq = queue.aio
    handed: list[object] = []

    def refused(*args: object, **kwargs: object) -> None:
        handed.append(args)
        raise AssertionError("handed to a thread")

    async def main() -> None:
        await aq.submit_job("double", {"n": 0})  # the loop's pool is open now
        with monkeypatch.context() as patched:
            patched.setattr(asyncio, "to_thread", refused)
            patched.setattr(asyncio.get_running_loop(), "run_in_executor", refused)
            threads = threading.active_count()
            job = await aq.submit_job("double", {"n": 1})
            (other,) = await aq.submit_jobs("double", [{"n": 2}])
            assert (await aq.get_job_by_id(job.id)) is not None
            assert len(await aq.list_jobs(JobState.WAITING)) == 3
            assert (await aq.count_by_state())[JobState.WAITING] == 3
            assert await aq.wait_for(job.id, timeout=0.05) is None
            assert await aq.remove_job(other.id)
            conn = await psycopg.AsyncConnection.connect(postgres_url)
            async with conn, conn.transaction():  # a transactional submit, on the caller's
                mine = await aq.submit_job("double", {"n": 3}, connection=conn)
            assert (await aq.get_job_by_id(mine.id)) is not None
            many = await aq.submit_jobs("double", [{"n": n} for n in range(COPY_ROWS)])  # COPY
            keys = [int(each.id) for each in many]
            assert keys == list(range(keys[0], keys[0] + COPY_ROWS))
            last = await aq.get_job_by_id(many[-1].id)
            assert last is not None and last.data == {"n": COPY_ROWS - 1}
            assert (await aq.count_by_state())[JobState.WAITING] == 3 + COPY_ROWS
            assert threading.active_count() == threads
        await aq.backend.close()

    try:
        asyncio.run(main())
    finally:
        queue.close()
        drop_schema(postgres_url, schema)
    assert handed == []


def test_submit_read_list_count_remove(setup: Setup) -> None:
    aq = setup.aq

    async def main() -> None:
        job = await aq.submit_job("double", {"n": 1}, priority=5)
        assert (job.name, job.data, job.state, job.priority) == (
            "double",
            {"n": 1},
            JobState.WAITING,
            5,
        )
        later = await aq.submit_job("double", {"n": 2}, delay=3600)
        assert later.state is JobState.DELAYED
        many = await aq.submit_jobs("double", [{"n": 3}, {"n": 4}])
        assert [j.data for j in many] == [{"n": 3}, {"n": 4}]
        assert len({job.id, later.id, *(j.id for j in many)}) == 4

        found = await aq.get_job_by_id(job.id)
        assert found is not None and (found.id, found.data) == (job.id, {"n": 1})
        assert found == setup.queue.get_job_by_id(job.id)  # the sync side sees the same
        assert await aq.get_job_by_id("no-such-job") is None

        counts = await aq.count_by_state()
        assert counts == {
            JobState.WAITING: 3,
            JobState.DELAYED: 1,
            JobState.ACTIVE: 0,
            JobState.COMPLETED: 0,
            JobState.FAILED: 0,
            JobState.CANCELLED: 0,
            JobState.BLOCKED: 0,
        }
        waiting = await aq.list_jobs("waiting")
        assert [j.id for j in waiting] == [job.id, many[0].id, many[1].id]  # priority first
        assert [j.id for j in await aq.list_jobs(JobState.WAITING, offset=1, limit=1)] == [
            many[0].id
        ]
        assert [j.id for j in await aq.list_jobs("delayed")] == [later.id]

        assert await aq.remove_job(many[0].id) is True
        assert await aq.remove_job(many[0].id) is False
        assert await aq.get_job_by_id(many[0].id) is None
        assert (await aq.count_by_state())[JobState.WAITING] == 2
        assert setup.hooks.submitted == [job.id, later.id, many[0].id, many[1].id]

    setup.run(main)


def test_unique_key_returns_the_live_job(setup: Setup) -> None:
    async def main() -> None:
        first = await setup.aq.submit_job("double", {"n": 1}, unique_key="k")
        again = await setup.aq.submit_job("double", {"n": 2}, unique_key="k")
        assert again.id == first.id and again.data == {"n": 1}

    setup.run(main)


def test_bad_input_raises_the_sync_errors_and_stores_nothing(setup: Setup) -> None:
    aq, queue = setup.aq, setup.queue
    setup.queue.max_data_bytes = 100
    cases: list[tuple[type[Exception], str, Any, dict[str, Any]]] = [
        (UnknownWorkerError, "nobody", {"n": 1}, {}),
        (NotSerializableError, "double", {"n": object()}, {}),
        (PayloadTooLargeError, "double", {"n": "x" * 200}, {}),
        (InvalidOptionError, "double", {"n": 1}, {"delay": -1}),
        (InvalidOptionError, "double", {"n": 1}, {"priority": "high"}),
        (InvalidOptionError, "double", {"n": 1}, {"delay": 1, "run_at": 2.0}),
    ]

    async def main() -> None:
        for error, name, data, options in cases:
            with pytest.raises(error) as sync_error:
                queue.submit_job(name, data, **options)
            with pytest.raises(error) as async_error:
                await aq.submit_job(name, data, **options)
            assert str(async_error.value) == str(sync_error.value)
        # One bad item refuses the whole batch.
        with pytest.raises(NotSerializableError):
            await aq.submit_jobs("double", [{"n": 1}, {"n": {1, 2}}])
        with pytest.raises(InvalidOptionError):
            await aq.submit_jobs("double", [{"n": 1}], attempts=0)
        with pytest.raises(UnknownWorkerError):
            await aq.submit_jobs("nobody", [{"n": 1}])
        for bad_id in ("", None, 7):
            with pytest.raises(InvalidArgumentError):
                await aq.get_job_by_id(bad_id)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError):
                await aq.wait_for(bad_id, timeout=0.01)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError):
                await aq.remove_job(bad_id)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="unknown job state"):
            await aq.list_jobs("finished")
        assert sum((await aq.count_by_state()).values()) == 0
        assert setup.hooks.submitted == []

    setup.run(main)


def test_empty_batch_stores_nothing(setup: Setup) -> None:
    async def main() -> None:
        assert await setup.aq.submit_jobs("double", []) == []

    setup.run(main)


class Ticker:
    """Measures the longest stretch the loop went without waking a 1 ms sleeper."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.ticks = 0
        self._stop = asyncio.Event()
        self._counted: dict[int, asyncio.Event] = {}

    def after(self, ticks: int) -> asyncio.Event:
        """An event set once ``ticks`` more wake-ups have been counted."""
        return self._counted.setdefault(self.ticks + ticks, asyncio.Event())

    async def run(self) -> float:
        last = time.perf_counter()
        while not self._stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last)
            last = now
            self.ticks += 1
            if self.ticks in self._counted:
                self._counted.pop(self.ticks).set()
        return self.worst

    def stop(self) -> None:
        self._stop.set()


def test_wait_for_returns_the_completed_job_without_blocking_the_loop(setup: Setup) -> None:
    aq, gate = setup.aq, setup.gate
    dispatcher = setup.queue.dispatcher(idle_timeout=0.05)
    worker = threading.Thread(target=dispatcher.run, kwargs={"max_jobs": 1}, daemon=True)

    async def main() -> None:
        job = await aq.submit_job("gate", {"n": 21})
        ticker = Ticker()
        ticking = asyncio.create_task(ticker.run())
        waiting = asyncio.create_task(aq.wait_for(job.id, timeout=10))
        worker.start()
        assert await asyncio.to_thread(gate.started.wait, 30)
        # The wait has been pending while the ticker ran for 100 more wake-ups (well past its
        # first round trips, into the blocking part); only then may the job finish.
        await ticker.after(100).wait()
        assert not waiting.done()
        gate.release.set()
        done = await waiting
        ticker.stop()
        worst = await ticking
        print(f"worst loop gap, {setup.kind}: {worst * 1000:.2f} ms")  # shown by pytest -s
        assert done is not None
        assert (done.id, done.state, done.result) == (job.id, JobState.COMPLETED, {"doubled": 42})

    setup.run(main)
    worker.join(30)
    assert not worker.is_alive()


def test_wait_for_returns_none_on_timeout_without_blocking_the_loop(setup: Setup) -> None:
    aq = setup.aq

    async def main() -> None:
        job = await aq.submit_job("double", {"n": 1})
        ticker = Ticker()
        ticking = asyncio.create_task(ticker.run())
        await ticker.after(5).wait()  # ticking before the wait starts
        waiting = asyncio.create_task(aq.wait_for(job.id, timeout=2))
        # The loop goes on running other tasks while the wait is pending (a wait that blocked
        # the loop would let the ticker count nothing until it had timed out).
        await ticker.after(20).wait()
        assert not waiting.done()
        assert await waiting is None
        ticker.stop()
        worst = await ticking
        print(f"worst loop gap, {setup.kind}: {worst * 1000:.2f} ms")  # shown by pytest -s
        still = await aq.get_job_by_id(job.id)
        assert still is not None and still.state is JobState.WAITING

    setup.run(main)


def test_wait_for_a_finished_or_unknown_job_answers_at_once(setup: Setup) -> None:
    # Same answers as JobQueue.wait_for (see the note in AsyncJobQueue.wait_for about
    # unknown ids: whatever the sync facade does, this must do too).
    queue, aq = setup.queue, setup.aq
    job = queue.submit_job("double", {"n": 4})
    assert queue.work(burst=True) == 1

    async def main() -> None:
        done = await aq.wait_for(job.id, timeout=30)
        assert done is not None and done.result == {"doubled": 8}
        assert done == queue.wait_for(job.id, timeout=30)

        ticker = Ticker()
        ticking = asyncio.create_task(ticker.run())
        try:
            sync_answer: Any = queue.wait_for("424242", timeout=0.01)
        except Exception as exc:  # the sync facade may raise for unknown ids
            with pytest.raises(type(exc)):
                await aq.wait_for("424242", timeout=30)
        else:
            assert await aq.wait_for("424242", timeout=30) == sync_answer
        ticker.stop()
        await ticking
        # Answered at once: far fewer wake-ups than 30 s of waiting would have seen.
        assert ticker.ticks < 5000

    setup.run(main)


def test_a_job_removed_during_the_wait_ends_it(setup: Setup) -> None:
    aq = setup.aq

    async def main() -> None:
        job = await aq.submit_job("double", {"n": 1})
        ticker = Ticker()
        ticking = asyncio.create_task(ticker.run())
        waiting = asyncio.create_task(aq.wait_for(job.id, timeout=30))
        await ticker.after(50).wait()
        assert await aq.remove_job(job.id)
        with pytest.raises(JobNotFoundError):  # as JobQueue.wait_for: gone, not a timeout
            await waiting
        ticker.stop()
        await ticking

    setup.run(main)


def test_cancelling_a_wait_unregisters_it(setup: Setup) -> None:
    aq = setup.aq

    async def main() -> None:
        job = await aq.submit_job("double", {"n": 1})
        ticker = Ticker()
        ticking = asyncio.create_task(ticker.run())
        waiting = asyncio.create_task(aq.wait_for(job.id, timeout=30))
        await ticker.after(50).wait()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        ticker.stop()
        await ticking
        backend = getattr(setup.queue.backend, "store", setup.queue.backend)  # under Engine
        if isinstance(backend, RedisBackend):
            # The waiter count on the job hash went back down (watch.lua's 'w' field), so
            # finishing the job pushes no wake-up nobody will pop.
            key = f"jq:{{{backend.namespace}}}:j:{job.id}"
            assert backend.client.hget(key, "w") is None
        # The job itself is untouched and still runs.
        assert setup.queue.work(burst=True) == 1
        done = await aq.get_job_by_id(job.id)
        assert done is not None and done.state is JobState.COMPLETED

    setup.run(main)


def test_aio_is_cached_and_works_in_successive_loops(setup: Setup) -> None:
    if setup.kind != "fakeredis":  # that one wraps the queue explicitly
        assert setup.queue.aio is setup.aq
    ids: list[str] = []

    async def submit() -> None:
        ids.append((await setup.aq.submit_job("double", {"n": len(ids)})).id)

    # Two asyncio.run calls: a client opened in the first loop must not be reused in the next.
    setup.run(submit)
    setup.run(submit)
    assert [j.id for j in setup.queue.list_jobs("waiting")] == ids
    assert setup.hooks.submitted == ids


def test_standalone_queue_opens_and_closes_its_own(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/own.db"

    async def main() -> None:
        async with AsyncJobQueue(url, load_entrypoints=False) as aq:
            aq.queue.add_worker("double", lambda job: job.data)
            job = await aq.submit_job("double", {"n": 1})
            assert await aq.get_job_by_id(job.id) == job
        with JobQueue(url, load_entrypoints=False) as queue:  # stored for good
            assert queue.get_job_by_id(job.id) == job

    asyncio.run(main())
    with pytest.raises(ConfigurationError, match="not both"):
        AsyncJobQueue(url, queue=JobQueue("memory://", load_entrypoints=False))


def test_unreachable_redis_raises_backend_unavailable() -> None:
    async def main() -> None:
        async with AsyncJobQueue("redis://127.0.0.1:1/0", load_entrypoints=False) as aq:
            assert isinstance(aq.backend, AsyncRedisBackend)
            aq.queue.add_worker("double", lambda job: job.data)
            with pytest.raises(BackendUnavailableError):
                await aq.submit_job("double", {"n": 1})
            with pytest.raises(BackendUnavailableError):
                await aq.wait_for("1", timeout=1)

    asyncio.run(main())


@pytest.mark.parametrize("version", [(7, 0), (6, 2)], ids=["functions", "scripts"])
def test_the_library_or_scripts_are_loaded_when_missing(version: tuple[int, int]) -> None:
    # A fresh (fake) server has no function library (Redis 7), no scripts (Redis 6): the
    # first call loads it; so does the first after it was lost (a restart, a failover).
    server = fakeredis.FakeServer(version=version)
    sync = RedisBackend(fakeredis.FakeRedis(server=server), namespace="ns")
    queue = JobQueue(backend=sync, load_entrypoints=False)
    queue.add_worker("double", lambda job: job.data)
    native = AsyncRedisBackend(sync, lambda: fakeredis.aioredis.FakeRedis(server=server))

    async def main() -> None:
        async with AsyncJobQueue(queue=queue, backend=native) as aq:
            job = await aq.submit_job("double", {"n": 1})
            assert queue.get_job_by_id(job.id) == job
            await native._client().execute_command(
                "FUNCTION" if version >= (7, 0) else "SCRIPT", "FLUSH"
            )
            assert await aq.get_job_by_id(job.id) == job

    asyncio.run(main())
    assert sync.calls.functions == (version >= (7, 0))
