"""Redis goes away and comes back: the dispatcher rides it out and nothing is lost.

Runs against a redis-server of its own (with an append-only file, so a restart keeps the
data), never the shared one: stopping a server others use is not ours to do.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue import JobQueue
from jobqueue.job import Job, JobState
from tests.backends.redis_fixtures import free_port, start_redis_server, stop_process

pytestmark = [pytest.mark.redis, pytest.mark.slow]
DURABLE = ("--appendonly", "yes", "--appendfsync", "always")
Server = tuple[Path, int, list["subprocess.Popen[bytes]"]]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    processes = [start_redis_server(tmp_path, port, *DURABLE)]
    yield tmp_path, port, processes
    for process in processes:
        stop_process(process)


def test_dispatcher_survives_a_redis_restart(server: Server) -> None:
    workdir, port, processes = server
    queue = JobQueue(f"redis://127.0.0.1:{port}/0", lease_seconds=5, load_entrypoints=False)
    release = threading.Event()
    started = threading.Event()

    def handle(job: object) -> str:
        if job.data == "hold":  # type: ignore[attr-defined]
            started.set()
            release.wait(30)
        return "ok"

    queue.add_worker("w", handle)
    dispatcher = queue.dispatcher()
    thread = threading.Thread(target=dispatcher.run, daemon=True)
    thread.start()
    try:
        first = queue.submit_job("w", "first")
        assert _finished(queue, first.id).state is JobState.COMPLETED

        # Outage while idle: the dispatcher backs off, then serves new work.
        stop_process(processes[-1])
        threading.Event().wait(1.0)
        processes.append(start_redis_server(workdir, port, *DURABLE))
        second = queue.submit_job("w", "second")
        assert _finished(queue, second.id).state is JobState.COMPLETED

        # Outage while a job runs: its outcome is recorded once Redis is back (or, had the
        # lease run out, the job would be recovered and run again): never lost.
        held = queue.submit_job("w", "hold")
        assert started.wait(10)
        stop_process(processes[-1])
        release.set()
        threading.Event().wait(1.0)
        processes.append(start_redis_server(workdir, port, *DURABLE))
        done = _finished(queue, held.id)
        assert done.state is JobState.COMPLETED and done.result == "ok"
        assert thread.is_alive(), "the dispatcher exited during the outage"
    finally:
        dispatcher.stop(grace_seconds=1)
        thread.join(10)
        queue.close()


def _finished(queue: JobQueue, job_id: str) -> Job:
    done = queue.wait_for(job_id, timeout=30)
    assert done is not None, f"job {job_id} did not finish"
    return done
