"""Connections of the Redis backend go back to the pool when the threads that held them end:
every dispatcher run starts threads, and a long-lived process runs many."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobqueue import JobQueue, JobState
from tests.backends.redis_fixtures import delete_namespace, new_namespace, redis_url

__all__ = ["redis_url"]


@pytest.fixture
def queue(redis_url: str) -> Iterator[JobQueue]:
    namespace = new_namespace()
    queue = JobQueue(redis_url, namespace=namespace, load_entrypoints=False)
    try:
        yield queue
    finally:
        delete_namespace(queue.backend.store.client, namespace)  # type: ignore[attr-defined]
        queue.close()


def test_many_dispatcher_runs_do_not_exhaust_the_pool(queue: JobQueue) -> None:
    queue.add_worker("echo", lambda job: job.data)
    pool = queue.backend.store.client.connection_pool  # type: ignore[attr-defined]
    runs = pool.max_connections + 20  # more runs than the pool has connections
    for n in range(runs):
        job = queue.submit_job("echo", n)
        assert queue.work(burst=True) == 1
        done = queue.get_job_by_id(job.id)
        assert done is not None and done.state is JobState.COMPLETED
    assert len(pool._in_use_connections) < 20, "connections of ended threads were kept"
