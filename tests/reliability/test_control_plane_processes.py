"""The control plane across real processes on real Redis: a cancel reaches the dispatcher
running the job, a pause holds every process, and a killed dispatcher leaves the list of live
ones within a lease. Figures (cancel → cancelled, resume → first start) are printed for the
notes; the assertions are the behaviour's bounds named in the issue."""

from __future__ import annotations

import time

import pytest

from jobqueue.job import AttemptOutcome, JobState
from tests.reliability.apps import build
from tests.reliability.support import (
    Processes,
    app_env,
    key,
    redis_client,
    wait_until,
    worker_command,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def _started(client: object, namespace: str, job_id: str) -> bool:
    return bool(client.hexists(key(namespace, "test:started"), job_id))  # type: ignore[attr-defined]


def test_cancel_reaches_the_process_running_the_job(
    redis_url: str, namespace: str, processes: Processes
) -> None:
    queue = build(redis_url, namespace, lease_seconds=30)
    client = redis_client(queue)
    worker = processes.start(worker_command(), app_env(redis_url, namespace, lease=30), "worker")
    job = queue.submit_job("steps", {"seconds": 60})
    wait_until(lambda: _started(client, namespace, job.id), 30, "the job to start")
    asked = time.monotonic()
    assert queue.cancel_job(job.id) is JobState.ACTIVE
    done = queue.wait_for(job.id, timeout=10)
    took = time.monotonic() - asked
    print(f"cancel -> cancelled: {took:.3f} s")
    assert done is not None and done.state is JobState.CANCELLED, processes.log_of(worker)
    assert took <= 2.0, f"the running job took {took:.2f} s to end cancelled"
    assert [a.outcome for a in done.history] == [AttemptOutcome.CANCELLED]
    assert not client.hexists(key(namespace, "test:finished"), job.id)  # interrupted
    # Not retried: it stays cancelled while the worker keeps going.
    other = queue.submit_job("sleepy", {"seconds": 0})
    assert queue.wait_for(other.id, timeout=30) is not None
    again = queue.get_job_by_id(job.id)
    assert again is not None and again.state is JobState.CANCELLED and again.attempts_made == 1
    assert worker.poll() is None


def test_pause_holds_every_process_and_resume_lets_them_go(
    redis_url: str, namespace: str, processes: Processes
) -> None:
    queue = build(redis_url, namespace, lease_seconds=10)
    client = redis_client(queue)
    env = app_env(redis_url, namespace, lease=10)
    workers = [processes.start(worker_command(), env, f"worker{n}") for n in range(2)]
    warmup = queue.submit_job("sleepy", {"seconds": 0})
    assert queue.wait_for(warmup.id, timeout=30) is not None  # the workers are up and idle
    queue.pause("sleepy")
    paused_at = time.time()
    jobs = [queue.submit_job("sleepy", {"seconds": 0}) for _ in range(6)]
    # Another name keeps flowing, through the same processes: they are alive, not stuck.
    flowing = queue.submit_job("effect", {})
    assert queue.wait_for(flowing.id, timeout=30) is not None
    hold_until = time.monotonic() + 1.5
    while time.monotonic() < hold_until:  # the paused name: no new start, for 1.5 s
        assert not any(_started(client, namespace, job.id) for job in jobs)
        time.sleep(0.05)
    assert queue.count_by_state()[JobState.WAITING] == 6
    resumed = time.monotonic()
    queue.resume("sleepy")
    wait_until(lambda: any(_started(client, namespace, j.id) for j in jobs), 10, "a start")
    first_start = time.monotonic() - resumed
    print(f"resume -> first start: {first_start:.3f} s")
    assert first_start <= 1.0, f"the first start came {first_start:.2f} s after the resume"
    for job in jobs:
        done = queue.wait_for(job.id, timeout=30)
        assert done is not None and done.state is JobState.COMPLETED
        assert (done.started_at or 0) > paused_at
    assert all(worker.poll() is None for worker in workers)


def test_a_killed_dispatcher_leaves_the_live_list_within_a_lease(
    redis_url: str, namespace: str, processes: Processes
) -> None:
    lease = 2.0
    queue = build(redis_url, namespace, lease_seconds=lease)
    env = app_env(redis_url, namespace, lease=lease)
    doomed = processes.start(worker_command(), env, "doomed")
    survivor = processes.start(worker_command(), env, "survivor")
    live = wait_until(lambda: len(queue.dispatchers()) == 2 and queue.dispatchers(), 30, "both")
    assert {d.pid for d in live} == {doomed.pid, survivor.pid}
    assert all(d.names and d.concurrency == 1 for d in live)
    doomed.kill()
    doomed.wait(10)
    killed = time.monotonic()
    wait_until(lambda: [d.pid for d in queue.dispatchers()] == [survivor.pid], 10, "it to go")
    gone_after = time.monotonic() - killed
    print(f"killed dispatcher gone from workers after {gone_after:.3f} s (lease {lease} s)")
    assert gone_after <= lease + 0.5
    survivor.terminate()
    assert survivor.wait(30) == 0
    wait_until(lambda: queue.dispatchers() == [], 5, "a clean exit to remove its record")
