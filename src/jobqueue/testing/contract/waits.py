"""Blocking waits: ``wait_for_work`` is woken (not polling) by a submit, a resume or a
promote, and times out when idle; ``wait_for_finish`` returns the finished job.
"""

from __future__ import annotations

import threading

from jobqueue.engine import Engine
from jobqueue.job import JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.schedules import SUBMITTED, claim_tick
from jobqueue.testing.contract.support import ContractBase, MakeJob, spec


class WaitsContract(ContractBase):
    """Contract tests of the blocking waits (see the module docstring)."""

    # -- wait_for_work -----------------------------------------------------------------------------

    def test_wait_for_work_is_woken_by_submit(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        result: list[bool] = []
        about_to_block = clock.read_elsewhere()  # the waiter reads "now" to size its wait
        waiter = threading.Thread(target=lambda: result.append(backend.wait_for_work(["a"], 20)))
        waiter.start()
        assert about_to_block.wait(10), "wait_for_work never looked at the clock"
        backend.submit(new_job())
        waiter.join(timeout=15)  # well under its 20 s: only a wake-up ends it in time
        assert not waiter.is_alive(), "wait_for_work was not woken by a submit"
        assert result == [True]
        assert backend.claim(spec("a")) is not None

    def test_wait_for_work_times_out_when_idle(self, backend: Engine) -> None:
        assert backend.wait_for_work(["a"], 0.2) is False

    def test_resume_wakes_an_idle_waiter(self, backend: Engine, new_job: MakeJob) -> None:
        backend.pause("a")
        backend.submit(new_job("a"))
        woke: list[bool] = []
        waiter = threading.Thread(target=lambda: woke.append(backend.wait_for_work(["a"], 30)))
        waiter.start()
        backend.resume("a")
        waiter.join(20)
        assert not waiter.is_alive() and woke, "resume did not wake the waiting dispatcher"
        assert backend.claim(spec("a")) is not None

    def test_promote_wakes_an_idle_waiter(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job(run_at=clock() + 3600))
        woke: list[bool] = []
        about_to_block = clock.read_elsewhere()  # the waiter reads "now" to size its wait
        waiter = threading.Thread(target=lambda: woke.append(backend.wait_for_work(["a"], 30)))
        waiter.start()
        assert about_to_block.wait(10), "wait_for_work never looked at the clock"
        assert backend.promote(job.id) is not None
        waiter.join(20)  # well under its 30 s: only a wake-up ends it in time
        assert not waiter.is_alive() and woke == [True], "promote did not wake the waiter"

    def test_a_submitted_tick_wakes_idle_dispatchers(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        result: list[bool] = []
        about_to_block = clock.read_elsewhere()
        waiter = threading.Thread(target=lambda: result.append(backend.wait_for_work(["a"], 20)))
        waiter.start()
        assert about_to_block.wait(10), "wait_for_work never looked at the clock"
        assert claim_tick(backend, "s", 1, new_job()).outcome is SUBMITTED
        waiter.join(timeout=15)
        assert not waiter.is_alive(), "wait_for_work was not woken by a submitted tick"
        assert result == [True]

    # -- wait_for_finish ---------------------------------------------------------------------------

    def test_wait_for_finish(self, backend: Engine, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        assert backend.wait_for_finish(job.id, 0.1) is None
        claim = self._claim(backend, "a")
        finisher = threading.Timer(0.2, backend.complete, args=(job.id, claim.token, "r", None))
        finisher.start()
        done = backend.wait_for_finish(job.id, 20)
        finisher.join()
        assert done is not None and done.state is JobState.COMPLETED and done.result == "r"
