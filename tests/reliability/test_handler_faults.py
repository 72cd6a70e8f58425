"""Part 8 -- handler faults, in a real dispatcher process (the ``jobqueue worker`` CLI).

A handler that raises (retried once, then failed), one that hangs past its timeout, one that
returns something that is not JSON, and one that kills its own process with ``os._exit(1)``:
each job ends FAILED with an error saying what happened, and the job queued after each still
runs. The ``os._exit`` job is recovered when its lease expires and retried in a replacement
process, which it kills too; past ``max_stalls=1`` it fails as stalled.
"""

from __future__ import annotations

import time

import pytest

from jobqueue import JobQueue
from jobqueue.job import JobState
from tests.reliability import apps
from tests.reliability.support import (
    Processes,
    app_env,
    key,
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
    client = queue.backend.client  # type: ignore[attr-defined]
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
