"""The JobQueue facade: the seed API, submit options, and every refusal of bad input."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jobqueue import (
    InvalidArgumentError,
    InvalidOptionError,
    InvalidWorkerError,
    JobQueue,
    JobQueueError,
    JobState,
    NotSerializableError,
    PayloadTooLargeError,
    UnknownBackendError,
    UnknownWorkerError,
    Worker,
)
from jobqueue.testing import ManualClock


class ContactImport:
    """The seed module's handler shape."""

    def handle(self, job: Any) -> dict[str, str]:
        return {"imported_for": job.data["user"]}

    def get_title(self, data: dict[str, str]) -> str:
        return f"Import {data['type']} contacts for user {data['user']}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def queue(clock: ManualClock) -> JobQueue:
    queue = JobQueue("memory://", clock=clock, load_entrypoints=False)
    queue.add_worker("contact-import", ContactImport())
    return queue


def nothing_stored(queue: JobQueue) -> bool:
    return sum(queue.count_by_state().values()) == 0


def test_seed_api_end_to_end(queue: JobQueue) -> None:
    data = {"user": "u1", "type": "google", "account": "a1"}
    job = queue.submit_job("contact-import", data)
    assert (job.name, job.data, job.state) == ("contact-import", data, JobState.WAITING)
    assert job.title == "Import google contacts for user u1"
    assert queue.work(burst=True) == 1
    done = queue.get_job_by_id(job.id)
    assert done is not None
    assert done.state is JobState.COMPLETED
    assert done.result == {"imported_for": "u1"}
    assert queue.get_job_by_id("no-such-id") is None


def test_decorator_and_plain_callable_handlers(queue: JobQueue) -> None:
    @queue.worker("send-alarm", attempts=3, timeout=30)
    async def send_alarm(job: Any) -> str:
        return f"sent to {job.data['to']}"

    queue.add_worker("double", lambda job: job.data * 2)
    alarm = queue.submit_job("send-alarm", {"to": "a@b.c"})
    double = queue.submit_job("double", 21)
    assert alarm.attempts == 3 and alarm.timeout == 30 and alarm.title is None
    assert queue.work() == 2
    assert queue.get_job_by_id(alarm.id).result == "sent to a@b.c"  # type: ignore[union-attr]
    assert queue.get_job_by_id(double.id).result == 42  # type: ignore[union-attr]


def test_add_worker_accepts_worker_value(queue: JobQueue) -> None:
    worker = Worker("w", lambda job: None, attempts=2, priority=5)
    assert queue.add_worker(worker) is worker
    job = queue.submit_job("w", {})
    assert (job.attempts, job.priority) == (2, 5)


def test_submit_options_override_worker_defaults(queue: JobQueue, clock: ManualClock) -> None:
    job = queue.submit_job(
        "contact-import",
        {"user": "u", "type": "t"},
        priority=9,
        attempts=4,
        backoff={"kind": "exponential", "delay": 2},
        timeout=5,
    )
    assert (job.priority, job.attempts, job.timeout) == (9, 4, 5.0)
    assert job.backoff.kind == "exponential" and job.backoff.delay == 2


def test_delay_and_run_at(queue: JobQueue, clock: ManualClock) -> None:
    data = {"user": "u", "type": "t"}
    by_delay = queue.submit_job("contact-import", data, delay=timedelta(seconds=30))
    at = datetime.fromtimestamp(clock() + 60, tz=timezone.utc)
    by_run_at = queue.submit_job("contact-import", data, run_at=at)
    assert by_delay.state is JobState.DELAYED and by_delay.run_at == clock() + 30
    assert by_run_at.state is JobState.DELAYED and by_run_at.run_at == pytest.approx(clock() + 60)
    assert queue.work() == 0
    clock.advance(30)
    assert queue.work() == 1
    clock.advance(30)
    assert queue.work() == 1


def test_priority_orders_processing(queue: JobQueue) -> None:
    seen: list[str] = []
    queue.add_worker("record", lambda job: seen.append(job.data))
    for label, priority in [("low", -1), ("normal", 0), ("high", 10)]:
        queue.submit_job("record", label, priority=priority)
    queue.work()
    assert seen == ["high", "normal", "low"]


def test_unique_key_returns_existing_job(queue: JobQueue) -> None:
    data = {"user": "u", "type": "t"}
    first = queue.submit_job("contact-import", data, unique_key="import:u")
    again = queue.submit_job("contact-import", data, unique_key="import:u")
    assert again.id == first.id
    assert queue.count_by_state()[JobState.WAITING] == 1


def test_submit_jobs_in_bulk(queue: JobQueue) -> None:
    jobs = queue.submit_jobs("contact-import", [{"user": f"u{i}", "type": "t"} for i in range(5)])
    assert len({job.id for job in jobs}) == 5
    assert jobs[0].title == "Import t contacts for user u0"
    assert queue.work() == 5


def test_submit_jobs_refuses_all_if_one_is_bad(queue: JobQueue) -> None:
    with pytest.raises(NotSerializableError):
        queue.submit_jobs("contact-import", [{"user": "u", "type": "t"}, {"user": {1, 2}}])
    assert nothing_stored(queue)


def test_list_count_remove(queue: JobQueue) -> None:
    job = queue.submit_job("contact-import", {"user": "u", "type": "t"})
    assert [j.id for j in queue.list_jobs("waiting")] == [job.id]
    assert queue.count_by_state()[JobState.WAITING] == 1
    assert queue.remove_job(job.id) is True
    assert queue.get_job_by_id(job.id) is None


def test_wait_for_returns_finished_job(queue: JobQueue) -> None:
    job = queue.submit_job("contact-import", {"user": "u", "type": "t"})
    assert queue.wait_for(job.id, timeout=0.05) is None
    queue.work()
    done = queue.wait_for(job.id, timeout=5)
    assert done is not None and done.state is JobState.COMPLETED


def test_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBQUEUE_URL", "memory://")
    assert JobQueue(load_entrypoints=False).url == "memory://"


def test_default_url_is_local_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBQUEUE_URL", raising=False)
    queue = JobQueue(load_entrypoints=False)
    assert queue.url == "redis://localhost:6379/0"
    queue.close()


# -- refusals: a specific error, a message that says what to do, nothing stored ---------------

BAD_DATA = [
    ({"when": datetime.now()}, "not plain JSON"),
    ({"tags": {"a", "b"}}, "not plain JSON"),
    ({"x": math.nan}, "not plain JSON"),
    ({"x": math.inf}, "not plain JSON"),
    ({1: "int key"}, "round trip"),
    ((1, 2), "round trip"),
    (object(), "not plain JSON"),
]


@pytest.mark.parametrize(("data", "hint"), BAD_DATA)
def test_non_json_data_is_refused(queue: JobQueue, data: Any, hint: str) -> None:
    with pytest.raises(NotSerializableError, match=hint):
        queue.submit_job("contact-import", data)
    assert nothing_stored(queue)


def test_too_large_data_is_refused(clock: ManualClock) -> None:
    queue = JobQueue("memory://", clock=clock, load_entrypoints=False, max_data_bytes=100)
    queue.add_worker("w", lambda job: None)
    with pytest.raises(PayloadTooLargeError, match="store large content elsewhere"):
        queue.submit_job("w", {"blob": "x" * 200})
    assert nothing_stored(queue)


def test_unknown_worker_is_refused(queue: JobQueue) -> None:
    with pytest.raises(UnknownWorkerError, match=r"register it with queue\.add_worker"):
        queue.submit_job("no-such-worker", {})
    assert nothing_stored(queue)


BAD_OPTIONS: list[dict[str, Any]] = [
    {"priority": "high"},
    {"priority": 1.5},
    {"priority": 10**9},
    {"priority": True},
    {"attempts": 0},
    {"attempts": "3"},
    {"delay": -1},
    {"delay": "soon"},
    {"delay": math.inf},
    {"delay": 1, "run_at": 5.0},
    {"run_at": datetime(2030, 1, 1)},
    {"run_at": "tomorrow"},
    {"timeout": 0},
    {"timeout": -5},
    {"backoff": "exponential"},
    {"backoff": {"kind": "linear"}},
    {"backoff": {"delay": -1}},
    {"backoff": {"speed": 1}},
    {"unique_key": ""},
    {"unique_key": 12},
]


@pytest.mark.parametrize("options", BAD_OPTIONS)
def test_bad_option_is_refused(queue: JobQueue, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptionError):
        queue.submit_job("contact-import", {"user": "u", "type": "t"}, **options)
    assert nothing_stored(queue)


@pytest.mark.parametrize("job_id", [123, None, b"1", ""])
def test_bad_job_id_is_refused(queue: JobQueue, job_id: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="job id"):
        queue.get_job_by_id(job_id)


def test_unknown_url_scheme() -> None:
    with pytest.raises(UnknownBackendError, match=r"known: .*memory://"):
        JobQueue("mongodb://localhost", load_entrypoints=False)


def test_unknown_state_name(queue: JobQueue) -> None:
    with pytest.raises(InvalidArgumentError, match="waiting"):
        queue.list_jobs("running")


class NotCallable:
    handle = "not a function"


@pytest.mark.parametrize(
    ("name", "handler", "match"),
    [
        ("", lambda job: None, "non-empty string name"),
        (None, lambda job: None, "non-empty string name"),
        ("w", None, "has no handler"),
        ("w", NotCallable(), "callable handle"),
        ("w", 42, "callable handle"),
    ],
)
def test_invalid_worker_definitions(queue: JobQueue, name: Any, handler: Any, match: str) -> None:
    with pytest.raises(InvalidWorkerError, match=match):
        queue.add_worker(name, handler)


def test_name_taken_by_another_handler(queue: JobQueue) -> None:
    handler = ContactImport()
    queue.add_worker("x", handler)
    assert queue.add_worker("x", handler).handler is handler  # same handler: fine
    with pytest.raises(InvalidWorkerError, match="already registered"):
        queue.add_worker("x", ContactImport())


def test_bad_worker_options(queue: JobQueue) -> None:
    """A worker's options are setup: their mistakes are configuration errors."""
    with pytest.raises(InvalidWorkerError, match="attempts must be"):
        queue.add_worker("w", lambda job: None, attempts=0)
    with pytest.raises(InvalidWorkerError, match="max_active must be"):
        queue.add_worker("w2", lambda job: None, max_active=0)
    with pytest.raises(InvalidWorkerError, match=r"unknown worker option\(s\) retries"):
        queue.add_worker("w3", lambda job: None, retries=3)


def test_every_error_is_a_jobqueue_error() -> None:
    import jobqueue.errors as errors

    for name in dir(errors):
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, JobQueueError), name
