"""The operator's half of the contract: what a dashboard reads and does beyond the control
plane -- lease deadlines on reads, running a delayed job now, cancelling in bulk, and the
per-minute outcome counts behind throughput charts. Mixed into ``BackendContract``; uses its
fixtures (``backend``, ``open_backend``, ``new_job``, ``clock``)."""

from __future__ import annotations

from typing import Any

from jobqueue.backend import Backend, WorkSpec
from jobqueue.job import Job, JobError, JobState
from jobqueue.testing.clock import ManualClock

ERROR = JobError("ValueError", "boom", "Traceback ...")


def _spec(*names: str, lease: float = 30.0) -> WorkSpec:
    return WorkSpec(names=names, lease_seconds=lease)


def _read(backend: Backend, job_id: str) -> Job:
    job = backend.get(job_id)
    assert job is not None, f"job {job_id} is gone"
    return job


class OperatorContract:
    """Contract tests of the operator's reads and bulk steering (see the module docstring)."""

    # -- lease deadlines on reads -------------------------------------------------------------

    def test_reads_show_the_lease_deadline_of_active_jobs(
        self, backend: Backend, new_job: Any, clock: ManualClock
    ) -> None:
        first = backend.submit(new_job(unique_key="k"))
        waiting = backend.submit(new_job())
        assert _read(backend, first.id).lease_expires_at is None
        claim = backend.claim(_spec("a", lease=10))
        assert claim is not None and claim.job.id == first.id
        assert claim.job.lease_expires_at == clock() + 10
        assert _read(backend, first.id).lease_expires_at == clock() + 10
        clock.advance(4)
        assert backend.renew(first.id, claim.token, 10)
        renewed = clock() + 10
        assert _read(backend, first.id).lease_expires_at == renewed
        assert [j.lease_expires_at for j in backend.list_jobs(JobState.ACTIVE)] == [renewed]
        assert [j.lease_expires_at for j in backend.list_jobs(JobState.WAITING)] == [None]
        held = backend.submit(new_job(unique_key="k"))  # the live job holding the key
        assert held.id == first.id and held.lease_expires_at == renewed
        as_dict = _read(backend, first.id).to_dict()
        assert as_dict["lease_expires_at"] == renewed
        assert Job.from_dict(as_dict).lease_expires_at == renewed
        clock.advance(20)  # expired, not yet recovered: a read still shows the old deadline
        assert _read(backend, first.id).lease_expires_at == renewed
        backend.maintain()
        assert _read(backend, first.id).lease_expires_at is None  # back to waiting
        claim = backend.claim(_spec("a", lease=10))
        assert claim is not None
        backend.complete(claim.job.id, claim.token, None, None)
        assert _read(backend, claim.job.id).lease_expires_at is None
        assert _read(backend, waiting.id).lease_expires_at is None
