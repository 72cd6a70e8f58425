"""Part 3 -- Redis unreachable for several seconds.

The test's own durable Redis goes away for 4 s while a dispatcher process is running a job.
The dispatcher logs, backs off (capped exponential: a handful of retries, not a hot loop), does
not exit, and records the job's outcome once Redis is back. Every call made during the outage
raises :class:`BackendUnavailableError` (a :class:`JobQueueError`) and stores nothing.
"""

from __future__ import annotations

import time

import pytest

from jobqueue.errors import BackendUnavailableError, JobQueueError
from jobqueue.job import JobState
from tests.reliability import apps
from tests.reliability.support import (
    OwnRedis,
    Processes,
    app_env,
    key,
    wait_until,
    worker_command,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

NAMESPACE = "outage"
OUTAGE_SECONDS = 4.0


def test_dispatcher_rides_out_an_outage_and_submits_fail_loudly(
    own_redis: OwnRedis, processes: Processes
) -> None:
    url = own_redis.url
    queue = apps.build(url, NAMESPACE)
    dispatcher = processes.start(
        worker_command(), app_env(url, NAMESPACE, lease=10.0), "dispatcher"
    )
    running = queue.submit_job("effect", {"sleep": 1.0})
    client = own_redis.client()
    wait_until(
        lambda: client.hexists(key(NAMESPACE, "test:effects"), running.id), 30, "the job to start"
    )
    client.close()
    before = queue.count_by_state()

    own_redis.stop()
    outage_began = time.monotonic()
    refusals = 0
    for call in (
        lambda: queue.submit_job("effect", {"during": "outage"}),
        lambda: queue.submit_jobs("effect", [{"during": "outage"}] * 3),
        lambda: queue.get_job_by_id(running.id),
        lambda: queue.count_by_state(),
    ):
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="retry once it is reachable") as info:
            call()
        assert isinstance(info.value, JobQueueError)
        assert time.monotonic() - started < 2.0, "an unreachable Redis must fail fast"
        refusals += 1
    # The outage itself: the job finishes meanwhile and its dispatcher cannot record it.
    time.sleep(max(OUTAGE_SECONDS - (time.monotonic() - outage_began), 0.0))
    assert dispatcher.poll() is None, processes.log_of(dispatcher)
    own_redis.start()
    outage = time.monotonic() - outage_began

    done = queue.wait_for(running.id, timeout=30)
    assert done is not None and done.state is JobState.COMPLETED, done
    assert done.attempts_made == 1 and done.stalls == 0
    after_outage = queue.submit_job("effect", {"after": "outage"})
    finished = queue.wait_for(after_outage.id, timeout=30)
    assert finished is not None and finished.state is JobState.COMPLETED
    counts = queue.count_by_state()
    assert sum(counts.values()) == sum(before.values()) + 1, "a refused submit was stored"
    assert dispatcher.poll() is None

    log = processes.log_of(dispatcher)
    retries = log.count("backend error, retrying")
    assert "Connection refused" in log
    # Back-off doubles from 0.05 s to a 5 s cap: a few retries per call site over 4 s.
    assert 2 <= retries <= 30, log
    print(
        f"\n[redis unreachable] outage={outage:.1f}s refused_calls={refusals} stored_by_them=0 "
        f"dispatcher_retries_logged={retries} job_recorded_after_outage=yes lost=0"
    )
    queue.close()
