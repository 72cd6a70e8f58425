"""Flows end to end (``submit_flow``, dispatchers, the CLI), on every backend; the store's
part is in the contract suite (``jobqueue.testing.contract.flows``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from jobqueue import (
    Flow,
    InvalidOptionError,
    JobQueue,
    JobState,
    PayloadTooLargeError,
    UnknownWorkerError,
)
from jobqueue.cli.main import main


@pytest.fixture
def queue(backend_url: str) -> Iterator[JobQueue]:
    queue = JobQueue(backend_url)
    seen: list[tuple[str, Any]] = []
    queue.seen = seen  # type: ignore[attr-defined]

    def fetch(job: Any) -> int:
        seen.append(("fetch", job.data))
        return int(job.data) * 10

    def gather(job: Any) -> int:
        seen.append(("gather", sorted(job.dependency_results().values())))
        return sum(job.dependency_results().values())

    def boom(job: Any) -> None:
        raise RuntimeError(f"boom {job.data}")

    def report(job: Any) -> dict[str, Any]:
        return {
            "results": job.dependency_results(),
            "errors": {k: str(v) for k, v in job.dependency_errors().items()},
        }

    queue.add_worker("fetch", fetch)
    queue.add_worker("gather", gather)
    queue.add_worker("boom", boom)
    queue.add_worker("report", report)
    yield queue
    queue.close()


def test_a_fan_out_and_gather_runs_each_job_once_in_dependency_order(queue: JobQueue) -> None:
    flow = Flow()
    fetches = [flow.add("fetch", n) for n in range(1, 6)]
    total = flow.add("gather", depends_on=fetches)
    flow.add("report", depends_on=[total])
    jobs = queue.submit_flow(flow)
    assert [job.state for job in jobs] == [JobState.WAITING] * 5 + [JobState.BLOCKED] * 2
    assert {job.flow_id for job in jobs} == {jobs[0].id}
    queue.work(burst=True)
    done = [queue.get_job_by_id(job.id) for job in jobs]
    assert all(job is not None and job.state is JobState.COMPLETED for job in done)
    assert queue.seen == [("fetch", n) for n in range(1, 6)] + [  # type: ignore[attr-defined]
        ("gather", [10, 20, 30, 40, 50])
    ]
    last = done[-1]
    assert last is not None and last.result == {"results": {jobs[5].id: 150}, "errors": {}}
    assert [job.id for job in queue.flow_jobs(jobs[0].id)] == [job.id for job in jobs]


def test_a_failure_cancels_its_dependents_and_ignore_lets_one_run(queue: JobQueue) -> None:
    flow = Flow()
    broken = flow.add("boom", 1)
    fine = flow.add("fetch", 2)
    gathered = flow.add("gather", depends_on=[broken, fine])
    reported = flow.add("report", depends_on=[(broken, "ignore"), fine])
    jobs = queue.submit_flow(flow)
    queue.work(burst=True)
    gather = queue.get_job_by_id(jobs[gathered.position].id)
    assert gather is not None and gather.state is JobState.CANCELLED
    assert gather.error is not None and jobs[broken.position].id in gather.error.message
    report = queue.get_job_by_id(jobs[reported.position].id)
    assert report is not None and report.state is JobState.COMPLETED
    assert report.result["results"] == {jobs[fine.position].id: 20}
    assert list(report.result["errors"]) == [jobs[broken.position].id]
    assert "boom 1" in report.result["errors"][jobs[broken.position].id]


def test_bad_input_anywhere_in_a_flow_stores_nothing(queue: JobQueue) -> None:
    flow = Flow()
    first = flow.add("fetch", 1)
    flow.add("no-such-worker", depends_on=[first])
    with pytest.raises(UnknownWorkerError):
        queue.submit_flow(flow)
    too_big = Flow()
    too_big.add("fetch", "x" * (2 * 1024 * 1024))
    with pytest.raises(PayloadTooLargeError):
        queue.submit_flow(too_big)
    assert sum(queue.count_by_state().values()) == 0


@pytest.mark.parametrize("backend_url", ["sqlite", "redis", "postgres"], indirect=True)
def test_the_cli_lists_a_flow_with_what_each_job_waits_for(
    queue: JobQueue, backend_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow()
    first = flow.add("fetch", 1)
    flow.add("gather", depends_on=[first])
    jobs = queue.submit_flow(flow)
    assert main(["--url", backend_url, "jobs", "--flow", jobs[0].id]) == 0
    out = capsys.readouterr().out
    assert "WAITS FOR" in out
    blocked_row = next(line for line in out.splitlines() if line.startswith(jobs[1].id))
    assert "blocked" in blocked_row and blocked_row.rstrip().endswith(jobs[0].id)
    assert main(["--url", backend_url, "--json", "jobs", "--flow", jobs[0].id]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [job["id"] for job in listed] == [job.id for job in jobs]
    assert main(["--url", backend_url, "jobs", "--flow", "999999999"]) == 2
    assert "no flow with id" in capsys.readouterr().err


def test_the_asyncio_facade_submits_a_flow(queue: JobQueue) -> None:
    async def submit() -> list[str]:
        flow = Flow()
        flow.add("gather", depends_on=[flow.add("fetch", 3)])
        jobs = await queue.aio.submit_flow(flow)
        listed = await queue.aio.flow_jobs(jobs[0].id)
        return [job.state.value for job in listed]

    assert asyncio.run(submit()) == ["waiting", "blocked"]


@pytest.mark.parametrize("backend_url", ["memory"], indirect=True)
def test_a_flow_refuses_bad_steps_with_clear_errors(queue: JobQueue) -> None:
    flow, other = Flow(), Flow()
    step = flow.add("fetch", 1)
    with pytest.raises(InvalidOptionError, match="another flow"):
        other.add("gather", depends_on=[step])
    with pytest.raises(InvalidOptionError, match="unknown dependency rule"):
        flow.add("gather", depends_on=[(step, "retry")])
    with pytest.raises(InvalidOptionError, match="twice"):
        flow.add("gather", depends_on=[step, step])
    with pytest.raises(InvalidOptionError, match="unique_key"):
        flow.add("fetch", 2, unique_key="k")
    with pytest.raises(InvalidOptionError, match="steps or"):
        flow.add("gather", depends_on=["1"])  # type: ignore[list-item]
    with pytest.raises(InvalidOptionError, match="at least one job"):
        queue.submit_flow(Flow())
    assert len(flow) == 1
