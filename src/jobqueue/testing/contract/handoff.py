"""The optional hand-off (``HandoffBackend.wait_for_claim``): an idle waiter claims a ready
job at once, or is handed the next one that becomes ready -- already claimed under its own
lease, with the fencing, claim order, caps and pauses of ``claim`` -- or is woken to claim for
itself. Not part of ``BackendContract``: a backend that offers the capability adds this part to
its test class, and a backend that does not is never tested (nor skipped) for it."""

from __future__ import annotations

import threading

import pytest

from jobqueue.backend import Claim
from jobqueue.engine import Engine
from jobqueue.errors import LeaseLostError
from jobqueue.job import JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.support import ContractBase, MakeJob, read, spec


class HandoffContract(ContractBase):
    """Contract tests of the optional hand-off (see the module docstring)."""

    def _handing(self, backend: Engine) -> Engine:
        assert backend.handoff is not None, (
            "HandoffContract is for a backend that offers HandoffBackend.wait_for_claim"
        )
        return backend

    def test_a_waiter_claims_a_ready_job_at_once_under_its_lease(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        handing = self._handing(backend)
        job = handing.submit(new_job())
        claim = handing.wait_for_claim(spec("a", lease=10), 20)
        assert isinstance(claim, Claim) and claim.job.id == job.id
        assert claim.job.state is JobState.ACTIVE and claim.job.attempts_made == 1
        assert claim.lease_expires_at == clock() + 10
        assert read(handing, job.id).state is JobState.ACTIVE
        assert handing.claim(spec("a")) is None  # nobody else can take it
        handing.complete(job.id, claim.token, "done", None)
        assert read(handing, job.id).state is JobState.COMPLETED

    def test_a_waiter_takes_the_job_a_claim_would(self, backend: Engine, new_job: MakeJob) -> None:
        handing = self._handing(backend)
        handing.submit(new_job(data="low"))
        high = handing.submit(new_job(data="high", priority=5))
        handing.submit(new_job("other", priority=9))
        claim = handing.wait_for_claim(spec("a"), 20)
        assert isinstance(claim, Claim) and claim.job.id == high.id

    def test_a_wait_with_nothing_ready_ends_empty_and_leaves_nothing_behind(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        handing = self._handing(backend)
        assert handing.wait_for_claim(spec("a", "b"), 0.05) is False
        job = handing.submit(new_job())  # the wait is over: nobody is handed this job
        assert read(handing, job.id).state is JobState.WAITING
        assert handing.count_by_state()[JobState.ACTIVE] == 0

    def test_a_blocked_waiter_gets_the_submitted_job_once(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        handing = self._handing(backend)
        result: list[Claim | bool] = []
        about_to_block = clock.read_elsewhere()  # the waiter reads "now" to size its wait
        waiter = threading.Thread(
            target=lambda: result.append(handing.wait_for_claim(spec("a", lease=10), 20))
        )
        waiter.start()
        assert about_to_block.wait(10), "wait_for_claim never looked at the clock"
        job = handing.submit(new_job(data={"n": 1}))
        waiter.join(timeout=15)  # well under its 20 s: only a hand-off or a wake-up ends it
        assert not waiter.is_alive(), "the waiter was neither handed the job nor woken"
        (got,) = result
        if isinstance(got, Claim):  # handed over, already claimed under the waiter's lease
            claim = got
            assert claim.job.data == {"n": 1} and claim.job.state is JobState.ACTIVE
            assert handing.claim(spec("a")) is None
        else:  # woken to claim for itself
            assert got is True
            taken = handing.claim(spec("a", lease=10))
            assert taken is not None
            claim = taken
        assert claim.job.id == job.id and claim.job.attempts_made == 1
        handing.complete(job.id, claim.token, "done", None)
        with pytest.raises(LeaseLostError):  # the lease was one, and it is spent
            handing.complete(job.id, "not-the-token", "late", None)
        assert read(handing, job.id).state is JobState.COMPLETED

    def test_a_capped_or_paused_name_is_never_handed_over(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        handing = self._handing(backend)
        handing.submit_many([new_job(), new_job()])
        held = handing.claim(spec("a"))
        assert held is not None
        capped = handing.wait_for_claim(spec("a", a=1), 0.05)  # one already active
        assert not isinstance(capped, Claim)
        handing.pause("a")
        handing.complete(held.job.id, held.token, None, None)  # the cap no longer binds
        paused = handing.wait_for_claim(spec("a"), 0.05)
        assert not isinstance(paused, Claim)
        assert handing.count_by_state()[JobState.WAITING] == 1
        handing.resume("a")
        resumed = handing.wait_for_claim(spec("a"), 20)
        if not isinstance(resumed, Claim):
            assert resumed is True
            assert handing.claim(spec("a")) is not None
        assert handing.count_by_state()[JobState.ACTIVE] == 1

    def test_a_handed_lease_expires_and_is_recovered_like_any(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        handing = self._handing(backend)
        job = handing.submit(new_job())
        claim = handing.wait_for_claim(spec("a", lease=5), 20)
        assert isinstance(claim, Claim) and claim.job.id == job.id
        clock.advance(6)
        assert [j.id for j in handing.recover_expired()] == [job.id]
        with pytest.raises(LeaseLostError):
            handing.complete(job.id, claim.token, "late", None)
        again = handing.wait_for_claim(spec("a"), 20)
        assert isinstance(again, Claim) and again.job.id == job.id and again.job.stalls == 1
