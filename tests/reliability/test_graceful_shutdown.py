"""Part 5 -- graceful shutdown of a real dispatcher process (the ``jobqueue worker`` CLI).

SIGTERM during a job: the dispatcher claims nothing more, lets the job finish within the grace
period, records it and exits 0. SIGTERM with a job that outlasts the grace period: the job is
interrupted and released back to WAITING -- its attempt not counted, not failed, not lost --
and another dispatcher runs it later.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from jobqueue import JobQueue
from jobqueue.job import JobState
from tests.reliability import apps
from tests.reliability.support import (
    Processes,
    app_env,
    key,
    wait_until,
    worker_command,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def start_and_wait_for(
    queue: JobQueue, processes: Processes, url: str, ns: str, seconds: float, grace: float
) -> tuple[subprocess.Popen[bytes], str, str]:
    dispatcher = processes.start(worker_command(), app_env(url, ns, grace=grace), "dispatcher")
    long_job = queue.submit_job("sleepy", {"seconds": seconds})
    next_job = queue.submit_job("effect", {"n": 2})
    client = queue.backend.client  # type: ignore[attr-defined]
    wait_until(
        lambda: client.hexists(key(ns, "test:started"), long_job.id), 30, "the long job to start"
    )
    return dispatcher, long_job.id, next_job.id


def test_sigterm_lets_the_running_job_finish_and_claims_nothing_more(
    redis_url: str, namespace: str, processes: Processes
) -> None:
    grace = 5.0
    queue = apps.build(redis_url, namespace)
    dispatcher, long_id, next_id = start_and_wait_for(
        queue, processes, redis_url, namespace, seconds=1.5, grace=grace
    )
    signalled = time.monotonic()
    dispatcher.send_signal(signal.SIGTERM)
    assert dispatcher.wait(timeout=grace + 10) == 0, processes.log_of(dispatcher)
    took = time.monotonic() - signalled
    assert took < grace, f"exited {took:.1f}s after SIGTERM, grace is {grace}s"

    done = queue.get_job_by_id(long_id)
    assert done is not None and done.state is JobState.COMPLETED, done
    assert done.attempts_made == 1 and done.result is not None
    untouched = queue.get_job_by_id(next_id)
    assert untouched is not None and untouched.state is JobState.WAITING
    assert untouched.attempts_made == 0 and untouched.started_at is None, "claimed after SIGTERM"
    print(f"\n[graceful] job finished within grace: exit after {took:.2f}s (grace {grace}s)")
    queue.close()


def test_sigterm_past_the_grace_period_gives_the_job_back(
    redis_url: str, namespace: str, processes: Processes
) -> None:
    grace = 1.0
    queue = apps.build(redis_url, namespace)
    dispatcher, long_id, next_id = start_and_wait_for(
        queue, processes, redis_url, namespace, seconds=60, grace=grace
    )
    signalled = time.monotonic()
    dispatcher.send_signal(signal.SIGTERM)
    assert dispatcher.wait(timeout=grace + 10) == 0, processes.log_of(dispatcher)
    took = time.monotonic() - signalled
    assert grace * 0.9 <= took < grace + 3.0, took
    assert f"job {long_id} did not finish in time: releasing it" in processes.log_of(dispatcher)

    released = queue.get_job_by_id(long_id)
    assert released is not None and released.state is JobState.WAITING, released
    assert released.attempts_made == 0 and released.stalls == 0 and released.error is None
    untouched = queue.get_job_by_id(next_id)
    assert untouched is not None and untouched.state is JobState.WAITING
    assert queue.count_by_state()[JobState.FAILED] == 0
    assert queue.count_by_state()[JobState.ACTIVE] == 0

    # Not lost: another dispatcher (here in-process, with a quick handler) runs it.
    later = JobQueue(redis_url, namespace=namespace, load_entrypoints=False)
    later.add_worker("sleepy", lambda job: {"ran": "later"})
    later.add_worker("effect", lambda job: None)
    assert later.work(burst=True) == 2
    done = later.get_job_by_id(long_id)
    assert done is not None and done.state is JobState.COMPLETED
    assert done.result == {"ran": "later"} and done.attempts_made == 1
    print(f"\n[graceful] past grace: exit after {took:.2f}s (grace {grace}s), job back to waiting")
    later.close()
    queue.close()
