"""Ordering: which job a claim takes (priority, then submission order; due delayed jobs;
only the named workers; ``max_active`` caps; paused names) and the order of listings.
"""

from __future__ import annotations

from jobqueue.engine import Engine
from jobqueue.job import JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.support import ContractBase, MakeJob, spec


class OrderingContract(ContractBase):
    """Contract tests of claim and listing order (see the module docstring)."""

    # -- claim order -------------------------------------------------------------------------------

    def test_higher_priority_first_then_submission_order(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        for label, priority in [("l1", 0), ("h1", 5), ("l2", 0), ("h2", 5), ("n1", -3), ("l3", 0)]:
            backend.submit(new_job(data=label, priority=priority))
        order = [self._claim(backend, "a").job.data for _ in range(6)]
        assert order == ["h1", "h2", "l1", "l2", "l3", "n1"]

    def test_claim_only_named_workers(self, backend: Engine, new_job: MakeJob) -> None:
        backend.submit(new_job("other"))
        assert backend.claim(spec("a")) is None
        b = backend.submit(new_job("b", priority=1))
        a = backend.submit(new_job("a"))
        assert self._claim(backend, "a", "b").job.id == b.id
        assert self._claim(backend, "a", "b").job.id == a.id
        assert self._claim(backend, "other").job.name == "other"

    def test_submit_many_keeps_order(self, backend: Engine, new_job: MakeJob) -> None:
        stored = backend.submit_many([new_job(data={"i": i}) for i in range(20)])
        assert [job.data["i"] for job in stored] == list(range(20))
        assert len({job.id for job in stored}) == 20
        claimed = [self._claim(backend, "a").job.data["i"] for _ in range(20)]
        assert claimed == list(range(20))

    def test_delayed_job_waits_until_due(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job(run_at=clock() + 60))
        assert job.state is JobState.DELAYED
        assert backend.claim(spec("a")) is None
        clock.advance(59)
        assert backend.claim(spec("a")) is None
        clock.advance(1)
        assert self._claim(backend, "a").job.id == job.id

    def test_due_delayed_job_respects_priority(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend.submit(new_job(data="now-low", priority=0))
        backend.submit(new_job(data="later-high", priority=9, run_at=clock() + 5))
        clock.advance(5)
        assert self._claim(backend, "a").job.data == "later-high"

    def test_claim_many_in_claim_order(self, backend: Engine, new_job: MakeJob) -> None:
        for i in range(5):
            backend.submit(new_job(data=i, priority=1 if i == 3 else 0))
        claims = backend.claim_many(spec("a"), 3)
        assert [c.job.data for c in claims] == [3, 0, 1]
        assert len({c.token for c in claims}) == 3
        assert all(c.job.state is JobState.ACTIVE for c in claims)
        assert [c.job.data for c in backend.claim_many(spec("a"), 10)] == [2, 4]
        assert backend.claim_many(spec("a"), 10) == []

    # -- caps and pauses ---------------------------------------------------------------------------

    def test_max_active_caps_running_jobs_per_name(self, backend: Engine, new_job: MakeJob) -> None:
        for _ in range(3):
            backend.submit(new_job("solo"))
        backend.submit(new_job("free"))
        capped = spec("solo", "free", solo=1)
        first = backend.claim(capped)
        assert first is not None and first.job.name == "solo"
        second = backend.claim(capped)
        assert second is not None and second.job.name == "free"
        assert backend.claim(capped) is None
        backend.complete(first.job.id, first.token, None, None)
        third = backend.claim(capped)
        assert third is not None and third.job.name == "solo"

    def test_pause_stops_claims_of_that_name_only(self, backend: Engine, new_job: MakeJob) -> None:
        a = backend.submit(new_job("a"))
        backend.pause("a")
        assert backend.paused() == frozenset({"a"})
        backend.submit(new_job("a"))  # submitting to a paused name still works
        assert backend.claim(spec("a")) is None
        b = backend.submit(new_job("b"))
        claim = backend.claim(spec("a", "b"))
        assert claim is not None and claim.job.id == b.id
        assert backend.wait_for_work(["a"], 0.05) is False  # nothing claimable: no spinning
        backend.resume("a")
        assert backend.paused() == frozenset()
        claim = backend.claim(spec("a"))
        assert claim is not None and claim.job.id == a.id

    # -- listing order -----------------------------------------------------------------------------

    def test_count_and_list_by_state(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        waiting = [backend.submit(new_job(data=i)) for i in range(3)]
        delayed = backend.submit(new_job(run_at=clock() + 100))
        claim = self._claim(backend, "a")
        backend.complete(claim.job.id, claim.token, None, None)
        claim = self._claim(backend, "a")
        counts = backend.count_by_state()
        assert set(counts) == set(JobState)
        assert counts == {
            JobState.WAITING: 1,
            JobState.DELAYED: 1,
            JobState.ACTIVE: 1,
            JobState.COMPLETED: 1,
            JobState.FAILED: 0,
            JobState.CANCELLED: 0,
            JobState.BLOCKED: 0,
        }
        assert [j.id for j in backend.list_jobs(JobState.WAITING)] == [waiting[2].id]
        assert [j.id for j in backend.list_jobs(JobState.DELAYED)] == [delayed.id]
        assert [j.id for j in backend.list_jobs(JobState.ACTIVE)] == [waiting[1].id]
        assert [j.id for j in backend.list_jobs(JobState.COMPLETED)] == [waiting[0].id]
        assert backend.list_jobs(JobState.FAILED) == []

    def test_list_pages_in_run_order(self, backend: Engine, new_job: MakeJob) -> None:
        jobs = [backend.submit(new_job(data=i, priority=i % 2)) for i in range(10)]
        expected = [j.id for j in jobs if j.priority == 1] + [j.id for j in jobs if j.priority == 0]
        listed = backend.list_jobs(JobState.WAITING, 0, 4) + backend.list_jobs(
            JobState.WAITING, 4, 100
        )
        assert [j.id for j in listed] == expected

    def test_finished_jobs_list_newest_first(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        ids = []
        for _ in range(3):
            job = backend.submit(new_job())
            claim = self._claim(backend, "a")
            clock.advance(1)
            backend.complete(job.id, claim.token, None, None)
            ids.append(job.id)
        assert [j.id for j in backend.list_jobs(JobState.COMPLETED)] == ids[::-1]
