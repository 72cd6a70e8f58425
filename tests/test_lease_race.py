"""A heartbeat that crosses an outcome's write (issue 20; found by bench/names.py): the beat
took its list of leases while the job was still held, but reached the backend after the
write had ended the job, so the backend answered "lost" for that token. That lease was used
up, not lost: no ``jobqueue_lease_lost``, no "lost the lease" warning, the job completed once.
(At 2,000 worker names a Redis claim takes milliseconds, and the beat queued behind a
``finish_many`` answered before the slot had forgotten the leases it had just recorded.)"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from jobqueue import Dispatcher, JobQueue, hookimpl
from jobqueue.job import Job, JobState

LEASE = 0.3


class Heard:
    def __init__(self) -> None:
        self.lost: list[str] = []

    @hookimpl
    def jobqueue_lease_lost(self, job: Job) -> None:
        self.lost.append(job.id)


class BeatAfterWrite:
    """The queue's backend; each outcome write, once stored, waits until a whole heartbeat
    has begun and been answered after it -- the interleaving a slow backend makes likely."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._beats = 0
        self._changed = threading.Condition()
        self.crossed = 0  # writes a later beat was answered for before the write returned

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if name not in ("complete", "finish_many"):
            return attr

        def write_then_beat(*args: Any) -> Any:
            written = attr(*args)
            with self._changed:
                # The beat after the next one starts only once the next one's answers were
                # handled by the dispatcher (its beats are one after another).
                wanted = self._beats + 2
                if self._changed.wait_for(lambda: self._beats >= wanted, timeout=10):
                    self.crossed += 1
            return written

        return write_then_beat

    def heartbeat(self, info: Any, leases: Any, lease_seconds: float) -> Any:
        with self._changed:
            self._beats += 1
            self._changed.notify_all()
        return self._backend.heartbeat(info, leases, lease_seconds)


@pytest.mark.parametrize("prefetch", [1, 2])
def test_a_beat_answered_after_the_outcome_was_written_is_not_a_lost_lease(
    prefetch: int, caplog: pytest.LogCaptureFixture
) -> None:
    heard = Heard()
    queue = JobQueue("memory://", load_entrypoints=False, plugins=[heard], lease_seconds=LEASE)
    queue.add_worker("w", lambda job: None)
    jobs = [queue.submit_job("w", n).id for n in range(prefetch)]
    backend = BeatAfterWrite(queue.backend)
    dispatcher = Dispatcher(
        backend,  # type: ignore[arg-type]
        queue.registry,
        queue.plugins.hook,
        lease_seconds=LEASE,
        prefetch=prefetch,
    )
    with caplog.at_level(logging.WARNING, logger="jobqueue"):
        dispatcher.run(burst=True)
    assert backend.crossed >= 1  # the race was provoked
    assert heard.lost == []
    assert "lost the lease" not in caplog.text
    assert dispatcher.outcomes.get("lost", 0) == 0
    for job_id in jobs:
        job = queue.backend.get(job_id)
        assert job is not None and job.state is JobState.COMPLETED and job.attempts_made == 1
