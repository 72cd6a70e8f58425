"""Storage: submitting and reading jobs, and each move of a job -- claim, complete, fail,
release, progress, logs, remove, a batch of outcomes -- as one atomic step that stores exactly
what it was given.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from jobqueue.backend import Outcome
from jobqueue.engine import Engine
from jobqueue.errors import LeaseLostError, NotSerializableError
from jobqueue.job import JSON, MAX_LOGS, AttemptOutcome, Backoff, JobError, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.support import ContractBase, MakeJob, json_values, spec


class StorageContract(ContractBase):
    """Contract tests of storing jobs and moving them (see the module docstring)."""

    # -- submitting and reading --------------------------------------------------------------------

    def test_submit_assigns_id_and_stores_every_field(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        job = new_job(
            data={"user": "u1", "list": [1, 2.5, None, True], "text": "héllo ✓"},
            title="Import contacts",
            priority=7,
            attempts=3,
            backoff=Backoff.exponential(2.0, max_delay=60, jitter=False),
            timeout=12.5,
        )
        stored = backend.submit(job)
        assert isinstance(stored.id, str) and stored.id
        assert stored.state is JobState.WAITING
        fetched = backend.get(stored.id)
        assert fetched is not None
        assert fetched.to_dict() == stored.to_dict()
        assert fetched.data == job.data
        assert (fetched.title, fetched.priority, fetched.attempts) == ("Import contacts", 7, 3)
        assert fetched.backoff == job.backoff and fetched.timeout == 12.5
        assert fetched.created_at == job.created_at

    def test_ids_are_unique(self, backend: Engine, new_job: MakeJob) -> None:
        ids = {backend.submit(new_job()).id for _ in range(50)}
        assert len(ids) == 50

    def test_ids_increase_whatever_runs_between(self, backend: Engine, new_job: MakeJob) -> None:
        """Every submit gets a fresh id, larger than any before it (decimal ids compared as
        numbers): an id once acknowledged is never handed to another job."""
        first = backend.submit(new_job())
        claim = self._claim(backend, "a")
        backend.complete(claim.job.id, claim.token, None, None)
        second = backend.submit(new_job())
        third = backend.submit_many([new_job(), new_job()])
        ids = [j.id for j in [first, second, *third]]
        assert len(set(ids)) == 4
        if all(i.isdigit() for i in ids):  # backends with decimal ids order them
            assert [int(i) for i in ids] == sorted(int(i) for i in ids)

    def test_get_unknown_id_returns_none(self, backend: Engine) -> None:
        assert backend.get("no-such-id") is None
        assert backend.get("999999999") is None

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=json_values)
    def test_any_json_data_round_trips(self, backend: Engine, new_job: MakeJob, data: JSON) -> None:
        stored = backend.submit(new_job(data=data))
        fetched = backend.get(stored.id)
        assert fetched is not None and fetched.data == data

    def test_data_that_is_not_json_is_refused_and_stores_nothing(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        with pytest.raises(NotSerializableError):
            backend.submit(new_job(data={"when": {1, 2}}))
        with pytest.raises(NotSerializableError):
            backend.submit_many([new_job(), new_job(data=[float("nan")]), new_job()])
        assert sum(backend.count_by_state().values()) == 0

    def test_remove_in_any_state(self, backend: Engine, new_job: MakeJob) -> None:
        first = backend.submit(new_job())
        second = backend.submit(new_job())
        claim = self._claim(backend, "a")
        assert claim.job.id == first.id
        assert backend.remove(first.id) is True  # active
        assert backend.get(first.id) is None
        assert backend.remove(first.id) is False
        with pytest.raises(LeaseLostError):
            backend.complete(first.id, claim.token, None, None)
        assert backend.remove(second.id) is True  # waiting
        assert backend.claim(spec("a")) is None
        assert sum(backend.count_by_state().values()) == 0

    # -- claiming, completing, failing, releasing: each one atomic move ----------------------------

    def test_claim_empty_returns_none(self, backend: Engine) -> None:
        assert backend.claim(spec("a")) is None

    def test_claim_marks_active_and_counts_attempt(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a", lease=10)
        assert claim.job.id == job.id
        assert claim.job.state is JobState.ACTIVE
        assert claim.job.attempts_made == 1
        assert claim.job.started_at == clock()
        assert claim.lease_expires_at == clock() + 10
        assert claim.token
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.ACTIVE
        assert backend.claim(spec("a")) is None

    def test_complete_stores_result(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a")
        clock.advance(2)
        assert backend.complete(job.id, claim.token, {"ok": [1, "two"]}, None) is None
        done = backend.get(job.id)
        assert done is not None
        assert done.state is JobState.COMPLETED
        assert done.result == {"ok": [1, "two"]}
        assert done.finished_at == clock()

    def test_complete_claims_next_in_the_same_call(self, backend: Engine, new_job: MakeJob) -> None:
        first = backend.submit(new_job(data=1))
        second = backend.submit(new_job(data=2))
        claim = self._claim(backend, "a")
        next_claim = backend.complete(first.id, claim.token, "r", spec("a"))
        assert next_claim is not None and next_claim.job.id == second.id
        assert next_claim.job.state is JobState.ACTIVE
        assert backend.complete(second.id, next_claim.token, "r", spec("a")) is None

    def test_fail_without_retry_is_final(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a")
        error = JobError("ValueError", "bad row 3", "Traceback (most recent call last): ...")
        assert backend.fail(job.id, claim.token, error, None) is JobState.FAILED
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.FAILED
        assert stored.error == error and stored.finished_at == clock()
        assert backend.claim(spec("a")) is None

    def test_fail_with_retry_schedules_another_attempt(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job(attempts=3))
        claim = self._claim(backend, "a")
        state = backend.fail(job.id, claim.token, JobError("E", "x"), clock() + 30)
        assert state is JobState.DELAYED
        assert backend.claim(spec("a")) is None
        clock.advance(30)
        again = self._claim(backend, "a")
        assert again.job.id == job.id and again.job.attempts_made == 2
        assert again.job.error == JobError("E", "x")
        assert backend.fail(job.id, again.token, JobError("E", "y"), clock()) is JobState.WAITING
        assert self._claim(backend, "a").job.attempts_made == 3

    def test_release_returns_job_without_counting_the_attempt(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a")
        assert backend.release(job.id, "wrong") is False
        assert backend.release(job.id, claim.token) is True
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.WAITING
        assert stored.attempts_made == 0
        assert self._claim(backend, "a").job.attempts_made == 1

    def test_release_is_recorded_and_not_counted(self, backend: Engine, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        claim = backend.claim(spec("a"))
        assert claim is not None
        assert backend.release(job.id, claim.token)
        stored = backend.get(job.id)
        assert stored is not None and stored.attempts_made == 0
        assert [a.outcome for a in stored.history] == [AttemptOutcome.RELEASED]

    def test_snooze_delays_the_job_without_counting_the_attempt(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        claim = backend.claim(spec("a"))
        assert claim is not None
        assert backend.snooze(job.id, "stale-token", 30.0) is None
        assert backend.snooze(job.id, claim.token, 30.0) is JobState.DELAYED
        assert backend.snooze(job.id, claim.token, 30.0) is JobState.DELAYED  # a repeat
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.DELAYED
        assert stored.run_at == clock() + 30.0 and stored.attempts_made == 0
        assert [a.outcome for a in stored.history] == [AttemptOutcome.SNOOZED]
        assert stored.error is None  # not a failure
        assert backend.claim(spec("a")) is None
        clock.advance(30.0)
        again = backend.claim(spec("a"))
        assert again is not None and again.job.id == job.id and again.job.attempts_made == 1
        # Due now: straight back to waiting.
        assert backend.snooze(job.id, again.token, 0.0) is JobState.WAITING

    def test_finish_many_records_each_and_claims_more(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        jobs = [backend.submit(new_job(data=i)) for i in range(6)]
        c0, c1, c2, c3 = backend.claim_many(spec("a"), 4)
        outcomes = [
            Outcome(c0.job.id, c0.token, result="r0"),
            Outcome(c1.job.id, "stale-token", result="nope"),
            Outcome(c2.job.id, c2.token, error=JobError("E", "x")),
            Outcome(c3.job.id, c3.token, error=JobError("E", "y"), retry_at=clock() + 5),
        ]
        states, claims = backend.finish_many(outcomes, spec("a"), 5)
        assert states == [JobState.COMPLETED, None, JobState.FAILED, JobState.DELAYED]
        assert [c.job.id for c in claims] == [jobs[4].id, jobs[5].id]
        done = backend.get(c0.job.id)
        assert done is not None and done.result == "r0" and done.state is JobState.COMPLETED
        still = backend.get(c1.job.id)
        assert still is not None and still.state is JobState.ACTIVE
        failed = backend.get(c2.job.id)
        assert failed is not None and failed.error == JobError("E", "x")
        assert backend.finish_many([], None, 0) == ([], [])

    # -- progress and logs -------------------------------------------------------------------------

    def test_progress_and_logs_are_fenced_and_visible(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a")
        assert backend.set_progress(job.id, claim.token, 42.5, "halfway") is True
        assert backend.add_log(job.id, claim.token, "imported 10 contacts") is True
        assert backend.set_progress(job.id, "wrong", 99, None) is False
        assert backend.add_log(job.id, "wrong", "nope") is False
        stored = backend.get(job.id)
        assert stored is not None
        assert (stored.progress, stored.progress_message) == (42.5, "halfway")
        assert [entry.message for entry in stored.logs] == ["imported 10 contacts"]
        assert stored.logs[0].at == clock()

    def test_logs_are_bounded(self, backend: Engine, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a")
        for i in range(MAX_LOGS + 15):
            backend.add_log(job.id, claim.token, f"line {i}")
        stored = backend.get(job.id)
        assert stored is not None and len(stored.logs) == MAX_LOGS
        assert stored.logs[-1].message == f"line {MAX_LOGS + 14}"
        assert stored.logs[0].message == "line 15"
