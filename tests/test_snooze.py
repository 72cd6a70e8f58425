"""A handler's ``job.retry_in(seconds)``: the job runs again later, not as a failure and without
using an attempt (issue 22, "from a handler"). The rule is ``lifecycle.on_snooze``; the store
writes it like any change, so every backend gets it from the core."""

from __future__ import annotations

import time
from typing import Any

import pytest

from jobqueue import JobQueue, JobState, Snooze
from jobqueue.job import AttemptOutcome


def make_queue(url: str = "memory://") -> JobQueue:
    return JobQueue(url, load_entrypoints=False)


def test_a_snoozed_job_runs_again_later_without_using_an_attempt(backend_url: str) -> None:
    queue = make_queue(backend_url)
    runs: list[int] = []

    def poll_export(job: Any) -> str:
        runs.append(job.attempts_made)
        if len(runs) == 1:
            job.retry_in(60)  # the export is not ready yet
        return "exported"

    queue.add_worker("export", poll_export, attempts=1)  # one attempt: a failure would end it
    try:
        job = queue.submit_job("export", {"id": 7})
        before = time.time()
        assert queue.work() == 1
        after = time.time()
        snoozed = queue.get_job_by_id(job.id)
        assert snoozed is not None and snoozed.state is JobState.DELAYED
        assert snoozed.attempts_made == 0 and snoozed.error is None
        assert [a.outcome for a in snoozed.history] == [AttemptOutcome.SNOOZED]
        # Due 60 s after the snooze, on the store's clock (a server's, on one host here).
        assert before + 60 - 1 <= snoozed.run_at <= after + 60 + 1
        assert queue.work() == 0  # not due yet
        queue.run_job_now(job.id)
        assert queue.work() == 1
        done = queue.get_job_by_id(job.id)
        assert done is not None and done.state is JobState.COMPLETED
        assert done.result == "exported" and done.attempts_made == 1
        assert [a.outcome for a in done.history] == [
            AttemptOutcome.SNOOZED,
            AttemptOutcome.COMPLETED,
        ]
        assert runs == [1, 1]  # the snoozed run did not count
    finally:
        queue.close()


def test_retry_in_zero_queues_the_job_again_at_once() -> None:
    queue = make_queue()
    runs: list[int] = []

    def handler(job: Any) -> int:
        runs.append(job.attempts_made)
        if len(runs) < 3:
            raise Snooze(0)  # the exception itself, for code that has no job at hand
        return len(runs)

    queue.add_worker("w", handler)
    job = queue.submit_job("w", None)
    assert queue.work() == 3
    done = queue.get_job_by_id(job.id)
    assert done is not None and done.state is JobState.COMPLETED and done.result == 3
    assert done.attempts_made == 1 and runs == [1, 1, 1]


def test_except_exception_in_the_handler_does_not_swallow_it() -> None:
    queue = make_queue()

    def handler(job: Any) -> str:
        try:
            job.retry_in(5)
        except Exception:  # a handler's catch-all must not turn the snooze into a result
            return "swallowed"
        return "unreachable"

    queue.add_worker("w", handler)
    job = queue.submit_job("w", None)
    assert queue.work() == 1
    stored = queue.get_job_by_id(job.id)
    assert stored is not None and stored.state is JobState.DELAYED and stored.result is None


def test_an_async_handler_snoozes_too() -> None:
    queue = make_queue()

    async def handler(job: Any) -> None:
        job.retry_in(30)

    queue.add_worker("w", handler)
    job = queue.submit_job("w", None)
    assert queue.work() == 1
    stored = queue.get_job_by_id(job.id)
    assert stored is not None and stored.state is JobState.DELAYED
    assert [a.outcome for a in stored.history] == [AttemptOutcome.SNOOZED]


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf"), True, "5", 1e12])
def test_bad_seconds_fail_the_attempt_with_a_clear_error(seconds: object) -> None:
    queue = make_queue()

    def handler(job: Any) -> None:
        job.retry_in(seconds)

    queue.add_worker("w", handler)
    job = queue.submit_job("w", None)
    assert queue.work() == 1
    failed = queue.get_job_by_id(job.id)
    assert failed is not None and failed.state is JobState.FAILED and failed.error is not None
    assert failed.error.type == "InvalidOptionError" and "retry_in" in failed.error.message


def test_a_cancel_requested_while_it_ran_ends_the_job_cancelled() -> None:
    queue = make_queue()

    def handler(job: Any) -> None:
        queue.cancel_job(job.id)  # an operator's cancel arrives while the handler runs
        job.retry_in(30)

    queue.add_worker("w", handler)
    job = queue.submit_job("w", None)
    assert queue.work() == 1
    stored = queue.get_job_by_id(job.id)
    assert stored is not None and stored.state is JobState.CANCELLED
