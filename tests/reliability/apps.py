"""The application the reliability suite's dispatcher processes run:
``python -m jobqueue --app tests.reliability.apps:queue worker``.

``queue()`` reads its settings from the environment (``JQ_REL_URL``, ``JQ_REL_NAMESPACE``,
``JQ_REL_LEASE``, ``JQ_REL_GRACE``, ``JQ_REL_MAX_STALLS``) so each test configures its own
processes. Handlers leave their side effects in hashes of the test's namespace
(``jq:{NS}:test:*``), where the test reads them and ``delete_namespace`` removes them.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from jobqueue import JobQueue, hookimpl
from jobqueue.job import Job


def queue() -> JobQueue:
    return build(
        os.environ["JQ_REL_URL"],
        os.environ["JQ_REL_NAMESPACE"],
        lease_seconds=float(os.environ.get("JQ_REL_LEASE", "2")),
        grace_seconds=float(os.environ.get("JQ_REL_GRACE", "5")),
        max_stalls=int(os.environ.get("JQ_REL_MAX_STALLS", "3")),
    )


def build(url: str, namespace: str, **options: Any) -> JobQueue:
    """The queue with every test worker registered (also used in-process to submit)."""
    jobs = JobQueue(url, namespace=namespace, load_entrypoints=False, **options)
    effects = Effects(url, namespace)
    jobs.plugins.register(effects)

    # Retried: its side effect lives in Redis too, and fails while Redis restarts.
    @jobs.worker("effect", attempts=20, backoff=0.1)
    def effect(job: Any) -> dict[str, str]:
        """Counts its runs, then takes ``data["sleep"]`` seconds."""
        effects.incr("effects", job.id)
        time.sleep(job.data.get("sleep", 0))
        return {"done": job.id}

    @jobs.worker("sleepy")
    def sleepy(job: Any) -> dict[str, int]:
        """Marks its start, sleeps ``data["seconds"]``, marks its end."""
        effects.mark("started", job.id)
        time.sleep(job.data["seconds"])
        effects.mark("finished", job.id)
        return {"pid": os.getpid()}

    @jobs.worker("steps", attempts=3)
    def steps(job: Any) -> dict[str, int]:
        """Marks its start, works ``data["seconds"]`` in 50 ms steps (Python code between
        them, where an interrupt lands), marks its end."""
        effects.mark("started", job.id)
        until = time.monotonic() + job.data["seconds"]
        while time.monotonic() < until:
            time.sleep(0.05)
        effects.mark("finished", job.id)
        return {"pid": os.getpid()}

    @jobs.worker("boom", attempts=2)
    def boom(job: Any) -> None:
        effects.incr("effects", job.id)
        raise ValueError(f"boom on purpose (job {job.id})")

    @jobs.worker("hang", timeout=0.5)
    def hang(job: Any) -> None:
        """Hangs in Python code: the timeout interrupts it at once (a long C call such as
        one ``time.sleep(3600)`` would be interrupted only when it returns)."""
        effects.incr("effects", job.id)
        while True:
            time.sleep(0.01)

    @jobs.worker("blocked", exclusive=True)
    def blocked(job: Any) -> dict[str, int]:
        """Exclusive; blocks in one C call of ``data["seconds"]``, recording its run's start
        and end (with this pid) in the list ``test:runs``."""
        effects.record_run("start", job.id)
        try:
            time.sleep(job.data["seconds"])
        finally:
            effects.record_run("end", job.id)
        return {"pid": os.getpid()}

    @jobs.worker("not_json")
    def not_json(job: Any) -> Any:
        effects.incr("effects", job.id)
        return {"a set": {1, 2}}

    @jobs.worker("exit")
    def exit_process(job: Any) -> None:
        effects.incr("effects", job.id)
        os._exit(1)

    return jobs


class Effects:
    """Side effects in the test namespace, plus a plugin counting completions announced."""

    def __init__(self, url: str, namespace: str) -> None:
        self.client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
        self.prefix = f"jq:{{{namespace}}}:test:"

    def incr(self, table: str, job_id: str) -> None:
        self.client.hincrby(self.prefix + table, job_id, 1)

    def mark(self, table: str, job_id: str) -> None:
        self.client.hset(self.prefix + table, job_id, repr(time.time()))

    def record_run(self, event: str, job_id: str) -> None:
        self.client.rpush(self.prefix + "runs", f"{event} {os.getpid()} {job_id} {time.time()!r}")

    @hookimpl
    def jobqueue_job_completed(self, job: Job) -> None:
        """Every completion the backend accepted (the dispatcher announces only those)."""
        self.incr("completions", job.id)
