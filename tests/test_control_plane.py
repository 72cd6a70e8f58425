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
from jobqueue.backend import ThroughputBucket
from jobqueue.cli import main
from jobqueue.errors import InvalidArgumentError, JobStateError
from jobqueue.job import AttemptOutcome
from jobqueue.testing import ManualClock


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
    with pytest.raises(InvalidArgumentError):
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
    with pytest.raises(InvalidArgumentError):
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
        with pytest.raises(InvalidArgumentError):
            queue.cancel_jobs(refused)
    with pytest.raises(InvalidArgumentError):
        queue.cancel_jobs(name="")
    assert queue.count_by_state()[JobState.CANCELLED] == 4


def test_throughput_per_minute_and_per_hour(backend_url: str) -> None:
    clock = ManualClock(1_700_000_000.0)  # 20 s into a minute, 800 s into an hour
    attempts = {"flaky": 0}

    def flaky(job: Any) -> str:
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            raise ValueError("first time")
        return "second time"

    with JobQueue(backend_url, load_entrypoints=False, clock=clock) as queue:
        queue.add_worker("mail", lambda job: {"sent": job.data})
        queue.add_worker("boom", _boom, attempts=1)
        queue.add_worker("flaky", flaky, attempts=2)
        minute = int(clock()) // 60
        assert [b.total for b in queue.throughput()] == [0] * 60
        queue.submit_jobs("mail", [1, 2])
        queue.submit_job("flaky", None)
        assert queue.work(burst=True) == 4
        clock.advance(60)
        queue.submit_job("boom", None)
        queue.submit_job("mail", 3, delay=30)
        assert queue.work(burst=True) == 1
        assert queue.cancel_jobs("delayed") == 1  # no attempt ended: not counted
        buckets = queue.throughput()
        assert len(buckets) == 60 and all(b.seconds == 60 for b in buckets)
        assert [b.start for b in buckets] == [(minute + 1 - 59 + i) * 60 for i in range(60)]
        assert buckets[-2] == ThroughputBucket((minute) * 60, 60, completed=3, retried=1)
        assert buckets[-1] == ThroughputBucket((minute + 1) * 60, 60, failed=1)
        assert sum(b.total for b in buckets[:-2]) == 0
        assert buckets[-2].to_dict() == {
            "start": minute * 60,
            "seconds": 60,
            "completed": 3,
            "failed": 0,
            "retried": 1,
            "cancelled": 0,
        }
        hours = queue.throughput("hour")
        hour = int(clock()) // 3600
        assert [b.start for b in hours] == [(hour - 23 + i) * 3600 for i in range(24)]
        assert hours[-1] == ThroughputBucket(hour * 3600, 3600, 3, 1, 1, 0)
        assert [b.total for b in queue.throughput("minute", 2)] == [4, 1]
        assert [b.total for b in queue.throughput("hour", 1)] == [5]
        for period, span in [("day", None), ("minute", 0), ("minute", 1441), ("hour", 25)]:
            with pytest.raises(InvalidArgumentError):
                queue.throughput(period, span)
        for bad in ("5", True, 2.0):
            with pytest.raises(InvalidArgumentError):
                queue.throughput("minute", bad)  # type: ignore[arg-type]
        for bad_period in (None, ["minute"], "Minute"):
            with pytest.raises(InvalidArgumentError, match="period"):
                queue.throughput(bad_period)  # type: ignore[arg-type]


def test_purge_and_pause(queue: JobQueue) -> None:
    done = queue.submit_job("mail", 1)
    queue.work(burst=True)
    assert queue.purge_jobs("completed", older_than=3600) == 0
    assert queue.purge_jobs("completed", name="mail") == 1
    assert queue.get_job_by_id(done.id) is None
    with pytest.raises(InvalidArgumentError):
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
        assert [b.total for b in await aq.throughput("hour")] == [0] * 24
        await aq.close()

    asyncio.run(main())
