"""A lost reply to ``submit_job``, as docs/concepts.md (At-least-once) and docs/deploying.md
say it goes: what the caller sees, and how many jobs are stored.

Redis: the reply to the submit is read by the connection and then lost (as when the
connection drops between Redis's write and the client's read). The backend resends the call
once, and the lane's idempotency key answers with the job the first run stored: the caller
gets its job, one is stored. When the resend cannot be sent either, the caller gets
``BackendUnavailableError`` although the job was stored: a plain retry stores a second job,
a retry with the same ``unique_key`` returns the first.

SQLite (and memory, in-process) have no reply to lose: a submit returns its job or raises
having stored nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis

from jobqueue import JobQueue
from jobqueue.backend import BackendOptions
from jobqueue.backends.redis import RedisBackend
from jobqueue.errors import BackendUnavailableError
from jobqueue.job import JobState
from tests.backends.redis_fixtures import delete_namespace, new_namespace, redis_url
from tests.backends.test_redis_lost_reply import lose_next_reply

__all__ = ["redis_url"]


@pytest.fixture(params=["redis", "fakeredis"])
def queue(request: pytest.FixtureRequest) -> Iterator[JobQueue]:
    client: Any
    if request.param == "redis":
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    else:
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    backend = RedisBackend(client, BackendOptions(), namespace=new_namespace())
    with JobQueue(backend=backend, load_entrypoints=False) as queue:
        queue.add_worker("mail", lambda job: None)
        yield queue
        delete_namespace(client, backend.namespace)


def _backend(queue: JobQueue) -> RedisBackend:
    backend = getattr(queue.backend, "store", queue.backend)  # under the core's Engine
    assert isinstance(backend, RedisBackend)
    return backend


def _stored(queue: JobQueue) -> int:
    return queue.count_by_state()[JobState.WAITING]


def test_a_lost_submit_reply_returns_the_job_and_stores_it_once(queue: JobQueue) -> None:
    sent = lose_next_reply(_backend(queue))
    job = queue.submit_job("mail", {"to": "ada@example.com"})  # no error reaches the caller
    assert len(sent) == 2  # the backend sent it again
    assert _stored(queue) == 1
    found = queue.get_job_by_id(job.id)
    assert found is not None and found.data == {"to": "ada@example.com"}


def _and_the_resend_cannot_be_sent(queue: JobQueue) -> None:
    """After the reply is lost, the reconnection for the resend fails (Redis unreachable)."""
    connection = _backend(queue)._connections.held()  # type: ignore[union-attr]

    # redis-py 5.1+ reconnects through connect_check_health, older ones through connect.
    name = "connect_check_health" if hasattr(connection, "connect_check_health") else "connect"

    def refused(*args: Any, **kwargs: Any) -> None:
        delattr(connection, name)  # once only
        raise redis.exceptions.ConnectionError("Redis unreachable on purpose")

    setattr(connection, name, refused)


@pytest.mark.parametrize("unique_key", [None, "welcome-ada"])
def test_a_lost_reply_the_backend_cannot_resend_raises_though_stored(
    queue: JobQueue, unique_key: str | None
) -> None:
    lose_next_reply(_backend(queue))
    _and_the_resend_cannot_be_sent(queue)
    with pytest.raises(BackendUnavailableError):
        queue.submit_job("mail", {"to": "ada@example.com"}, unique_key=unique_key)
    assert _stored(queue) == 1  # stored all the same: the error does not say it was not
    retried = queue.submit_job("mail", {"to": "ada@example.com"}, unique_key=unique_key)
    if unique_key is None:
        assert _stored(queue) == 2  # a retry is a new submit: a second job
    else:
        assert retried.deduplicated and _stored(queue) == 1  # the first job, returned


def test_sqlite_submit_returns_the_job_or_raises_with_nothing_stored(tmp_path: Path) -> None:
    """SQLite stores a submit in one local transaction: no reply can be lost on the way. When
    it cannot commit (here another connection holds the write lock), it raises and stores
    nothing, so a retry stores the one job."""
    path = tmp_path / "jobs.db"
    with JobQueue(f"sqlite:///{path}?busy_timeout=0.1", load_entrypoints=False) as queue:
        queue.add_worker("mail", lambda job: None)
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(BackendUnavailableError, match="nothing was changed"):
                queue.submit_job("mail", {"to": "ada@example.com"})
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert _stored(queue) == 0
        job = queue.submit_job("mail", {"to": "ada@example.com"})
        assert _stored(queue) == 1 and queue.get_job_by_id(job.id) is not None
