"""Steering the queue through the facade and the CLI: cancel, retry, purge, pause, resume,
live dispatchers — on every backend."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jobqueue import JobNotFoundError, JobQueue, JobState, hookimpl
from jobqueue.cli import main
from jobqueue.errors import InvalidOptionError, JobStateError
from jobqueue.job import AttemptOutcome


class Cancelled:
    def __init__(self) -> None:
        self.ids: list[str] = []

    @hookimpl
    def jobqueue_job_cancelled(self, job: Any) -> None:
        self.ids.append(job.id)


@pytest.fixture
def queue(backend_url: str) -> Iterator[JobQueue]:
    hooks = Cancelled()
    with JobQueue(backend_url, load_entrypoints=False, plugins=[hooks]) as queue:
        queue.add_worker("mail", lambda job: {"sent": job.data})
        queue.add_worker("boom", _boom, attempts=1)
        queue.cancelled = hooks  # type: ignore[attr-defined]
        yield queue


def _boom(job: Any) -> None:
    raise ValueError("boom")


def test_cancel_waiting_job_fires_the_hook(queue: JobQueue) -> None:
    job = queue.submit_job("mail", 1)
    assert queue.cancel_job(job.id) is JobState.CANCELLED
    assert queue.cancelled.ids == [job.id]  # type: ignore[attr-defined]
    assert queue.work(burst=True) == 0
    with pytest.raises(JobNotFoundError):
        queue.cancel_job("424242")


def test_retry_a_failed_job_and_read_its_history(queue: JobQueue) -> None:
    job = queue.submit_job("boom", None)
    queue.work(burst=True)
    failed = queue.get_job_by_id(job.id)
    assert failed is not None and failed.state is JobState.FAILED
    retried = queue.retry_job(job.id)
    assert retried.state is JobState.WAITING and retried.attempts_made == 0
    queue.work(burst=True)
    again = queue.get_job_by_id(job.id)
    assert again is not None
    assert [a.outcome for a in again.history] == [AttemptOutcome.FAILED, AttemptOutcome.FAILED]
    assert again.history[0].error is not None and again.history[0].error.type == "ValueError"
    with pytest.raises(JobStateError):
        queue.retry_job(queue.submit_job("mail", 2).id)
    assert queue.retry_jobs("failed", name="boom") == 1
    with pytest.raises(InvalidOptionError):
        queue.retry_jobs("completed")


def test_run_a_delayed_job_now(queue: JobQueue) -> None:
    job = queue.submit_job("mail", 1, delay=3600)
    assert queue.work(burst=True) == 0
    moved = queue.run_job_now(job.id)
    assert moved.id == job.id and moved.state is JobState.WAITING
    assert queue.work(burst=True) == 1
    done = queue.get_job_by_id(job.id)
    assert done is not None and done.state is JobState.COMPLETED
    with pytest.raises(JobStateError, match="only delayed jobs"):
        queue.run_job_now(job.id)
    with pytest.raises(JobNotFoundError):
        queue.run_job_now("424242")
    with pytest.raises(InvalidOptionError):
        queue.run_job_now("")


def test_cancel_jobs_in_bulk(queue: JobQueue) -> None:
    waiting = queue.submit_jobs("mail", [1, 2, 3])
    queue.submit_job("boom", None)
    delayed = queue.submit_job("mail", 4, delay=60)
    assert queue.cancel_jobs(name="mail") == 3
    assert queue.cancel_jobs("delayed") == 1
    assert queue.cancel_jobs(JobState.ACTIVE) == 0
    for job in [*waiting, delayed]:
        stored = queue.get_job_by_id(job.id)
        assert stored is not None and stored.state is JobState.CANCELLED
    assert queue.count_by_state()[JobState.WAITING] == 1  # the "boom" job
    assert queue.cancelled.ids == []  # type: ignore[attr-defined]  # bulk fires no hook
    for refused in ("completed", "failed", "cancelled", "sleeping"):
        with pytest.raises(InvalidOptionError):
            queue.cancel_jobs(refused)
    with pytest.raises(InvalidOptionError):
        queue.cancel_jobs(name="")
    assert queue.count_by_state()[JobState.CANCELLED] == 4


def test_purge_and_pause(queue: JobQueue) -> None:
    done = queue.submit_job("mail", 1)
    queue.work(burst=True)
    assert queue.purge_jobs("completed", older_than=3600) == 0
    assert queue.purge_jobs("completed", name="mail") == 1
    assert queue.get_job_by_id(done.id) is None
    with pytest.raises(InvalidOptionError):
        queue.purge_jobs("waiting")
    queue.pause("mail")
    assert queue.paused() == frozenset({"mail"})
    held = queue.submit_job("mail", 2)
    assert queue.work(burst=True) == 0
    queue.resume("mail")
    assert queue.work(burst=True) == 1
    finished = queue.get_job_by_id(held.id)
    assert finished is not None and finished.state is JobState.COMPLETED


def test_cli_control_commands(queue: JobQueue, capsys: pytest.CaptureFixture[str]) -> None:
    if queue.url == "memory://":  # each command would open a store of its own: share ours
        globals()["SHARED"] = queue
        prefix = ["--app", "tests.test_control_plane:SHARED"]
    else:
        prefix = ["--url", queue.url]

    def run(*argv: str) -> tuple[int, Any]:
        code = main([*prefix, "--json", *argv])
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip() else None

    waiting = queue.submit_job("mail", 1)
    assert run("cancel", waiting.id) == (0, {"id": waiting.id, "state": "cancelled"})
    code, retried = run("retry", waiting.id)
    assert code == 0 and retried["state"] == "waiting"
    assert run("cancel", waiting.id)[1]["state"] == "cancelled"
    assert run("retry", "--cancelled", "--name", "mail") == (0, {"retried": 1})
    assert run("cancel", waiting.id)[1]["state"] == "cancelled"
    assert run("purge", "cancelled", "--older-than", "7d") == (0, {"purged": 0})
    assert run("purge", "cancelled") == (0, {"purged": 1})
    assert run("pause", "mail") == (0, {"paused": ["mail"]})
    assert run("resume", "mail") == (0, {"paused": []})
    assert run("workers") == (0, [])
    assert main([*prefix, "cancel", "424242"]) == 2
    assert "error: no job with id '424242'" in capsys.readouterr().err
    assert main([*prefix, "retry"]) == 2
    assert main([*prefix, "purge", "failed", "--older-than", "soon"]) == 2


def test_dispatchers_are_listed_while_they_run(queue: JobQueue) -> None:
    started, release = threading.Event(), threading.Event()

    def hold(job: Any) -> None:
        started.set()
        release.wait(30)

    queue.add_worker("hold", hold)
    job = queue.submit_job("hold", None)
    dispatcher = queue.dispatcher(names=["hold"])
    thread = threading.Thread(target=dispatcher.run, kwargs={"max_jobs": 1})
    thread.start()
    try:
        assert started.wait(30)
        deadline = time.monotonic() + 10  # the next heartbeat (about a second) lists the job
        while not any(job.id in d.jobs for d in queue.dispatchers()):
            assert time.monotonic() < deadline, f"not listed: {queue.dispatchers()}"
            time.sleep(0.02)
        live = queue.dispatchers()
        assert len(live) == 1 and live[0].names == ("hold",) and live[0].id == dispatcher.id
        assert live[0].pid == os.getpid() and live[0].concurrency == 1
        assert queue.get_job_by_id(job.id).dispatcher == dispatcher.id  # type: ignore[union-attr]
    finally:
        release.set()
        thread.join(30)
    assert queue.dispatchers() == []  # a clean exit removes the record


def test_async_facade_has_every_steering_operation(queue: JobQueue) -> None:
    import asyncio

    async def main() -> None:
        aq = queue.aio
        job = await aq.submit_job("mail", 1)
        assert await aq.cancel_job(job.id) is JobState.CANCELLED
        assert (await aq.retry_job(job.id)).state is JobState.WAITING
        await aq.cancel_job(job.id)
        assert await aq.retry_jobs("cancelled") == 1
        await aq.pause("mail")
        assert await aq.paused() == frozenset({"mail"})
        await aq.resume("mail")
        await aq.cancel_job(job.id)
        assert await aq.purge_jobs("cancelled", name="mail") == 1
        assert await aq.dispatchers() == []
        later = await aq.submit_job("mail", 2, delay=60)
        assert (await aq.run_job_now(later.id)).state is JobState.WAITING
        assert await aq.cancel_jobs("waiting", "mail") == 1
        await aq.close()

    asyncio.run(main())
