"""Periodic schedules: ``claim_tick`` (the high-water mark that makes each (schedule, tick)
submit at most one job), the missed and skipped counters, the overlap rules, and the job a
tick submits, stored as ``submit`` stores it. Pauses, records and racing schedulers are in
``schedule_records``.
"""

from __future__ import annotations

import pytest

from jobqueue.backend import (
    Retention,
    ScheduleRecord,
    TickClaim,
    TickEntry,
    TickOutcome,
    TickResult,
    WorkSpec,
)
from jobqueue.engine import Engine
from jobqueue.errors import InvalidArgumentError, NotSerializableError
from jobqueue.job import Job, JobError, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.support import ContractBase, MakeJob, OpenBackend

T0 = 1_700_000_040.0  # a whole minute
DEFINITION = '{"every":60}'

SUBMITTED = TickOutcome.SUBMITTED
RECORDED = TickOutcome.RECORDED
ALREADY = TickOutcome.ALREADY_CLAIMED
SKIPPED = TickOutcome.OVERLAP_SKIPPED
PAUSED = TickOutcome.PAUSED


def tick(n: int) -> float:
    """The n-th tick of a once-a-minute schedule."""
    return T0 + 60.0 * n


def claim_tick(
    backend: Engine,
    schedule: str,
    n: int,
    job: Job | None,
    *,
    missed: int = 0,
    overlap: str = "skip",
    definition: str = DEFINITION,
) -> TickResult:
    return backend.claim_tick(TickClaim(schedule, definition, tick(n), job, missed, overlap))


def schedule_of(backend: Engine, name: str) -> ScheduleRecord:
    record = backend.schedule_record(name)
    assert record is not None, f"schedule {name!r} has no record"
    return record


def total(backend: Engine) -> int:
    return sum(backend.count_by_state().values())


class ScheduleContract(ContractBase):
    """Contract tests of periodic schedules' tick claims (see the module docstring)."""

    # -- the high-water mark -----------------------------------------------------------------------

    def test_a_first_claim_without_a_job_records_the_baseline(
        self, backend: Engine, clock: ManualClock
    ) -> None:
        assert backend.schedule_record("nightly") is None
        assert backend.schedule_records() == []
        result = claim_tick(backend, "nightly", 0, None)
        assert result == TickResult(RECORDED, None)
        assert schedule_of(backend, "nightly") == ScheduleRecord(
            name="nightly",
            definition=DEFINITION,
            last_tick=tick(0),
            last_job_id=None,
            paused=False,
            missed=0,
            skipped=0,
            updated_at=clock(),
            recent=(TickEntry(tick(0), RECORDED, None),),
        )
        assert total(backend) == 0
        assert claim_tick(backend, "nightly", 0, None).outcome is ALREADY

    def test_a_tick_submits_once_and_older_ticks_are_already_claimed(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        claim_tick(backend, "s", 0, None)
        clock.advance(60)
        result = claim_tick(backend, "s", 1, new_job(data={"tick": 1}))
        assert result.outcome is SUBMITTED and result.job is not None
        job = result.job
        assert job.id and job.state is JobState.WAITING and job.data == {"tick": 1}
        stored = backend.get(job.id)
        assert stored is not None and stored.to_dict() == job.to_dict()
        after = schedule_of(backend, "s")
        assert (after.last_tick, after.last_job_id, after.updated_at) == (tick(1), job.id, clock())
        assert after.recent[0] == TickEntry(tick(1), SUBMITTED, job.id)
        clock.advance(5)
        for n in (1, 0, -3):  # the same tick again, and older ones: nothing changes
            again = claim_tick(backend, "s", n, new_job(data={"tick": n}), missed=4)
            assert again == TickResult(ALREADY, None)
        assert schedule_of(backend, "s") == after
        assert total(backend) == 1

    def test_ascending_ticks_each_submit_once(self, backend: Engine, new_job: MakeJob) -> None:
        ids = []
        for n in range(1, 8):
            result = claim_tick(backend, "s", n, new_job(data=n), overlap="allow")
            assert result.outcome is SUBMITTED and result.job is not None
            ids.append(result.job.id)
            assert claim_tick(backend, "s", n, new_job(data=n), overlap="allow").outcome is ALREADY
        assert len(set(ids)) == 7
        assert backend.count_by_state()[JobState.WAITING] == 7
        record = schedule_of(backend, "s")
        assert record.last_job_id == ids[-1] and record.last_tick == tick(7)
        assert [(e.tick, e.outcome, e.job_id) for e in record.recent] == [
            (tick(n), SUBMITTED, ids[n - 1]) for n in range(7, 0, -1)
        ]
        assert (record.missed, record.skipped) == (0, 0)

    def test_the_definition_follows_the_winning_claims(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        claim_tick(backend, "s", 1, None, definition='{"every":60}')
        claim_tick(backend, "s", 1, None, definition='{"every":5}')  # lost: not stored
        assert schedule_of(backend, "s").definition == '{"every":60}'
        claim_tick(backend, "s", 2, None, definition='{"every":30}')
        assert schedule_of(backend, "s").definition == '{"every":30}'

    def test_missed_and_skipped_are_counted_by_winning_claims(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        claim_tick(backend, "s", 0, None)
        assert claim_tick(backend, "s", 4, new_job(), missed=3).outcome is SUBMITTED
        assert claim_tick(backend, "s", 4, new_job(), missed=9).outcome is ALREADY
        record = schedule_of(backend, "s")
        assert (record.missed, record.skipped) == (3, 0)
        assert claim_tick(backend, "s", 7, new_job(), missed=2).outcome is SKIPPED
        assert claim_tick(backend, "s", 8, None, missed=1).outcome is RECORDED
        record = schedule_of(backend, "s")
        assert (record.missed, record.skipped) == (6, 1)
        assert [e.outcome for e in record.recent] == [RECORDED, SKIPPED, SUBMITTED, RECORDED]

    # -- overlap -----------------------------------------------------------------------------------

    def _previous_job_in(self, backend: Engine, name: str, state: str) -> None:
        """Move the only job of worker ``name`` (just submitted, waiting or delayed) on."""
        job = backend.list_jobs(JobState.WAITING) + backend.list_jobs(JobState.DELAYED)
        (mine,) = [j for j in job if j.name == name]
        if state in ("waiting", "delayed"):
            assert mine.state is JobState(state)
            return
        if state == "cancelled":
            assert backend.cancel(mine.id) is JobState.CANCELLED
            return
        if state == "removed":
            assert backend.remove(mine.id)
            return
        claim = backend.claim(WorkSpec((name,), 30.0))
        assert claim is not None and claim.job.id == mine.id
        if state == "completed":
            backend.complete(mine.id, claim.token, None, None)
        elif state == "failed":
            backend.fail(mine.id, claim.token, JobError("E", "x"), None)
        assert _read_state(backend, mine.id) is JobState(state)

    @pytest.mark.parametrize("overlap", ["skip", "allow", "queue"])
    def test_overlap_against_the_previous_tick_job(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock, overlap: str
    ) -> None:
        states = ["waiting", "delayed", "active", "completed", "failed", "cancelled", "removed"]
        blocked = {"skip": {"waiting", "delayed", "active"}, "queue": {"waiting", "delayed"}}
        for state in states:
            name = f"w-{state}"
            run_at = clock() + 3600 if state == "delayed" else clock()
            first = claim_tick(backend, name, 1, new_job(name, run_at=run_at), overlap=overlap)
            assert first.outcome is SUBMITTED and first.job is not None
            self._previous_job_in(backend, name, state)
            before = total(backend)
            second = claim_tick(backend, name, 2, new_job(name), overlap=overlap)
            record = schedule_of(backend, name)
            if state in blocked.get(overlap, set()):
                assert second == TickResult(SKIPPED, None), (overlap, state)
                assert total(backend) == before
                assert record.last_job_id == first.job.id and record.skipped == 1
                assert record.recent[0] == TickEntry(tick(2), SKIPPED, first.job.id)
            else:
                assert second.outcome is SUBMITTED and second.job is not None, (overlap, state)
                assert total(backend) == before + 1
                assert record.last_job_id == second.job.id and record.skipped == 0
                assert record.recent[0] == TickEntry(tick(2), SUBMITTED, second.job.id)
            assert record.last_tick == tick(2)

    def test_a_purged_or_retained_away_last_job_no_longer_blocks(
        self, open_backend: OpenBackend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend = open_backend(retention=Retention(completed_count=0))
        first = claim_tick(backend, "s", 1, new_job())
        assert first.job is not None
        claim = backend.claim(WorkSpec(("a",), 30.0))
        assert claim is not None and claim.job.id == first.job.id
        backend.complete(first.job.id, claim.token, None, None)
        backend.maintain()  # retention keeps no completed job
        assert backend.get(first.job.id) is None
        second = claim_tick(backend, "s", 2, new_job())
        assert second.outcome is SUBMITTED and second.job is not None
        claim = backend.claim(WorkSpec(("a",), 30.0))
        assert claim is not None
        backend.fail(second.job.id, claim.token, JobError("E", "x"), None)
        assert backend.purge(JobState.FAILED) == 1
        assert schedule_of(backend, "s").last_job_id == second.job.id  # kept, pointing at nothing
        assert claim_tick(backend, "s", 3, new_job()).outcome is SUBMITTED

    def test_a_unique_key_held_by_a_live_job_skips_the_tick(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        holder = backend.submit(new_job(unique_key="report"))
        result = claim_tick(backend, "s", 1, new_job(unique_key="report"), overlap="allow")
        assert result == TickResult(SKIPPED, None)
        assert total(backend) == 1
        record = schedule_of(backend, "s")
        assert (record.last_tick, record.last_job_id, record.skipped) == (tick(1), None, 1)
        assert record.recent == (TickEntry(tick(1), SKIPPED, holder.id),)
        claim = backend.claim(WorkSpec(("a",), 30.0))
        assert claim is not None and claim.job.id == holder.id
        backend.complete(holder.id, claim.token, None, None)
        fresh = claim_tick(backend, "s", 2, new_job(unique_key="report"), overlap="allow")
        assert fresh.outcome is SUBMITTED and fresh.job is not None
        assert fresh.job.id != holder.id and not fresh.job.deduplicated
        assert schedule_of(backend, "s").last_job_id == fresh.job.id

    # -- the job, as submit stores it --------------------------------------------------------------

    def test_the_job_is_stored_as_submit_stores_it(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = new_job("report", data={"day": "mon"}, title="Monday", priority=3)
        later = claim_tick(backend, "s", 1, new_job("report", run_at=clock() + 30), overlap="allow")
        assert later.job is not None and later.job.state is JobState.DELAYED
        now = claim_tick(backend, "s", 2, job, overlap="allow")
        assert now.job is not None and now.job.state is JobState.WAITING
        for made in (later.job, now.job):
            stored = backend.get(made.id)
            assert stored is not None and stored.to_dict() == made.to_dict()
        assert (now.job.title, now.job.priority, now.job.data) == ("Monday", 3, {"day": "mon"})
        counts = backend.count_by_name()["report"]
        assert (counts[JobState.WAITING], counts[JobState.DELAYED]) == (1, 1)
        claim = backend.claim(WorkSpec(("report",), 30.0))
        assert claim is not None and claim.job.id == now.job.id

    def test_a_refused_job_changes_nothing(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        bad = new_job(data={"not json": {1, 2}})
        with pytest.raises(NotSerializableError):
            claim_tick(backend, "fresh", 1, bad)
        assert backend.schedule_record("fresh") is None
        claim_tick(backend, "s", 1, None)
        before = schedule_of(backend, "s")
        clock.advance(60)
        with pytest.raises(NotSerializableError):
            claim_tick(backend, "s", 2, bad, missed=3)
        assert schedule_of(backend, "s") == before
        assert total(backend) == 0
        assert claim_tick(backend, "s", 2, new_job()).outcome is SUBMITTED  # the tick is still open

    def test_a_malformed_claim_cannot_be_made(self, new_job: MakeJob) -> None:
        for schedule, definition, at, missed, overlap in [
            ("", DEFINITION, T0, 0, "skip"),
            (1, DEFINITION, T0, 0, "skip"),
            ("s", "not json", T0, 0, "skip"),
            ("s", DEFINITION, T0 + 0.5, 0, "skip"),
            ("s", DEFINITION, float("nan"), 0, "skip"),
            ("s", DEFINITION, -60.0, 0, "skip"),
            ("s", DEFINITION, True, 0, "skip"),
            ("s", DEFINITION, T0, -1, "skip"),
            ("s", DEFINITION, T0, 0, "sometimes"),
        ]:
            with pytest.raises(InvalidArgumentError):
                TickClaim(schedule, definition, at, new_job(), missed, overlap)  # type: ignore[arg-type]
        assert TickClaim("s", DEFINITION, int(T0), None).tick == T0


def _read_state(backend: Engine, job_id: str) -> JobState | None:
    job = backend.get(job_id)
    return None if job is None else job.state
