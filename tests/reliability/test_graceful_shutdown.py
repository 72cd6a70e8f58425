"""Part 5 -- graceful shutdown of a real dispatcher process (the ``jobqueue worker`` CLI).

SIGTERM during a job: the dispatcher claims nothing more, lets the job finish within the grace
period, records it and exits 0. SIGTERM with a job that outlasts the grace period: the job is
interrupted and released back to WAITING -- its attempt not counted, not failed, not lost --
and another dispatcher runs it later. A job goes back only once its handler stopped (or as the
exiting process's last act), so even an exclusive job blocked in a long C call never runs in
two processes at once. A second SIGINT exits within 2 seconds, the job given back.
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
    redis_client,
    wait_until,
    worker_command,
)

INFO = ("--log-level", "INFO")  # the tests wait for the dispatcher's own log lines

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def start_and_wait_for(
    queue: JobQueue, processes: Processes, url: str, ns: str, seconds: float, grace: float
) -> tuple[subprocess.Popen[bytes], str, str]:
    dispatcher = processes.start(worker_command(), app_env(url, ns, grace=grace), "dispatcher")
    long_job = queue.submit_job("sleepy", {"seconds": seconds})
    next_job = queue.submit_job("effect", {"n": 2})
    client = redis_client(queue)
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
    assert f"job {long_id} did not finish in time: interrupting it" in processes.log_of(dispatcher)

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


@pytest.mark.parametrize("concurrency", [1, 2])
def test_second_sigint_exits_within_two_seconds_and_gives_the_job_back(
    redis_url: str, namespace: str, processes: Processes, concurrency: int
) -> None:
    """Ctrl-C twice used to hang (the interrupter's lock taken again by its SIGALRM handler;
    with ``--concurrency 2`` the wait for a slot thread blocked in ``time.sleep``). Now: exit
    130 within 2 s; the job back to waiting, not failed; then another dispatcher runs it."""
    queue = apps.build(redis_url, namespace)
    dispatcher = processes.start(
        worker_command("--concurrency", str(concurrency), *INFO),
        app_env(redis_url, namespace, grace=30),
        "dispatcher",
    )
    # One long job per slot, so that with two slots one runs outside the main thread.
    jobs = [queue.submit_job("sleepy", {"seconds": 60}) for _ in range(concurrency)]
    client = redis_client(queue)
    started = key(namespace, "test:started")
    wait_until(lambda: client.hlen(started) == concurrency, 30, "the jobs to start")
    dispatcher.send_signal(signal.SIGINT)
    wait_until(
        lambda: "stopping: no new claims" in processes.log_of(dispatcher), 10, "the first SIGINT"
    )
    signalled = time.monotonic()
    dispatcher.send_signal(signal.SIGINT)
    status = dispatcher.wait(timeout=30)
    took = time.monotonic() - signalled
    assert status == 130, processes.log_of(dispatcher)
    assert took <= 2.0, f"exited {took:.2f}s after the second SIGINT (bound: 2 s)"

    for job in jobs:
        back = queue.get_job_by_id(job.id)
        assert back is not None and back.state is JobState.WAITING, back
        assert back.attempts_made == 0 and back.stalls == 0 and back.error is None
    assert queue.count_by_state()[JobState.FAILED] == 0

    later = JobQueue(redis_url, namespace=namespace, load_entrypoints=False)
    later.add_worker("sleepy", lambda job: {"ran": "later"})
    assert later.work(burst=True) == concurrency
    for job in jobs:
        done = later.get_job_by_id(job.id)
        assert done is not None and done.state is JobState.COMPLETED and done.attempts_made == 1
    print(
        f"\n[graceful] second SIGINT (concurrency {concurrency}): exit 130 after {took:.2f}s, "
        "jobs back to waiting"
    )
    later.close()
    queue.close()


def test_exclusive_job_blocked_past_grace_never_runs_twice_at_once(
    redis_url: str, namespace: str, processes: Processes
) -> None:
    """An exclusive job blocked in one long C call past the grace period, in a slot thread of
    a ``--concurrency 2`` worker, SIGTERMed. It used to be released before its handler was
    interrupted, and the other worker started it while the first still ran it."""
    grace, seconds = 2.0, 3.0  # the call ends after the grace, before the exit deadline
    queue = apps.build(redis_url, namespace)
    env = app_env(redis_url, namespace, grace=grace)
    first = processes.start(worker_command("--concurrency", "2", *INFO), env, "first")
    second = processes.start(worker_command(*INFO), env, "second")
    for process in (first, second):
        wait_until(lambda p=process: "worker on" in processes.log_of(p), 30, "a worker to start")
    # Paused, so that the first worker is the one that claims; resumed before it gives up.
    second.send_signal(signal.SIGSTOP)
    try:
        job = queue.submit_job("blocked", {"seconds": seconds})
        client = redis_client(queue)
        runs_key = key(namespace, "test:runs")
        wait_until(lambda: client.llen(runs_key) >= 1, 30, "the job to start")
        first.send_signal(signal.SIGTERM)
    finally:
        second.send_signal(signal.SIGCONT)
    assert first.wait(timeout=grace + 15) == 0, processes.log_of(first)

    def completed() -> bool:
        stored = queue.get_job_by_id(job.id)
        return stored is not None and stored.state is JobState.COMPLETED

    wait_until(completed, 30, "the other worker to complete the job")
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=15) == 0, processes.log_of(second)

    runs: dict[int, dict[str, float]] = {}
    for line in client.lrange(runs_key, 0, -1):
        event, pid, job_id, at = line.decode().split()
        assert job_id == job.id
        runs.setdefault(int(pid), {})[event] = float(at)
    assert set(runs) == {first.pid, second.pid}, runs
    assert all(set(run) == {"start", "end"} for run in runs.values()), runs
    one, other = runs[first.pid], runs[second.pid]
    assert one["end"] <= other["start"], f"ran twice at once: {runs}"
    log = processes.log_of(first)
    assert f"job {job.id} did not finish in time: interrupting it" in log
    assert f"job {job.id}: handler stopped, releasing it" in log
    done = queue.get_job_by_id(job.id)
    assert done is not None and done.result == {"pid": second.pid} and done.attempts_made == 1
    print(
        f"\n[graceful] exclusive job blocked past grace: first run ended "
        f"{other['start'] - one['end']:.3f}s before the second began"
    )
    queue.close()
