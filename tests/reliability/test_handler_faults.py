"""Part 8 -- handler faults, in a real dispatcher process (the ``jobqueue worker`` CLI).

A handler that raises (retried once, then failed), one that hangs past its timeout, one that
returns something that is not JSON, and one that kills its own process with ``os._exit(1)``:
each job ends FAILED with an error saying what happened, and the job queued after each still
runs. The ``os._exit`` job is recovered when its lease expires and retried in a replacement
process, which it kills too; past ``max_stalls=1`` it fails as stalled.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jobqueue import JobQueue
from jobqueue.job import JobState
from tests.reliability import apps, fault_apps
from tests.reliability.support import (
    ROOT,
    OwnRedis,
    Processes,
    app_env,
    key,
    redis_client,
    wait_until,
    worker_command,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_each_faulty_handler_fails_its_job_and_the_next_job_runs(
    redis_url: str, namespace: str, processes: Processes
) -> None:
    began = time.monotonic()
    queue = apps.build(redis_url, namespace)
    order = ["boom", "effect", "hang", "effect", "not_json", "effect", "exit", "effect"]
    ids = [queue.submit_job(name, {"step": n}).id for n, name in enumerate(order)]
    faulty = dict(zip(order[0::2], ids[0::2], strict=True))
    healthy = ids[1::2]
    env = app_env(redis_url, namespace, lease=1.0, max_stalls=1)

    dispatcher = processes.start(worker_command(), env, "dispatcher")
    exits: list[int | None] = []
    deadline = time.monotonic() + 60
    while not all(_finished(queue, job_id) for job_id in ids):
        assert time.monotonic() < deadline, f"jobs unfinished: {queue.count_by_state()}"
        if dispatcher.poll() is not None:  # it ran os._exit(1): start a replacement
            exits.append(dispatcher.returncode)
            assert len(exits) <= 2, f"unexpected exit: {processes.log_of(dispatcher)[-3000:]}"
            dispatcher = processes.start(worker_command(), env, "dispatcher")
        time.sleep(0.05)
    assert dispatcher.poll() is None

    jobs = {name: queue.get_job_by_id(job_id) for name, job_id in faulty.items()}
    for name, job in jobs.items():
        assert job is not None and job.state is JobState.FAILED, (name, job)
        assert job.error is not None and job.result is None
    boom, hang, not_json, exit_ = jobs["boom"], jobs["hang"], jobs["not_json"], jobs["exit"]
    assert boom and boom.error and boom.attempts_made == 2
    assert boom.error.type == "ValueError" and "boom on purpose" in boom.error.message
    assert "Traceback" in boom.error.traceback
    assert hang and hang.error and hang.error.type == "JobTimeoutError"
    assert "longer than its timeout of 0.5s" in hang.error.message
    assert not_json and not_json.error and not_json.error.type == "NotSerializableError"
    assert "not JSON" in not_json.error.message
    assert exit_ and exit_.error and exit_.error.type == "StalledJobError"
    assert exit_.stalls == 2 and "stalled 2 times" in exit_.error.message
    assert exits == [1, 1], exits  # the first run and its one retry each killed a process

    for job_id in healthy:
        job = queue.get_job_by_id(job_id)
        assert job is not None and job.state is JobState.COMPLETED, job
    client = redis_client(queue)
    runs = {k.decode(): int(v) for k, v in client.hgetall(key(namespace, "test:effects")).items()}
    assert runs[faulty["boom"]] == 2 and runs[faulty["exit"]] == 2
    assert runs[faulty["hang"]] == 1 and runs[faulty["not_json"]] == 1
    counts = queue.count_by_state()
    assert counts[JobState.COMPLETED] == 4 and counts[JobState.FAILED] == 4
    print(
        f"\n[handler faults] raise: failed after 2 attempts; hang: JobTimeoutError; "
        f"non-JSON: NotSerializableError; os._exit: retried once, then StalledJobError; "
        f"processes replaced={len(exits)}; next jobs completed=4/4; "
        f"duration={time.monotonic() - began:.1f}s"
    )
    queue.close()


def _finished(queue: object, job_id: str) -> bool:
    job = queue.get_job_by_id(job_id)  # type: ignore[attr-defined]
    return job is not None and job.state.is_finished


@pytest.mark.parametrize("store", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_result_with_text_no_store_can_hold_fails_the_job_not_the_dispatcher(
    store: str, request: pytest.FixtureRequest
) -> None:
    """A lone surrogate passes ``json.dumps`` but has no UTF-8 form: it used to escape as a
    ``UnicodeEncodeError`` from the Redis client and kill the dispatcher, the job left active."""
    if store == "redis":
        url, ns = request.getfixturevalue("redis_url"), request.getfixturevalue("namespace")
        queue = JobQueue(url, namespace=ns, load_entrypoints=False)
    else:
        queue = JobQueue("memory://", load_entrypoints=False)
    queue.add_worker("surrogate", lambda job: {"text": "broken \ud800 text"})
    queue.add_worker("ok", lambda job: "fine")
    bad, good = queue.submit_job("surrogate"), queue.submit_job("ok")
    assert queue.work(burst=True) == 2
    failed, done = queue.get_job_by_id(bad.id), queue.get_job_by_id(good.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error is not None and failed.error.type == "NotSerializableError"
    assert "not valid Unicode" in failed.error.message
    assert done is not None and done.state is JobState.COMPLETED and done.result == "fine"
    queue.close()


# -- a worker never dies quietly: exit statuses, crashed slots, segfaults ------------------------
# These processes use a SQLite file of the test's own (tests.reliability.fault_apps).

FAULT_APP = "tests.reliability.fault_apps:queue"


def fault_env(db: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "JQ_FAULT_URL": f"sqlite:///{db}",
        **extra,
    }
    for name in ("JOBQUEUE_URL", "PYTHONFAULTHANDLER"):  # faulthandler must be ours
        env.pop(name, None)
    return env


def fault_worker(*extra: str) -> list[str]:
    return [sys.executable, "-m", "jobqueue", "--app", FAULT_APP, "worker", *extra]


def exit_of(process: subprocess.Popen[bytes], processes: Processes) -> int:
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running: {processes.log_of(process)[-3000:]}") from None


@pytest.mark.parametrize(("name", "status"), [("exit4", 4), ("ctrl_c", 130)])
def test_a_handlers_system_exit_or_ctrl_c_stops_the_worker_with_its_status(
    name: str, status: int, tmp_path: Path, processes: Processes
) -> None:
    """``SystemExit(4)`` / ``KeyboardInterrupt`` in a handler used to end the worker with 0,
    which a service manager takes for a planned stop (``Restart=on-failure`` never fires)."""
    db = tmp_path / "jobs.db"
    queue = fault_apps.build(f"sqlite:///{db}")
    quitting = queue.submit_job(name, {}, priority=1)
    later = queue.submit_job("fine", {})
    worker = processes.start(fault_worker(), fault_env(db), name)
    assert exit_of(worker, processes) == status, processes.log_of(worker)[-3000:]
    failed = queue.get_job_by_id(quitting.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error is not None and failed.error.type in ("SystemExit", "KeyboardInterrupt")
    assert queue.get_job_by_id(later.id).state is JobState.WAITING  # type: ignore[union-attr]
    queue.close()


def test_a_worker_whose_slots_keep_crashing_exits_70_with_the_tracebacks(
    tmp_path: Path, processes: Processes
) -> None:
    """Slots that died used to leave a worker logging "processed 0 job(s)" and exiting 0."""
    db = tmp_path / "jobs.db"
    fault_apps.build(f"sqlite:///{db}").close()  # the schema, before the broken process
    worker = processes.start(
        fault_worker("--concurrency", "2"),
        fault_env(db, JQ_FAULT_BROKEN_CLAIM="1"),
        "crashing",
    )
    assert exit_of(worker, processes) == 70, processes.log_of(worker)[-3000:]
    log = processes.log_of(worker)
    assert "error: a dispatcher slot crashed 5 times" in log
    assert "Traceback" in log and "RuntimeError: a bug in the backend's claim" in log
    assert "restarting the slot" in log


@pytest.mark.parametrize("how", ["jobqueue worker", "run_worker"])
def test_a_segfaulting_handler_leaves_its_traceback_on_stderr(
    how: str, tmp_path: Path, processes: Processes
) -> None:
    db = tmp_path / "jobs.db"
    queue = fault_apps.build(f"sqlite:///{db}")
    queue.submit_job("segfault", {})
    if how == "run_worker":
        script = f"import {fault_apps.__name__} as apps; apps.queue().run_worker()"
        command = [sys.executable, "-c", script]
    else:
        command = fault_worker("--burst")
    worker = processes.start(command, fault_env(db), "segfault")
    assert exit_of(worker, processes) == -signal.SIGSEGV
    log = processes.log_of(worker)
    assert "Fatal Python error: Segmentation fault" in log, log[-3000:]
    assert "fault_apps.py" in log and "in segfault" in log  # the handler's own frame
    queue.close()


def test_a_handler_stuck_in_c_past_its_timeout_ends_by_its_attempts_across_restarts(
    tmp_path: Path, processes: Processes
) -> None:
    """A handler blocked in one C call past its timeout was given back at each shutdown with
    its attempt uncounted: it hung again in the next worker, for ever. Now each shutdown
    fails that attempt with JobTimeoutError (attempts=2: retried once, then failed)."""
    db = tmp_path / "jobs.db"
    queue = fault_apps.build(f"sqlite:///{db}")
    job = queue.submit_job("stuck", {})
    for attempt in (1, 2):
        worker = processes.start(fault_worker(), fault_env(db, JQ_FAULT_GRACE="0.5"), "stuck")
        wait_until(
            lambda: queue.get_job_by_id(job.id).state is JobState.ACTIVE,  # type: ignore[union-attr]
            30,
            f"attempt {attempt} to start",
        )
        worker.send_signal(signal.SIGTERM)
        assert exit_of(worker, processes) == 0, processes.log_of(worker)[-3000:]
        stored = queue.get_job_by_id(job.id)
        assert stored is not None and stored.attempts_made == attempt
        assert stored.history[-1].error is not None
        assert stored.history[-1].error.type == "JobTimeoutError"
    assert stored.state is JobState.FAILED, stored
    queue.close()


def test_a_log_line_written_while_redis_is_down_does_not_fail_the_job(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis outage during ``job.log("sent the mail")`` used to fail the attempt after its
    work was done (attempts=1: failed for good). The line is retried, then dropped."""
    queue = JobQueue(own_redis.url, load_entrypoints=False, lease_seconds=30)
    down, logged = threading.Event(), threading.Event()

    @queue.worker("mail")
    def mail(job: Any) -> str:
        down.wait(30)  # the test stopped Redis
        job.log("sent the mail")
        logged.set()
        return "sent"

    job = queue.submit_job("mail", {})
    runner = threading.Thread(target=queue.work, daemon=True)
    with caplog.at_level(logging.WARNING, logger="jobqueue.runtime.running"):
        runner.start()
        wait_until(
            lambda: queue.get_job_by_id(job.id).state is JobState.ACTIVE,  # type: ignore[union-attr]
            30,
            "the job to start",
        )
        own_redis.stop()
        down.set()
        assert logged.wait(30), "job.log() did not return"
        own_redis.start()
        runner.join(60)
    assert not runner.is_alive()
    stored = queue.get_job_by_id(job.id)
    assert stored is not None and stored.state is JobState.COMPLETED and stored.result == "sent"
    assert "log line dropped, the backend kept failing it" in caplog.text
    queue.close()
