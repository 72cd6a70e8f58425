"""One hook emitter, a backend's async twin through a hook, and call errors apart from job
input (issue 20 item 8)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

import pytest

from jobqueue import (
    AsyncJobQueue,
    InvalidArgumentError,
    InvalidJobError,
    InvalidOptionError,
    JobQueue,
    JobQueueError,
    Schedule,
    hookimpl,
)
from jobqueue.aio_backend import ThreadedAsyncBackend
from jobqueue.backend import Backend
from jobqueue.job import Job, JobState


class RaisingListener:
    @hookimpl
    def jobqueue_job_submitted(self, job: Job) -> None:
        raise RuntimeError(f"listener broke on {job.id}")


def test_every_submit_path_reports_a_raising_plugin_through_the_one_emitter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The facade, the asyncio face and the scheduler fire ``jobqueue_job_submitted``
    through ``jobqueue.hooks.emit``: a plugin's exception is logged once per job by the
    ``jobqueue.hooks`` logger and the job is stored. (main: the facade's own copy logged
    under ``jobqueue``.)"""
    queue = JobQueue("memory://", plugins=[RaisingListener()], load_entrypoints=False)
    queue.add_worker("w", lambda job: None)
    queue.add_schedule(Schedule(name="tick", worker="w", every=timedelta(minutes=1)))
    scheduler = queue.scheduler()
    scheduler.run_pending(now=0.0)  # first sight: the baseline, no job
    with caplog.at_level(logging.ERROR):
        queue.submit_job("w", 1)
        queue.submit_jobs("w", [2, 3])

        async def submit() -> None:
            await queue.aio.submit_job("w", 4)
            await queue.aio.submit_jobs("w", [5])
            await queue.aio.close()

        asyncio.run(submit())
        assert [r.outcome.value for r in scheduler.run_pending(now=60.0)] == ["submitted"]
    raised = [r for r in caplog.records if "jobqueue_job_submitted raised" in r.getMessage()]
    assert [r.name for r in raised] == ["jobqueue.hooks"] * 6
    assert queue.count_by_state()[JobState.WAITING] == 6


class TwinOffered:
    """What a third-party plugin does for its backend's native asyncio client."""

    def __init__(self) -> None:
        self.asked: list[Backend] = []

    @hookimpl
    def jobqueue_async_backend(self, backend: Backend) -> object:
        self.asked.append(backend)
        return RecordingTwin(backend)


class RecordingTwin(ThreadedAsyncBackend):
    submitted: list[str]

    async def submit_many(self, jobs: Sequence[Job]) -> list[Job]:
        stored = await super().submit_many(jobs)
        self.submitted = [job.id for job in stored]
        return stored


def test_a_plugin_offers_its_backends_async_twin() -> None:
    """``AsyncJobQueue`` asks the ``jobqueue_async_backend`` hook, so a third-party backend
    gets a native twin without the core naming it; no answer means worker threads."""
    offered = TwinOffered()
    queue = JobQueue("memory://", plugins=[offered], load_entrypoints=False)
    queue.add_worker("w", lambda job: None)

    async def submit() -> list[str]:
        async with AsyncJobQueue(queue=queue) as aq:
            assert isinstance(aq.backend, RecordingTwin)
            jobs = await aq.submit_jobs("w", [1, 2])
            assert aq.backend.submitted == [job.id for job in jobs]
            return [job.id for job in jobs]

    ids = asyncio.run(submit())
    assert offered.asked == [queue.backend]
    assert all(queue.get_job_by_id(job_id) is not None for job_id in ids)
    plain = JobQueue("memory://", load_entrypoints=False)
    assert type(plain.aio.backend) is ThreadedAsyncBackend
    asyncio.run(plain.aio.close())


def test_call_errors_are_not_job_input_errors() -> None:
    """A bad argument to a call that is not a submit raises ``InvalidArgumentError``, which
    is not an ``InvalidJobError`` (nothing was submitted); a bad submit option stays an
    ``InvalidOptionError``. (main: both were InvalidOptionError, an InvalidJobError.)"""
    queue = JobQueue("memory://", load_entrypoints=False)
    queue.add_worker("w", lambda job: None)
    calls = {
        "list_jobs offset": lambda: queue.list_jobs("waiting", offset=-1),
        "list_jobs limit": lambda: queue.list_jobs(limit="10"),  # type: ignore[arg-type]
        "list_jobs state": lambda: queue.list_jobs("running"),
        "get_job_by_id": lambda: queue.get_job_by_id(""),
        "cancel_jobs state": lambda: queue.cancel_jobs("completed"),
        "retry_jobs state": lambda: queue.retry_jobs("waiting"),
        "purge_jobs older_than": lambda: queue.purge_jobs("completed", older_than=-1),
        "throughput period": lambda: queue.throughput("day"),
        "throughput span": lambda: queue.throughput("hour", 25),
        "pause name": lambda: queue.pause(""),
        "pause_schedule name": lambda: queue.pause_schedule("x" * 1000),
    }
    for what, call in calls.items():
        with pytest.raises(InvalidArgumentError) as caught:
            call()
        assert not isinstance(caught.value, InvalidJobError), what
        assert isinstance(caught.value, JobQueueError), what
    with pytest.raises(InvalidOptionError) as refused:
        queue.submit_job("w", 1, delay=-1)
    assert isinstance(refused.value, InvalidJobError)
    assert not isinstance(refused.value, InvalidArgumentError)
    assert sum(queue.count_by_state().values()) == 0
