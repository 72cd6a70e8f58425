"""A worker never dies quietly (in process): crashed slots restart, boundedly; a handler's
SystemExit / KeyboardInterrupt stops the run and is raised again; log and progress writes
ride out backend errors instead of failing the job."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jobqueue import DispatcherCrashedError, JobQueue, JobState
from jobqueue.errors import BackendFullError, BackendUnavailableError, LeaseLostError
from jobqueue.runtime import slot as slot_module


def make_queue(**options: Any) -> JobQueue:
    return JobQueue("memory://", load_entrypoints=False, **options)


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Crashed slots restart at once here: the back-off's length is not what is tested."""
    monkeypatch.setattr(slot_module, "SLOT_RESTART_MIN", 0.001)
    monkeypatch.setattr(slot_module, "SLOT_RESTART_MAX", 0.001)


class Flaky:
    """Replaces a backend method: raises ``error`` the first ``times`` calls, then calls
    through."""

    def __init__(self, method: Any, error: BaseException, times: int) -> None:
        self.method, self.error, self.times, self.calls = method, error, times, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return self.method(*args, **kwargs)


# -- crashed slots ------------------------------------------------------------------------------


def test_a_crashed_slot_is_logged_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    queue = make_queue()
    queue.worker("w")(lambda job: "ok")
    job = queue.submit_job("w", {})
    flaky = Flaky(queue.backend.claim_many, RuntimeError("a bug in a backend"), times=2)
    queue.backend.claim_many = flaky  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="jobqueue.runtime"):
        assert queue.work() == 1
    assert queue.get_job_by_id(job.id).state is JobState.COMPLETED  # type: ignore[union-attr]
    crashes = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert len(crashes) == 2
    assert crashes[0].exc_info is not None and "a bug in a backend" in caplog.text
    assert "Traceback" in caplog.text


def test_a_slot_that_keeps_crashing_makes_run_raise() -> None:
    queue = make_queue()
    queue.worker("w")(lambda job: "ok")
    queue.submit_job("w", {})
    queue.backend.claim_many = Flaky(  # type: ignore[method-assign]
        queue.backend.claim_many, RuntimeError("always"), times=10**9
    )
    with pytest.raises(DispatcherCrashedError, match=r"crashed 5 times.*RuntimeError: always"):
        queue.work(burst=False, concurrency=2)


def test_the_job_a_crashed_slot_ran_fails_that_attempt_and_is_retried() -> None:
    queue = make_queue()
    runs: list[int] = []

    @queue.worker("w", attempts=2, backoff=0)
    def handle(job: Any) -> str:
        runs.append(job.attempts_made)
        return "ok"

    job = queue.submit_job("w", {})
    # Recording the outcome crashes (not a BackendError: a bug), and again in the slot's
    # clean-up: the outcome is lost, the handler ran.
    queue.backend.complete = Flaky(  # type: ignore[method-assign]
        queue.backend.complete, RuntimeError("a bug"), times=2
    )
    queue.work()
    stored = queue.get_job_by_id(job.id)
    assert stored is not None and stored.state is JobState.COMPLETED
    assert runs == [1, 2] and stored.attempts_made == 2  # the crash counted an attempt
    assert stored.history[0].error is not None
    assert stored.history[0].error.type == "DispatcherCrashedError"


def test_the_job_a_crashed_slot_ran_ends_by_the_attempts_rule() -> None:
    queue = make_queue()
    queue.worker("w", attempts=2, backoff=0)(lambda job: "ok")
    job = queue.submit_job("w", {})
    queue.backend.complete = Flaky(  # type: ignore[method-assign]
        queue.backend.complete, RuntimeError("a bug"), times=10**9
    )
    queue.work()  # two crashes: below the cap
    stored = queue.get_job_by_id(job.id)
    assert stored is not None and stored.state is JobState.FAILED
    assert stored.error is not None and stored.error.type == "DispatcherCrashedError"


def test_an_exception_whose_str_raises_fails_its_job_not_the_slot() -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    queue = make_queue()

    @queue.worker("weird")
    def weird(job: Any) -> None:
        raise Weird

    queue.worker("fine")(lambda job: "ok")
    bad, good = queue.submit_job("weird", {}), queue.submit_job("fine", {})
    assert queue.work() == 2
    failed = queue.get_job_by_id(bad.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error is not None and failed.error.type == "Weird"
    assert queue.get_job_by_id(good.id).state is JobState.COMPLETED  # type: ignore[union-attr]


# -- a handler's SystemExit / KeyboardInterrupt ------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "expected"), [(SystemExit(4), SystemExit), (KeyboardInterrupt(), KeyboardInterrupt)]
)
def test_a_handlers_exit_request_fails_its_job_stops_and_is_raised_again(
    raised: BaseException, expected: type[BaseException]
) -> None:
    queue = make_queue()

    @queue.worker("quit")
    def quit_(job: Any) -> None:
        raise raised

    queue.worker("fine")(lambda job: "ok")
    first = queue.submit_job("quit", {}, priority=1)
    later = queue.submit_job("fine", {})
    with pytest.raises(expected) as info:
        queue.work(burst=False)  # returns only because the handler asked to stop
    if isinstance(raised, SystemExit):
        assert info.value.code == 4  # type: ignore[attr-defined]
    stored = queue.get_job_by_id(first.id)
    assert stored is not None and stored.state is JobState.FAILED
    assert stored.error is not None and stored.error.type == type(raised).__name__
    assert queue.get_job_by_id(later.id).state is JobState.WAITING  # type: ignore[union-attr]


# -- job.log() / job.progress() through backend errors -----------------------------------------


@pytest.mark.parametrize("error", [BackendUnavailableError("down"), BackendFullError("full")])
def test_a_transient_backend_error_in_log_and_progress_is_retried(error: Exception) -> None:
    queue = make_queue()

    @queue.worker("w")
    def handle(job: Any) -> str:
        job.log("sent the mail")
        job.progress(100, "done")
        return "sent"

    job = queue.submit_job("w", {})
    queue.backend.add_log = Flaky(queue.backend.add_log, error, times=2)  # type: ignore[method-assign]
    queue.backend.set_progress = Flaky(  # type: ignore[method-assign]
        queue.backend.set_progress, error, times=2
    )
    queue.work()
    stored = queue.get_job_by_id(job.id)
    assert stored is not None and stored.state is JobState.COMPLETED and stored.result == "sent"
    assert [line.message for line in stored.logs] == ["sent the mail"]
    assert stored.progress == 100


def test_a_log_write_the_backend_keeps_failing_is_dropped_not_the_job(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from jobqueue.runtime import running

    monkeypatch.setattr(running, "WRITE_RETRY_FOR", 0.2)
    queue = make_queue()

    @queue.worker("w")
    def handle(job: Any) -> str:
        job.log("sent the mail")
        job.progress(50)
        return "sent"

    job = queue.submit_job("w", {})
    down = BackendUnavailableError("down")
    queue.backend.add_log = Flaky(queue.backend.add_log, down, times=10**9)  # type: ignore[method-assign]
    queue.backend.set_progress = Flaky(  # type: ignore[method-assign]
        queue.backend.set_progress, down, times=10**9
    )
    with caplog.at_level(logging.WARNING, logger="jobqueue.runtime.running"):
        queue.work()
    stored = queue.get_job_by_id(job.id)
    assert stored is not None and stored.state is JobState.COMPLETED and stored.result == "sent"
    assert "log line dropped, the backend kept failing it" in caplog.text
    assert "progress dropped, the backend kept failing it" in caplog.text


def test_log_lines_into_a_full_sqlite_database_are_dropped_not_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A real "database or disk is full": the handler's connection may not grow the file."""
    from jobqueue.runtime import running

    monkeypatch.setattr(running, "WRITE_RETRY_FOR", 0.05)
    queue = JobQueue(f"sqlite:///{tmp_path / 'jobs.db'}", load_entrypoints=False)

    @queue.worker("w")
    def handle(job: Any) -> str:
        conn = queue.backend.store._pool.get()  # type: ignore[attr-defined]  # under the Engine
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        try:
            for n in range(30):  # 60 kB of lines: more than the file's free space
                job.log(f"line {n} " + "x" * 1990)
        finally:
            conn.execute("PRAGMA max_page_count = 1073741823")
        return "sent"

    job = queue.submit_job("w", {})
    with caplog.at_level(logging.WARNING, logger="jobqueue.runtime.running"):
        queue.work()
    stored = queue.get_job_by_id(job.id)
    assert stored is not None and stored.state is JobState.COMPLETED and stored.result == "sent"
    assert "is full" in caplog.text and "log line dropped" in caplog.text
    assert len(stored.logs) < 30
    queue.close()


def test_a_lost_lease_still_stops_a_log_write() -> None:
    queue = make_queue()

    @queue.worker("w")
    def handle(job: Any) -> str:
        job.log("too late")
        return "unreachable"

    job = queue.submit_job("w", {})
    lost = Flaky(queue.backend.add_log, LeaseLostError("taken over"), times=10**9)
    queue.backend.add_log = lost  # type: ignore[method-assign]
    queue.work()
    assert lost.calls == 1  # not retried
    stored = queue.get_job_by_id(job.id)
    assert stored is not None and stored.state is JobState.FAILED
    assert stored.error is not None and stored.error.type == "LeaseLostError"


# -- a handler stuck in a C call past its timeout, at shutdown ---------------------------------


def test_a_handler_that_outlives_its_timeout_at_shutdown_fails_that_attempt() -> None:
    """Stopped before its deadline but stuck in one C call past it: the attempt fails with
    JobTimeoutError (retried per attempts) instead of going back uncounted, which made a
    job stuck for good hang again in every worker after every restart."""
    queue = make_queue()
    started = threading.Event()

    @queue.worker("stuck", timeout=0.2, attempts=2, backoff=0)
    def stuck(job: Any) -> None:
        started.set()
        time.sleep(0.6)  # one C call: no interrupt lands before it returns

    job = queue.submit_job("stuck", {})
    dispatcher = queue.dispatcher()
    runner = threading.Thread(target=dispatcher.run, daemon=True)
    runner.start()
    assert started.wait(10)
    dispatcher.stop(grace_seconds=0)
    runner.join(10)
    assert not runner.is_alive()
    stored = queue.get_job_by_id(job.id)
    assert stored is not None and stored.state is JobState.WAITING and stored.attempts_made == 1
    assert stored.history[-1].error is not None
    assert stored.history[-1].error.type == "JobTimeoutError"


# -- the heartbeat ------------------------------------------------------------------------------


def test_a_heartbeat_bug_is_logged_and_the_beats_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A non-JobQueueError from the backend's heartbeat used to kill the heartbeat thread
    before it started the slots: ``run`` then waited for ever with nothing running."""
    queue = make_queue()
    queue.worker("w")(lambda job: "ok")
    job = queue.submit_job("w", {})
    queue.backend.heartbeat = Flaky(  # type: ignore[method-assign]
        queue.backend.heartbeat, TypeError("a bug in heartbeat"), times=1
    )
    done = threading.Event()
    runner = threading.Thread(target=lambda: (queue.work(), done.set()), daemon=True)
    with caplog.at_level(logging.ERROR, logger="jobqueue.runtime"):
        runner.start()
        assert done.wait(30), "work() never returned"
    assert queue.get_job_by_id(job.id).state is JobState.COMPLETED  # type: ignore[union-attr]
    assert "heartbeat failed unexpectedly" in caplog.text and "a bug in heartbeat" in caplog.text
