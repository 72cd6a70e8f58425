"""Guards and fencing: a write through a lease token the job no longer holds is refused
(wrong token, expired or recovered lease, the job moved on or removed); a repeated outcome
with the same token reports what the first call stored and changes nothing; renewal extends
only a held lease.
"""

from __future__ import annotations

import pytest

from jobqueue.engine import Engine
from jobqueue.errors import LeaseLostError
from jobqueue.job import JobError, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.support import ContractBase, MakeJob, spec


class FencingContract(ContractBase):
    """Contract tests of guards and fencing (see the module docstring)."""

    # -- wrong tokens ------------------------------------------------------------------------------

    def test_complete_with_wrong_token_is_refused(self, backend: Engine, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        self._claim(backend, "a")
        with pytest.raises(LeaseLostError):
            backend.complete(job.id, "not-the-token", "r", None)
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.ACTIVE and stored.result is None

    def test_fail_with_wrong_token_is_refused(self, backend: Engine, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        self._claim(backend, "a")
        with pytest.raises(LeaseLostError):
            backend.fail(job.id, "wrong", JobError("E", "x"), None)

    # -- repeats: idempotent per lease token -------------------------------------------------------

    def test_repeated_outcomes_report_the_stored_one(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        # Outcomes are idempotent per lease token: a repeat reports what the first call did
        # and changes nothing (a repeated complete makes no second claim).
        done, failed, retried, released = (backend.submit(new_job(data=n)) for n in range(4))
        claim = self._claim(backend, "a")
        assert backend.complete(done.id, claim.token, 1, None) is None
        assert backend.complete(done.id, claim.token, 2, spec("a")) is None
        claim = self._claim(backend, "a")
        assert backend.fail(failed.id, claim.token, JobError("E", "x"), None) is JobState.FAILED
        assert backend.fail(failed.id, claim.token, JobError("E", "y"), None) is JobState.FAILED
        claim = self._claim(backend, "a")
        retry_at = clock() + 60
        assert backend.fail(retried.id, claim.token, JobError("E", "x"), retry_at) is (
            JobState.DELAYED
        )
        assert backend.fail(retried.id, claim.token, JobError("E", "y"), None) is (JobState.DELAYED)
        claim = self._claim(backend, "a")
        assert backend.release(released.id, claim.token) is True
        assert backend.release(released.id, claim.token) is True
        stored = {job.id: backend.get(job.id) for job in (done, failed, retried, released)}
        assert stored[done.id] is not None and stored[done.id].result == 1  # type: ignore[union-attr]
        assert stored[failed.id].error == JobError("E", "x")  # type: ignore[union-attr]
        assert stored[retried.id].error == JobError("E", "x")  # type: ignore[union-attr]
        assert stored[retried.id].state is JobState.DELAYED  # type: ignore[union-attr]
        assert stored[released.id].state is JobState.WAITING  # type: ignore[union-attr]
        assert stored[released.id].attempts_made == 0  # type: ignore[union-attr]
        assert len(stored[done.id].history) == 1  # type: ignore[union-attr]
        counts = backend.count_by_state()
        assert counts[JobState.ACTIVE] == 0 and counts[JobState.WAITING] == 1

    def test_repeated_finish_cancelled_reports_true(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a")
        backend.cancel(job.id)
        assert backend.finish_cancelled(job.id, claim.token, JobError("E", "stop")) is True
        assert backend.finish_cancelled(job.id, claim.token, None) is True
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.CANCELLED
        assert stored.error == JobError("E", "stop") and len(stored.history) == 1

    def test_a_different_outcome_on_repeat_is_refused(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        failed, completed, retried = (backend.submit(new_job(data=n)) for n in range(3))
        claim = self._claim(backend, "a")
        backend.fail(failed.id, claim.token, JobError("E", "x"), None)
        with pytest.raises(LeaseLostError):
            backend.complete(failed.id, claim.token, "r", None)
        assert backend.release(failed.id, claim.token) is False
        assert backend.finish_cancelled(failed.id, claim.token, None) is False
        claim = self._claim(backend, "a")
        backend.complete(completed.id, claim.token, 1, None)
        with pytest.raises(LeaseLostError):
            backend.fail(completed.id, claim.token, JobError("E", "x"), None)
        assert backend.release(completed.id, claim.token) is False
        claim = self._claim(backend, "a")
        backend.fail(retried.id, claim.token, JobError("E", "x"), clock() + 60)
        assert backend.release(retried.id, claim.token) is False  # waiting, but not released
        stored = backend.get(failed.id)
        assert stored is not None and stored.state is JobState.FAILED and stored.result is None
        stored = backend.get(completed.id)
        assert stored is not None and stored.state is JobState.COMPLETED and stored.error is None
        stored = backend.get(retried.id)
        assert stored is not None and stored.state is JobState.DELAYED
        assert stored.attempts_made == 1

    # -- leases ------------------------------------------------------------------------------------

    def test_recovered_lease_token_stays_fenced(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        old = self._claim(backend, "a", lease=5)
        clock.advance(6)
        assert [j.id for j in backend.recover_expired()] == [job.id]
        with pytest.raises(LeaseLostError):
            backend.complete(job.id, old.token, "late", None)
        with pytest.raises(LeaseLostError):
            backend.fail(job.id, old.token, JobError("E", "late"), None)
        assert backend.release(job.id, old.token) is False
        assert backend.finish_cancelled(job.id, old.token, None) is False
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.WAITING and stored.stalls == 1

    def test_old_token_is_fenced_once_the_job_moves_on(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        first = self._claim(backend, "a")
        assert backend.release(job.id, first.token) is True
        second = self._claim(backend, "a")  # claimed again: the released lease is over
        assert backend.release(job.id, first.token) is False
        assert backend.fail(job.id, second.token, JobError("E", "x"), None) is JobState.FAILED
        backend.retry(job.id)  # retried: the failed attempt's token is fenced too
        with pytest.raises(LeaseLostError):
            backend.fail(job.id, second.token, JobError("E", "x"), None)
        third = self._claim(backend, "a")
        backend.complete(job.id, third.token, "done", None)
        with pytest.raises(LeaseLostError):
            backend.complete(job.id, first.token, "late", None)
        assert backend.remove(job.id) is True  # removed: nothing answers a repeat
        with pytest.raises(LeaseLostError):
            backend.complete(job.id, third.token, "done", None)

    def test_expired_lease_is_recovered_and_fenced(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        old = self._claim(backend, "a", lease=10)
        clock.advance(10.5)
        backend.maintain()  # maintenance recovers it
        new = self._claim(backend, "a", lease=10)
        assert new.job.id == job.id and new.token != old.token
        assert new.job.stalls == 1 and new.job.attempts_made == 2
        assert backend.renew(job.id, old.token, 10) is False
        with pytest.raises(LeaseLostError):
            backend.complete(job.id, old.token, "late", None)
        with pytest.raises(LeaseLostError):
            backend.fail(job.id, old.token, JobError("E", "late"), None)
        backend.complete(job.id, new.token, "fresh", None)
        stored = backend.get(job.id)
        assert stored is not None and stored.result == "fresh"

    def test_expired_lease_cannot_complete_even_before_recovery(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a", lease=5)
        clock.advance(6)
        with pytest.raises(LeaseLostError):
            backend.complete(job.id, claim.token, "late", None)

    def test_renew_extends_the_lease(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a", lease=10)
        clock.advance(8)
        assert backend.renew(job.id, claim.token, 10) is True
        clock.advance(8)
        assert backend.claim(spec("a")) is None
        assert backend.renew(job.id, "wrong", 10) is False
        backend.complete(job.id, claim.token, None, None)
        assert backend.renew(job.id, claim.token, 10) is False
