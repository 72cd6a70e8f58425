"""Part 1 -- worker crash: dispatcher processes SIGKILLed at random moments lose nothing.

Three real dispatcher processes (the ``jobqueue worker`` CLI) work through the jobs on real
Redis while the controller SIGKILLs a random one at random moments and starts a replacement.
Leases are short (1 s) so that the killed process's job is recovered quickly. At the end every
job is COMPLETED exactly once as the backend records it, its side effect ran at least once
(more than once only where a kill fell between the side effect and the completion), and
nothing is left waiting or active.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

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

pytestmark = [pytest.mark.redis, pytest.mark.slow]

JOBS = 3000
DISPATCHERS = 3
KILLS = 10


def test_random_sigkills_lose_no_job(
    redis_url: str, namespace: str, processes: Processes, tmp_path: Path
) -> None:
    seed = int(os.environ.get("JQ_REL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    began = time.monotonic()
    queue = apps.build(redis_url, namespace)
    client = redis_client(queue)
    # A few milliseconds per job keeps the run long enough for kills to land mid-job.
    datas = [{"n": n, "sleep": rng.uniform(0.0, 0.004)} for n in range(JOBS)]
    ids = [job.id for job in queue.submit_jobs("effect", datas)]
    assert len(set(ids)) == JOBS

    env = app_env(redis_url, namespace, lease=1.0, max_stalls=50)
    for _ in range(DISPATCHERS):
        processes.start(worker_command(), env, "dispatcher")

    def completed() -> int:
        return queue.count_by_state()[JobState.COMPLETED]

    kills = 0
    for threshold in sorted(rng.sample(range(JOBS // 10, JOBS * 8 // 10), KILLS)):
        wait_until(lambda t=threshold: completed() >= t, 60, f"{threshold} jobs completed")
        time.sleep(rng.uniform(0.0, 0.03))  # a random moment, not a wait for anything
        victim = rng.choice(processes.alive())
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=10) == -signal.SIGKILL
        kills += 1
        processes.start(worker_command(), env, "dispatcher")

    wait_until(lambda: completed() == JOBS, 120, f"all {JOBS} jobs completed")
    counts = queue.count_by_state()
    assert counts == {
        JobState.WAITING: 0,
        JobState.DELAYED: 0,
        JobState.ACTIVE: 0,
        JobState.COMPLETED: JOBS,
        JobState.FAILED: 0,
        JobState.CANCELLED: 0,
        JobState.BLOCKED: 0,
    }
    assert all(p.poll() is None for p in processes.alive())
    assert len(processes.alive()) == DISPATCHERS

    done = queue.list_jobs(JobState.COMPLETED, limit=JOBS + 10)
    assert sorted(job.id for job in done) == sorted(ids)  # each one, once
    assert all(job.result == {"done": job.id} and job.error is None for job in done)
    stalls = sum(job.stalls for job in done)

    raw_effects = client.hgetall(key(namespace, "test:effects"))
    effects = {k.decode(): int(v) for k, v in raw_effects.items()}
    assert set(effects) == set(ids), "a job completed without its side effect"
    duplicates = sum(n - 1 for n in effects.values())
    completions = client.hgetall(key(namespace, "test:completions"))
    twice = {k: v for k, v in completions.items() if int(v) > 1}
    assert not twice, f"completions accepted twice: {twice}"
    assert kills == KILLS
    print(
        f"\n[worker crash] seed={seed} jobs={JOBS} dispatchers={DISPATCHERS} kills={kills} "
        f"lost=0 stalls_recovered={stalls} duplicate_runs={duplicates} "
        f"completions_announced={len(completions)} duration={time.monotonic() - began:.1f}s"
    )
    queue.close()
