"""Part 2 -- Redis restart: a durable Redis of the test's own (``--appendonly yes
--appendfsync always``) is stopped and started again, twice, while a submitter process and two
dispatcher processes run. Nobody exits; every acknowledged submit (an id returned to the
caller) ends COMPLETED.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from jobqueue.job import JobState
from tests.reliability import apps
from tests.reliability.support import (
    ROOT,
    OwnRedis,
    Processes,
    app_env,
    wait_until,
    worker_command,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

JOBS = 900
NAMESPACE = "restart"


def test_redis_restarts_lose_no_acknowledged_submit(
    own_redis: OwnRedis, processes: Processes, tmp_path: Path
) -> None:
    began = time.monotonic()
    url = own_redis.url
    env = app_env(url, NAMESPACE, lease=2.0)
    dispatchers = [processes.start(worker_command(), env, "dispatcher") for _ in range(2)]
    ackfile = tmp_path / "acked.txt"
    ackfile.touch()
    script = str(ROOT / "tests" / "reliability" / "submitter.py")
    submitter = processes.start(
        [sys.executable, script, url, NAMESPACE, str(JOBS), str(ackfile)], env, "submitter"
    )

    def acked() -> list[str]:
        return ackfile.read_text().split()

    for fraction in (0.3, 0.6):
        wait_until(lambda f=fraction: len(acked()) >= JOBS * f, 60, f"{fraction:.0%} submitted")
        own_redis.restart()
        assert submitter.poll() is None, processes.log_of(submitter)
        assert all(d.poll() is None for d in dispatchers)

    assert submitter.wait(timeout=120) == 0, processes.log_of(submitter)
    errors = int(processes.log_of(submitter).rsplit("errors=", 1)[1].split()[0])
    ids = acked()
    assert len(ids) == JOBS and len(set(ids)) == JOBS

    queue = apps.build(url, NAMESPACE)

    def all_finished() -> bool:
        counts = queue.count_by_state()
        return counts[JobState.WAITING] + counts[JobState.ACTIVE] + counts[JobState.DELAYED] == 0

    wait_until(all_finished, 60, "the dispatchers to finish every job")
    states = {job_id: queue.get_job_by_id(job_id) for job_id in ids}
    lost = [job_id for job_id, job in states.items() if job is None]
    unfinished = [j.id for j in states.values() if j is not None and j.state != JobState.COMPLETED]
    assert not lost, f"acknowledged submits lost: {lost}"
    assert not unfinished, f"not completed: {unfinished}"
    counts = queue.count_by_state()
    assert counts[JobState.FAILED] == 0
    stored = counts[JobState.COMPLETED]
    assert stored >= JOBS  # more only if a submit was stored but its reply lost
    assert all(d.poll() is None for d in dispatchers), "a dispatcher exited"
    retried = sum(1 for job in states.values() if job is not None and job.attempts_made > 1)
    logs = "".join(processes.log_of(d) for d in dispatchers)
    print(
        f"\n[redis restart] jobs_acknowledged={JOBS} restarts={own_redis.restarts} lost=0 "
        f"stored={stored} submit_errors_ridden_out={errors} handler_retries={retried} "
        f"dispatcher_backend_retries={logs.count('backend error, retrying')} "
        f"duration={time.monotonic() - began:.1f}s"
    )
    queue.close()
