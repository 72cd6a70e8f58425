"""The Redis submit path. Idempotency lanes: one key per lane in use, not per call, and a
resend (marked or not) never stores twice -- even while other threads or asyncio tasks submit
in between. The queue's job carries its checked JSON text to the backend, which fills that
job in place; a job the caller built is never changed.

On real Redis and on fakeredis.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from typing import Any

import fakeredis
import fakeredis.aioredis
import pytest
import redis
import redis.asyncio

from jobqueue import JobQueue
from jobqueue.backend import BackendOptions
from jobqueue.backends.redis import RedisBackend
from jobqueue.backends.redis.aio import AsyncRedisBackend
from jobqueue.backends.redis.connection import Lane, Lanes
from jobqueue.engine import Engine
from jobqueue.errors import BackendError
from jobqueue.job import Job, JobState
from jobqueue.testing import ManualClock
from tests.backends.redis_fixtures import delete_namespace, new_namespace, redis_url

__all__ = ["redis_url"]


class Pair:
    """A sync backend and a way to open asyncio clients to the same server."""

    def __init__(self, kind: str, url: str | None) -> None:
        self.server = fakeredis.FakeServer()
        self.url = url
        client: Any = (
            fakeredis.FakeRedis(server=self.server) if url is None else redis.Redis.from_url(url)
        )
        self.backend = RedisBackend(
            client, BackendOptions(clock=ManualClock()), namespace=new_namespace()
        )

    def open_async(self) -> Any:
        if self.url is None:
            return fakeredis.aioredis.FakeRedis(server=self.server)
        return redis.asyncio.Redis.from_url(self.url)

    def lane_keys(self) -> list[Any]:
        pattern = f"jq:{{{self.backend.namespace}}}:i:*"
        return list(self.backend.client.scan_iter(match=pattern, count=1000))


@pytest.fixture(params=["redis", "fakeredis"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    made = Pair(request.param, url)
    yield made
    delete_namespace(made.backend.client, made.backend.namespace)
    made.backend.close()


def new_job(data: Any = 1) -> Job:
    return Job(id="", name="a", data=data, created_at=0.0, run_at=0.0)


def test_one_by_one_submits_keep_one_key_per_lane(pair: Pair) -> None:
    for n in range(200):
        Engine(pair.backend).submit(new_job(n))
    assert len(pair.lane_keys()) == 1  # one thread: one lane, reused by every call

    def submit_some() -> None:
        for n in range(50):
            Engine(pair.backend).submit(new_job(n))

    threads = [threading.Thread(target=submit_some) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # At most one lane per call in flight at once (4 threads ever submitted), not per call.
    assert 1 <= len(pair.lane_keys()) <= 4
    assert Engine(pair.backend).count_by_state()[JobState.WAITING] == 350


def test_a_copy_of_an_older_call_of_a_lane_stores_nothing(pair: Pair) -> None:
    backend = pair.backend
    lane = Lane()
    first = backend._run("submit", submit_args(backend, lane, "first"))
    backend._run("submit", submit_args(backend, lane, "second"))
    stale = submit_args(backend, lane, "stray")
    stale[1] = 1  # a stray copy of call 1 arriving after call 2
    with pytest.raises(BackendError, match="stray copy"):
        backend._run("submit", stale)
    # The same call again (a resend) answers what it stored: nothing new either.
    lane.calls = 1  # so that the next call is numbered 2 again
    again = backend._run("submit", submit_args(backend, lane, "second again"))
    assert len(again) == 1 and again[0][1] != first[0][1]
    assert Engine(backend).count_by_state()[JobState.WAITING] == 2


def submit_args(backend: RedisBackend, lane: Lane, data: Any) -> list[Any]:
    from jobqueue.backends.redis.wire import submit_batches

    ((_, args),) = list(submit_batches([new_job(data)], backend.calls.time_arg, lane))
    return args


class ResendingClient:
    """An asyncio client that, for every submit, lets the command be applied, loses the reply
    and sends it again unmarked, as redis.asyncio's own retry does -- waiting between the two
    until every task has had its first send applied, so that the calls interleave."""

    def __init__(self, client: Any, tasks: int) -> None:
        self.client = client
        self.applied = 0
        self.tasks = tasks
        self.all_applied = asyncio.Event()

    async def execute_command(self, *args: Any) -> Any:
        if not any(str(a).startswith(("jq_submit", "EVALSHA")) for a in args[:2]):
            return await self.client.execute_command(*args)
        await self.client.execute_command(*args)  # applied; the reply is lost
        self.applied += 1
        if self.applied >= self.tasks:
            self.all_applied.set()
        await asyncio.wait_for(self.all_applied.wait(), 10)
        return await self.client.execute_command(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_concurrent_asyncio_submits_with_resends_store_once(pair: Pair) -> None:
    backend = pair.backend
    Engine(backend).count_by_state()  # the library (or scripts) is loaded before resends start
    backend.client.script_load(backend.calls.scripts["submit"].source)

    async def main() -> list[list[Job]]:
        client = ResendingClient(pair.open_async(), tasks=2)
        native = AsyncRedisBackend(backend, lambda: client)
        try:
            return await asyncio.gather(
                native.submit_many([new_job("a1"), new_job("a2")]),
                native.submit_many([new_job("b1")]),
            )
        finally:
            await client.client.aclose()

    first, second = asyncio.run(main())
    assert [job.data for job in first] == ["a1", "a2"] and second[0].data == "b1"
    ids = {job.id for job in first + second}
    assert len(ids) == 3
    assert Engine(backend).count_by_state()[JobState.WAITING] == 3
    assert {j.data for j in Engine(backend).list_jobs(JobState.WAITING)} == {"a1", "a2", "b1"}


def test_a_forked_child_never_takes_its_parents_lanes() -> None:
    lanes = Lanes()
    lane = lanes.take()
    lanes.give(lane)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a lane of its own, and the parent's given back is not kept
        try:
            os.write(write, b"1" if lanes.take() is not lane else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert lanes.take() is lane


def test_a_callers_job_is_left_as_it_was(pair: Pair) -> None:
    job = new_job({"n": 1})
    stored = Engine(pair.backend).submit(job)
    assert stored is not job and job.id == "" and stored.id
    (again,) = Engine(pair.backend).submit_many([job])
    assert again is not job and job.id == "" and again.id != stored.id


def test_the_queues_job_is_stored_from_its_checked_text_and_returned(pair: Pair) -> None:
    queue = JobQueue(backend=pair.backend, load_entrypoints=False)
    queue.add_worker("a", lambda job: None)
    stored = queue.submit_job("a", {"n": [1, "two"]})
    assert not hasattr(stored, "_submit_json")  # nothing of the submit stays on the job
    assert pair.backend.get(stored.id) == stored
    # Data replaced after the job was built is what is stored: the text is for that data only.
    (job,) = queue.new_jobs("a", [{"n": 1}], {})
    job.data = {"n": 2}
    assert pair.backend.get(Engine(pair.backend).submit(job).id).data == {"n": 2}  # type: ignore[union-attr]
