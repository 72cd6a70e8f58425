"""``?check_eviction=false``: a Redis user whose ACL denies CONFIG leaves no ACL LOG entry.

At first use each backend reads ``CONFIG GET maxmemory-policy`` to warn about an evicting
policy. For a user without the right it is denied (and the denial swallowed), but Redis logs
it in ``ACL LOG``, where security teams alert. A real ACL user is created for each test (a
unique name, deleted afterwards) on the shared test Redis; only its own ACL LOG entries are
looked at.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest
import redis

from jobqueue import JobQueue
from jobqueue.aio import AsyncJobQueue
from jobqueue.backends.redis import RedisBackend
from jobqueue.backends.redis.eviction import pop_check_eviction
from jobqueue.errors import InvalidURLError
from jobqueue.job import JobState
from tests.backends.redis_fixtures import delete_namespace, new_namespace, redis_url

__all__ = ["redis_url"]


@dataclass
class AclUser:
    """A Redis user with every right but CONFIG, and the admin client that made it."""

    admin: Any
    name: str
    url: str
    namespace: str

    def queue_url(self, **query: str) -> str:
        return f"{self.url}?{urlencode({'namespace': self.namespace, **query})}"

    def denials(self) -> int:
        """How many commands of this user Redis's ACL LOG records (it folds repeats of one
        denial into one entry with a count)."""
        entries = self.admin.acl_log(count=1000)
        return sum(int(e["count"]) for e in entries if e["username"] == self.name)


@pytest.fixture
def acl_user(redis_url: str) -> Iterator[AclUser]:
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    name, password = f"jq_test_{secrets.token_hex(6)}", secrets.token_hex(16)
    admin.execute_command(
        "ACL", "SETUSER", name, "on", f">{password}", "~*", "&*", "+@all", "-config"
    )
    parts = urlsplit(redis_url)
    netloc = f"{name}:{password}@{parts.hostname}:{parts.port or 6379}"
    url = urlunsplit(parts._replace(netloc=netloc, query=""))
    user = AclUser(admin, name, url, new_namespace())
    try:
        yield user
    finally:
        admin.execute_command("ACL", "DELUSER", name)
        delete_namespace(admin, user.namespace)
        admin.close()


def _use_sync(url: str) -> None:
    """Submit, run and read a job through the sync facade (the check runs at first use)."""
    with JobQueue(url, load_entrypoints=False) as queue:
        queue.add_worker("mail", lambda job: {"sent": job.data})
        job = queue.submit_job("mail", {"to": "ada@example.com"})
        queue.work(burst=True)
        done = queue.get_job_by_id(job.id)
        assert done is not None and done.state is JobState.COMPLETED


def _use_async(url: str) -> None:
    """Submit, wait for and read a job through the asyncio facade's own Redis client."""

    async def main() -> None:
        with JobQueue(url, load_entrypoints=False) as queue:
            queue.add_worker("mail", lambda job: None)
            backend = getattr(queue.backend, "store", queue.backend)  # under the Engine
            assert isinstance(backend, RedisBackend) and not backend.policy_checked
            async with AsyncJobQueue(queue=queue) as aio:
                job = await aio.submit_job("mail", {"n": 1})
                # The asyncio backend made the first call: the check (or its skipping) was its.
                assert backend.policy_checked
                assert (await aio.get_job_by_id(job.id)) is not None
                queue.work(burst=True)
                finished = await aio.wait_for(job.id, timeout=10)
                assert finished is not None and finished.state is JobState.COMPLETED

    asyncio.run(main())


@pytest.mark.parametrize("use", [_use_sync, _use_async], ids=["sync", "asyncio"])
def test_check_eviction_false_leaves_no_acl_log_entry(acl_user: AclUser, use: Any) -> None:
    use(acl_user.queue_url(check_eviction="false"))
    assert acl_user.denials() == 0


@pytest.mark.parametrize("use", [_use_sync, _use_async], ids=["sync", "asyncio"])
def test_the_check_on_is_denied_and_nothing_raises(acl_user: AclUser, use: Any) -> None:
    """The default: the check runs, Redis denies it (logged: what the parameter avoids), and
    the queue works all the same."""
    use(acl_user.queue_url())
    assert acl_user.denials() == 1
    use(acl_user.queue_url(check_eviction="true"))
    assert acl_user.denials() == 2


@pytest.mark.parametrize(
    ("url", "rest", "enabled"),
    [
        ("redis://h:6379/0", "redis://h:6379/0", True),
        ("redis://h/0?check_eviction=false", "redis://h/0", False),
        ("redis://h/0?namespace=a&check_eviction=0&socket_timeout=2", None, False),
        ("redis://h/0?check_eviction=ON&namespace=a", "redis://h/0?namespace=a", True),
    ],
)
def test_the_url_parameter(url: str, rest: str | None, enabled: bool) -> None:
    stripped, on = pop_check_eviction(url)
    assert on is enabled and "check_eviction" not in stripped
    assert stripped == (rest or "redis://h/0?namespace=a&socket_timeout=2")


@pytest.mark.parametrize("query", ["check_eviction=maybe", "check_eviction=0&check_eviction=1"])
def test_a_bad_value_is_refused(query: str) -> None:
    with pytest.raises(InvalidURLError, match="check_eviction= takes true or false"):
        JobQueue(f"redis://127.0.0.1:6379/15?{query}", load_entrypoints=False)
