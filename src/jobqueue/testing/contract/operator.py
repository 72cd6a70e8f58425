"""What an operator's dashboard reads: lease deadlines on reads, heartbeats and the
dispatchers' records -- and that reads never write.
"""

from __future__ import annotations

from jobqueue.backend import LeaseStatus
from jobqueue.engine import Engine
from jobqueue.job import Job, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.support import (
    ContractBase,
    MakeJob,
    dispatcher_info,
    name_counts,
    read,
    spec,
)


class OperatorContract(ContractBase):
    """Contract tests of the operator's reads (see the module docstring)."""

    # -- lease deadlines on reads ------------------------------------------------------------------

    def test_reads_show_the_lease_deadline_of_active_jobs(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        first = backend.submit(new_job(unique_key="k"))
        waiting = backend.submit(new_job())
        assert read(backend, first.id).lease_expires_at is None
        claim = backend.claim(spec("a", lease=10))
        assert claim is not None and claim.job.id == first.id
        assert claim.job.lease_expires_at == clock() + 10
        assert read(backend, first.id).lease_expires_at == clock() + 10
        clock.advance(4)
        assert backend.renew(first.id, claim.token, 10)
        renewed = clock() + 10
        assert read(backend, first.id).lease_expires_at == renewed
        assert [j.lease_expires_at for j in backend.list_jobs(JobState.ACTIVE)] == [renewed]
        assert [j.lease_expires_at for j in backend.list_jobs(JobState.WAITING)] == [None]
        held = backend.submit(new_job(unique_key="k"))  # the live job holding the key
        assert held.id == first.id and held.lease_expires_at == renewed
        as_dict = read(backend, first.id).to_dict()
        assert as_dict["lease_expires_at"] == renewed
        assert Job.from_dict(as_dict).lease_expires_at == renewed
        clock.advance(20)  # expired, not yet recovered: a read still shows the old deadline
        assert read(backend, first.id).lease_expires_at == renewed
        backend.maintain()
        assert read(backend, first.id).lease_expires_at is None  # back to waiting
        claim = backend.claim(spec("a", lease=10))
        assert claim is not None
        backend.complete(claim.job.id, claim.token, None, None)
        assert read(backend, claim.job.id).lease_expires_at is None
        assert read(backend, waiting.id).lease_expires_at is None

    # -- heartbeats and dispatchers ----------------------------------------------------------------

    def test_heartbeat_renews_every_lease_in_one_step(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        jobs = [backend.submit(new_job()) for _ in range(3)]
        claims = [backend.claim(spec("a", lease=10, dispatcher="d1")) for _ in jobs]
        leases = [(c.job.id, c.token) for c in claims if c is not None]
        clock.advance(8)
        assert backend.heartbeat(dispatcher_info(clock), leases, 10) == [LeaseStatus.HELD] * 3
        clock.advance(8)  # past the first deadline, within the renewed one
        backend.maintain()
        assert backend.claim(spec("a")) is None
        assert backend.count_by_state()[JobState.ACTIVE] == 3
        stolen = [(leases[0][0], "not-the-token"), *leases[1:]]
        statuses = backend.heartbeat(dispatcher_info(clock), stolen, 10)
        assert statuses == [LeaseStatus.LOST, LeaseStatus.HELD, LeaseStatus.HELD]

    def test_dispatchers_are_recorded_refreshed_and_forgotten(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        claim = backend.claim(spec("a", dispatcher="d1"))
        assert claim is not None
        backend.heartbeat(dispatcher_info(clock, "d1", names=("a", "b"), concurrency=2), [], 10)
        clock.advance(1)
        backend.heartbeat(
            dispatcher_info(clock, "d2", started_at=clock()), [(job.id, claim.token)], 10
        )
        listed = backend.dispatchers()
        assert [d.id for d in listed] == ["d1", "d2"]
        assert listed[0].names == ("a", "b") and listed[0].concurrency == 2
        assert listed[1].jobs == (job.id,) and listed[1].last_seen == clock()
        assert (listed[0].host, listed[0].pid) == ("host-1", 4242)
        stored = backend.get(job.id)
        assert stored is not None and stored.dispatcher == "d1"
        backend.remove_dispatcher("d2")  # a clean exit
        assert [d.id for d in backend.dispatchers()] == ["d1"]
        clock.advance(10)  # d1's last heartbeat is older than its lease: it died
        assert backend.dispatchers() == []
        backend.maintain()
        assert backend.dispatchers() == []

    # -- reads never write -------------------------------------------------------------------------

    def test_reads_never_write(self, backend: Engine, new_job: MakeJob, clock: ManualClock) -> None:
        """A due delayed job and an expired lease stay as they are until maintenance or a
        claim: counting, listing and reading are free of transitions."""
        due = backend.submit(new_job(run_at=clock() + 5))
        expired = backend.submit(new_job("b"))
        assert backend.claim(spec("b", lease=5)) is not None
        clock.advance(10)
        for _ in range(2):
            counts = backend.count_by_state()
            assert (counts[JobState.DELAYED], counts[JobState.ACTIVE]) == (1, 1)
            assert [j.id for j in backend.list_jobs(JobState.DELAYED)] == [due.id]
            assert [j.id for j in backend.list_jobs(JobState.ACTIVE)] == [expired.id]
            for job_id in (due.id, expired.id):
                backend.get(job_id)
            backend.paused()
            backend.dispatchers()
            assert backend.count_by_name() == {
                "a": name_counts(delayed=1),
                "b": name_counts(active=1),
            }
        assert [j.id for j in backend.maintain()] == [expired.id]  # and the due one promoted
        counts = backend.count_by_state()
        assert (counts[JobState.WAITING], counts[JobState.ACTIVE]) == (2, 0)
