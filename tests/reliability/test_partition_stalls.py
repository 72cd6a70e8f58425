"""A network partition: both sides of a stall hear of it (issue 19, item 6).

Dispatcher A talks to Redis through a loopback proxy (``blackhole.Blackhole``) that the test
switches to a black hole while A runs a job: connections stay open, nothing flows. A's
handler runs past its 2 s lease; dispatcher B, connected directly, recovers the job and runs
it again. B's ``jobqueue_job_stalled`` fires exactly once. Once the link heals, A's late
outcome is refused (fenced) and A's ``jobqueue_lease_lost`` fires exactly once -- whichever
of its heartbeat and its refused outcome tells it first. Each process appends its hook calls
to its own file (``partition_app.HookLog``); the test waits on those lines with deadlines.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from jobqueue import JobQueue
from jobqueue.job import JobState
from tests.reliability.blackhole import Blackhole
from tests.reliability.support import Processes, app_env, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]

LEASE = 2.0
APP = "tests.reliability.partition_app:queue"


def hook_lines(path: Path, hook: str, job_id: str) -> list[list[str]]:
    """The ``hook`` lines of ``job_id`` in a process's hook file: [hook, id, stalls, state, pid]."""
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines()]
    return [fields for fields in lines if fields[:2] == [hook, job_id]]


def test_a_partitioned_dispatchers_stall_fires_both_hooks_once(
    redis_url: str, namespace: str, processes: Processes, tmp_path: Path
) -> None:
    upstream = urlsplit(redis_url)
    proxy = Blackhole(upstream.hostname or "127.0.0.1", upstream.port or 6379)
    proxied = urlunsplit(upstream._replace(netloc=f"127.0.0.1:{proxy.port}"))
    release = tmp_path / "release"
    hooks_a, hooks_b = tmp_path / "hooks-a.txt", tmp_path / "hooks-b.txt"
    command = [sys.executable, "-m", "jobqueue", "--app", APP, "worker", "--log-level", "INFO"]

    def env(url: str, hooks: Path) -> dict[str, str]:
        return {
            **app_env(url, namespace, lease=LEASE),
            "JQ_PART_HOOKS": str(hooks),
            "JQ_PART_RELEASE": str(release),
        }

    queue = JobQueue(redis_url, namespace=namespace, load_entrypoints=False)
    queue.add_worker("hold", lambda job: None)  # to submit; the processes run the real one
    try:
        a = processes.start(command, env(proxied, hooks_a), "a-behind-proxy")
        job = queue.submit_job("hold", None)
        wait_until(lambda: hook_lines(hooks_a, "started", job.id), 30, "A to start the job")

        proxy.cut()
        cut_at = time.monotonic()
        b = processes.start(command, env(redis_url, hooks_b), "b-direct")
        stalled = wait_until(
            lambda: hook_lines(hooks_b, "stalled", job.id), 30, "B to report the stall"
        )
        detected = time.monotonic() - cut_at
        wait_until(lambda: hook_lines(hooks_b, "completed", job.id), 30, "B to run the job")
        done = queue.get_job_by_id(job.id)
        assert done is not None and done.state is JobState.COMPLETED
        assert (done.attempts_made, done.stalls, done.result["pid"]) == (2, 1, b.pid)  # type: ignore[index]

        release.touch()  # A's handler returns: its outcome goes into the black hole
        wait_until(lambda: hook_lines(hooks_a, "returned", job.id), 30, "A's handler to return")
        proxy.heal()
        healed_at = time.monotonic()
        wait_until(lambda: hook_lines(hooks_a, "lease_lost", job.id), 30, "A's lease_lost")
        wait_until(
            lambda: "outcome discarded, its lease was lost" in processes.log_of(a),
            30,
            "A's late outcome to be refused",
        )
        noticed = time.monotonic() - healed_at
        for process in (a, b):  # a clean exit: every hook A and B will ever fire has fired
            process.send_signal(signal.SIGTERM)
        for process in (a, b):
            assert process.wait(timeout=30) == 0, processes.log_of(process)

        assert len(hook_lines(hooks_b, "stalled", job.id)) == 1
        assert stalled[0][2] == "1"  # the job as reported: this stall counted
        assert len(hook_lines(hooks_a, "lease_lost", job.id)) == 1
        assert hook_lines(hooks_a, "stalled", job.id) == []  # the loser does not report it
        assert hook_lines(hooks_a, "completed", job.id) == []  # its outcome was fenced
        assert hook_lines(hooks_b, "lease_lost", job.id) == []
        final = queue.get_job_by_id(job.id)
        assert final is not None and final.result == done.result  # A's result never landed
        print(
            f"\n[partition] lease={LEASE}s stall_reported_by_B_after={detected:.1f}s "
            f"lease_lost_in_A_after_heal={noticed:.1f}s stalled_hooks=1 lease_lost_hooks=1 "
            f"late_outcome=refused"
        )
    finally:
        proxy.close()
        queue.close()
