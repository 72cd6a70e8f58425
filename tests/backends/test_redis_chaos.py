"""Crash safety on real Redis: two dispatcher processes, one SIGKILLed while it runs a job.

The job must be completed by the survivor once the dead one's lease expires, and the dead
one's token must no longer complete it (fencing).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue import JobQueue
from jobqueue.backend import BackendOptions
from jobqueue.backends.redis import RedisBackend
from jobqueue.engine import Engine
from jobqueue.errors import LeaseLostError
from jobqueue.job import JobState
from tests.backends.redis_fixtures import delete_namespace, new_namespace, redis_url

__all__ = ["redis_url"]

pytestmark = [pytest.mark.redis, pytest.mark.slow]
WORKER = Path(__file__).with_name("redis_chaos_worker.py")


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    ns = new_namespace()
    yield ns
    backend = RedisBackend.from_url(redis_url, BackendOptions(namespace=ns))
    delete_namespace(backend.client, ns)
    backend.close()


def test_sigkilled_dispatcher_job_is_finished_by_the_other(
    redis_url: str, namespace: str, tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), redis_url, namespace, str(tmp_path)], env=env
        )
        for _ in range(2)
    ]
    try:
        wait_until(lambda: len(list(tmp_path.glob("ready-*"))) == 2, 30, "both dispatchers")
        queue = JobQueue(redis_url, namespace=namespace, load_entrypoints=False)
        queue.add_worker("chaos", lambda job: None)
        job = queue.submit_job("chaos", {"n": 1})
        wait_until(lambda: list(tmp_path.glob("attempt-1-pid-*")), 30, "the first attempt")
        victim_pid = int(next(tmp_path.glob("attempt-1-pid-*")).name.rsplit("-", 1)[1])
        victim = next(w for w in workers if w.pid == victim_pid)
        survivor = next(w for w in workers if w.pid != victim_pid)
        backend = getattr(queue.backend, "store", queue.backend)  # under the core's Engine
        assert isinstance(backend, RedisBackend)
        dead_token = backend.client.hget(f"jq:{{{namespace}}}:j:{job.id}", "k").decode()

        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        done = queue.wait_for(job.id, timeout=30)

        assert done is not None and done.state is JobState.COMPLETED, done
        assert done.result == {"pid": survivor.pid, "attempt": 2}
        assert done.stalls == 1 and done.attempts_made == 2
        with pytest.raises(LeaseLostError):
            Engine(backend).complete(job.id, dead_token, {"pid": victim_pid}, None)
        assert Engine(backend).renew(job.id, dead_token, 30) is False
        stored = queue.get_job_by_id(job.id)
        assert stored is not None and stored.result == {"pid": survivor.pid, "attempt": 2}
        queue.close()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
