"""The contract every backend meets, as a pytest mixin. See ``jobqueue.testing``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobqueue.backend import (
    Backend,
    BackendOptions,
    BatchBackend,
    Claim,
    Outcome,
    Retention,
    WorkSpec,
)
from jobqueue.errors import CorruptJobError, LeaseLostError, NotSerializableError
from jobqueue.job import JSON, MAX_LOGS, Backoff, Job, JobError, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.control_contract import ControlPlaneContract
from jobqueue.testing.differential import make_differential_machine
from jobqueue.testing.fixture_types import MakeJob, OpenBackend
from jobqueue.testing.operator_contract import OperatorContract
from jobqueue.testing.schedule_contract import ScheduleContract
from jobqueue.testing.stall_contract import StallContract
from jobqueue.testing.state_machine import make_state_machine

_DEFAULT_DATA = {"n": 1}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def spec(*names: str, lease: float = 30.0, **max_active: int) -> WorkSpec:
    return WorkSpec(names=names, lease_seconds=lease, max_active=max_active)


class BackendContract(ControlPlaneContract, OperatorContract, ScheduleContract, StallContract):
    """Mixin of contract tests (the control plane's are in ``ControlPlaneContract``, the
    operator's reads and bulk steering in ``OperatorContract``, periodic schedules' tick
    claims in ``ScheduleContract``, reported stalls in ``StallContract``).
    Implement ``make_backend``; override ``state_machine_examples`` to trade thoroughness
    for speed."""

    state_machine_examples = 25
    state_machine_steps = 40
    differential_examples = 60
    differential_steps = 50

    def make_backend(self, options: BackendOptions) -> Backend:
        """Return a NEW, EMPTY backend using ``options`` (clock, retention, max_stalls)."""
        raise NotImplementedError

    def dispose_backend(self, backend: Backend) -> None:
        """Called once per backend made; override to drop test data, then close."""
        backend.close()

    # -- fixtures -----------------------------------------------------------------------------

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock()

    @pytest.fixture
    def open_backend(self, clock: ManualClock) -> Iterator[OpenBackend]:
        made: list[Backend] = []

        def open_backend(**options: Any) -> Backend:
            backend = self.make_backend(BackendOptions(clock=clock, **options))
            made.append(backend)
            return backend

        yield open_backend
        for backend in made:
            self.dispose_backend(backend)

    @pytest.fixture
    def backend(self, open_backend: OpenBackend) -> Backend:
        return open_backend()

    @pytest.fixture
    def new_job(self, clock: ManualClock) -> MakeJob:
        def new_job(name: str = "a", data: JSON = _DEFAULT_DATA, **fields: Any) -> Job:
            fields.setdefault("created_at", clock())
            fields.setdefault("run_at", clock())
            return Job(id="", name=name, data=data, **fields)

        return new_job

    # -- submitting and reading ---------------------------------------------------------------

    def test_submit_assigns_id_and_stores_every_field(
        self, backend: Backend, new_job: MakeJob
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

    def test_ids_are_unique(self, backend: Backend, new_job: MakeJob) -> None:
        ids = {backend.submit(new_job()).id for _ in range(50)}
        assert len(ids) == 50

    def test_ids_increase_whatever_runs_between(self, backend: Backend, new_job: MakeJob) -> None:
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

    def test_get_unknown_id_returns_none(self, backend: Backend) -> None:
        assert backend.get("no-such-id") is None
        assert backend.get("999999999") is None

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=json_values)
    def test_any_json_data_round_trips(
        self, backend: Backend, new_job: MakeJob, data: JSON
    ) -> None:
        stored = backend.submit(new_job(data=data))
        fetched = backend.get(stored.id)
        assert fetched is not None and fetched.data == data

    def test_data_that_is_not_json_is_refused_and_stores_nothing(
        self, backend: Backend, new_job: MakeJob
    ) -> None:
        with pytest.raises(NotSerializableError):
            backend.submit(new_job(data={"when": {1, 2}}))
        with pytest.raises(NotSerializableError):
            backend.submit_many([new_job(), new_job(data=[float("nan")]), new_job()])
        assert sum(backend.count_by_state().values()) == 0

    def test_submit_many_keeps_order(self, backend: Backend, new_job: MakeJob) -> None:
        stored = backend.submit_many([new_job(data={"i": i}) for i in range(20)])
        assert [job.data["i"] for job in stored] == list(range(20))
        assert len({job.id for job in stored}) == 20
        claimed = [self._claim(backend, "a").job.data["i"] for _ in range(20)]
        assert claimed == list(range(20))

    # -- claiming -----------------------------------------------------------------------------

    def _claim(self, backend: Backend, *names: str, lease: float = 30.0) -> Claim:
        claim = backend.claim(spec(*names, lease=lease))
        assert claim is not None, f"expected a job to claim among {names}"
        return claim

    def test_claim_empty_returns_none(self, backend: Backend) -> None:
        assert backend.claim(spec("a")) is None

    def test_claim_marks_active_and_counts_attempt(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
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

    def test_higher_priority_first_then_submission_order(
        self, backend: Backend, new_job: MakeJob
    ) -> None:
        for label, priority in [("l1", 0), ("h1", 5), ("l2", 0), ("h2", 5), ("n1", -3), ("l3", 0)]:
            backend.submit(new_job(data=label, priority=priority))
        order = [self._claim(backend, "a").job.data for _ in range(6)]
        assert order == ["h1", "h2", "l1", "l2", "l3", "n1"]

    def test_claim_only_named_workers(self, backend: Backend, new_job: MakeJob) -> None:
        backend.submit(new_job("other"))
        assert backend.claim(spec("a")) is None
        b = backend.submit(new_job("b", priority=1))
        a = backend.submit(new_job("a"))
        assert self._claim(backend, "a", "b").job.id == b.id
        assert self._claim(backend, "a", "b").job.id == a.id
        assert self._claim(backend, "other").job.name == "other"

    def test_delayed_job_waits_until_due(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job(run_at=clock() + 60))
        assert job.state is JobState.DELAYED
        assert backend.claim(spec("a")) is None
        clock.advance(59)
        assert backend.claim(spec("a")) is None
        clock.advance(1)
        assert self._claim(backend, "a").job.id == job.id

    def test_due_delayed_job_respects_priority(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend.submit(new_job(data="now-low", priority=0))
        backend.submit(new_job(data="later-high", priority=9, run_at=clock() + 5))
        clock.advance(5)
        assert self._claim(backend, "a").job.data == "later-high"

    def test_max_active_caps_running_jobs_per_name(
        self, backend: Backend, new_job: MakeJob
    ) -> None:
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

    # -- completing ---------------------------------------------------------------------------

    def test_complete_stores_result(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
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

    def test_complete_claims_next_in_the_same_call(
        self, backend: Backend, new_job: MakeJob
    ) -> None:
        first = backend.submit(new_job(data=1))
        second = backend.submit(new_job(data=2))
        claim = self._claim(backend, "a")
        next_claim = backend.complete(first.id, claim.token, "r", spec("a"))
        assert next_claim is not None and next_claim.job.id == second.id
        assert next_claim.job.state is JobState.ACTIVE
        assert backend.complete(second.id, next_claim.token, "r", spec("a")) is None

    def test_complete_with_wrong_token_is_refused(self, backend: Backend, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        self._claim(backend, "a")
        with pytest.raises(LeaseLostError):
            backend.complete(job.id, "not-the-token", "r", None)
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.ACTIVE and stored.result is None

    def test_repeated_outcomes_report_the_stored_one(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
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
        self, backend: Backend, new_job: MakeJob
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
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
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

    def test_recovered_lease_token_stays_fenced(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
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
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
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

    # -- leases -------------------------------------------------------------------------------

    def test_expired_lease_is_recovered_and_fenced(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        old = self._claim(backend, "a", lease=10)
        clock.advance(10.5)
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
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a", lease=5)
        clock.advance(6)
        with pytest.raises(LeaseLostError):
            backend.complete(job.id, claim.token, "late", None)

    def test_renew_extends_the_lease(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
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

    def test_recover_expired_returns_jobs_to_waiting(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        self._claim(backend, "a", lease=5)
        assert backend.recover_expired() == []
        clock.advance(6)
        assert [j.id for j in backend.recover_expired()] == [job.id]
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.WAITING and stored.stalls == 1

    def test_too_many_stalls_fail_the_job(
        self, open_backend: OpenBackend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend = open_backend(max_stalls=1)
        job = backend.submit(new_job())
        self._claim(backend, "a", lease=5)
        clock.advance(6)
        self._claim(backend, "a", lease=5)
        clock.advance(6)
        assert backend.claim(spec("a")) is None
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.FAILED
        assert stored.error is not None and stored.error.type == "StalledJobError"
        assert "stalled" in stored.error.message

    # -- failing and retrying -----------------------------------------------------------------

    def test_fail_without_retry_is_final(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
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
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
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

    def test_fail_with_wrong_token_is_refused(self, backend: Backend, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        self._claim(backend, "a")
        with pytest.raises(LeaseLostError):
            backend.fail(job.id, "wrong", JobError("E", "x"), None)

    def test_release_returns_job_without_counting_the_attempt(
        self, backend: Backend, new_job: MakeJob
    ) -> None:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a")
        assert backend.release(job.id, "wrong") is False
        assert backend.release(job.id, claim.token) is True
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.WAITING
        assert stored.attempts_made == 0
        assert self._claim(backend, "a").job.attempts_made == 1

    # -- progress and logs --------------------------------------------------------------------

    def test_progress_and_logs_are_fenced_and_visible(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
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

    def test_logs_are_bounded(self, backend: Backend, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a")
        for i in range(MAX_LOGS + 15):
            backend.add_log(job.id, claim.token, f"line {i}")
        stored = backend.get(job.id)
        assert stored is not None and len(stored.logs) == MAX_LOGS
        assert stored.logs[-1].message == f"line {MAX_LOGS + 14}"
        assert stored.logs[0].message == "line 15"

    # -- listing, counting, removing ----------------------------------------------------------

    def test_count_and_list_by_state(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
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
        }
        assert [j.id for j in backend.list_jobs(JobState.WAITING)] == [waiting[2].id]
        assert [j.id for j in backend.list_jobs(JobState.DELAYED)] == [delayed.id]
        assert [j.id for j in backend.list_jobs(JobState.ACTIVE)] == [waiting[1].id]
        assert [j.id for j in backend.list_jobs(JobState.COMPLETED)] == [waiting[0].id]
        assert backend.list_jobs(JobState.FAILED) == []

    def test_list_pages_in_run_order(self, backend: Backend, new_job: MakeJob) -> None:
        jobs = [backend.submit(new_job(data=i, priority=i % 2)) for i in range(10)]
        expected = [j.id for j in jobs if j.priority == 1] + [j.id for j in jobs if j.priority == 0]
        listed = backend.list_jobs(JobState.WAITING, 0, 4) + backend.list_jobs(
            JobState.WAITING, 4, 100
        )
        assert [j.id for j in listed] == expected

    def test_finished_jobs_list_newest_first(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        ids = []
        for _ in range(3):
            job = backend.submit(new_job())
            claim = self._claim(backend, "a")
            clock.advance(1)
            backend.complete(job.id, claim.token, None, None)
            ids.append(job.id)
        assert [j.id for j in backend.list_jobs(JobState.COMPLETED)] == ids[::-1]

    def test_remove_in_any_state(self, backend: Backend, new_job: MakeJob) -> None:
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

    # -- retention ----------------------------------------------------------------------------

    def _finish(self, backend: Backend, new_job: MakeJob, *, fail: bool = False) -> str:
        job = backend.submit(new_job())
        claim = self._claim(backend, "a")
        if fail:
            backend.fail(job.id, claim.token, JobError("E", "x"), None)
        else:
            backend.complete(job.id, claim.token, None, None)
        return job.id

    def test_retention_by_count(
        self, open_backend: OpenBackend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend = open_backend(retention=Retention(completed_count=3, failed_count=2))
        done = []
        for _ in range(6):
            clock.advance(1)
            done.append(self._finish(backend, new_job))
        failed = []
        for _ in range(4):
            clock.advance(1)
            failed.append(self._finish(backend, new_job, fail=True))
        backend.claim(spec("a"))
        assert [j.id for j in backend.list_jobs(JobState.COMPLETED)] == done[:-4:-1]
        assert [j.id for j in backend.list_jobs(JobState.FAILED)] == failed[:-3:-1]
        assert backend.get(done[0]) is None and backend.get(failed[0]) is None

    def test_retention_by_age(
        self, open_backend: OpenBackend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend = open_backend(retention=Retention(completed_seconds=60, failed_seconds=600))
        old_done = self._finish(backend, new_job)
        old_failed = self._finish(backend, new_job, fail=True)
        clock.advance(61)
        new_done = self._finish(backend, new_job)
        backend.claim(spec("a"))
        assert backend.get(old_done) is None
        assert backend.get(new_done) is not None
        assert backend.get(old_failed) is not None
        clock.advance(600)
        backend.claim(spec("a"))
        assert backend.get(old_failed) is None
        assert backend.count_by_state()[JobState.FAILED] == 0

    # -- unique jobs --------------------------------------------------------------------------

    def test_unique_key_returns_the_live_job(self, backend: Backend, new_job: MakeJob) -> None:
        first = backend.submit(new_job(data=1, unique_key="reindex:u1"))
        again = backend.submit(new_job(data=2, unique_key="reindex:u1"))
        assert again.id == first.id and again.data == 1
        assert again.deduplicated and not first.deduplicated
        assert not backend.get(first.id).deduplicated  # type: ignore[union-attr]
        other = backend.submit(new_job(data=3, unique_key="reindex:u2"))
        assert other.id != first.id
        claim = self._claim(backend, "a")
        assert backend.submit(new_job(unique_key="reindex:u1")).id == first.id  # still active
        backend.complete(claim.job.id, claim.token, None, None)
        fresh = backend.submit(new_job(data=4, unique_key="reindex:u1"))
        assert fresh.id != first.id and fresh.data == 4 and not fresh.deduplicated
        assert backend.count_by_state()[JobState.WAITING] == 2

    # -- waiting ------------------------------------------------------------------------------

    def test_wait_for_work_is_woken_by_submit(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
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

    def test_wait_for_work_times_out_when_idle(self, backend: Backend) -> None:
        assert backend.wait_for_work(["a"], 0.2) is False

    def test_wait_for_finish(self, backend: Backend, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        assert backend.wait_for_finish(job.id, 0.1) is None
        claim = self._claim(backend, "a")
        finisher = threading.Timer(0.2, backend.complete, args=(job.id, claim.token, "r", None))
        finisher.start()
        done = backend.wait_for_finish(job.id, 20)
        finisher.join()
        assert done is not None and done.state is JobState.COMPLETED and done.result == "r"

    # -- optional batch methods (BatchBackend) ------------------------------------------------

    def _batching(self, backend: Backend) -> BatchBackend:
        if not isinstance(backend, BatchBackend):
            pytest.skip("this backend does not offer the optional BatchBackend methods")
        return backend

    def test_claim_many_in_claim_order(self, backend: Backend, new_job: MakeJob) -> None:
        batch = self._batching(backend)
        for i in range(5):
            batch.submit(new_job(data=i, priority=1 if i == 3 else 0))
        claims = batch.claim_many(spec("a"), 3)
        assert [c.job.data for c in claims] == [3, 0, 1]
        assert len({c.token for c in claims}) == 3
        assert all(c.job.state is JobState.ACTIVE for c in claims)
        assert [c.job.data for c in batch.claim_many(spec("a"), 10)] == [2, 4]
        assert batch.claim_many(spec("a"), 10) == []

    def test_finish_many_records_each_and_claims_more(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        batch = self._batching(backend)
        jobs = [batch.submit(new_job(data=i)) for i in range(6)]
        c0, c1, c2, c3 = batch.claim_many(spec("a"), 4)
        outcomes = [
            Outcome(c0.job.id, c0.token, result="r0"),
            Outcome(c1.job.id, "stale-token", result="nope"),
            Outcome(c2.job.id, c2.token, error=JobError("E", "x")),
            Outcome(c3.job.id, c3.token, error=JobError("E", "y"), retry_at=clock() + 5),
        ]
        states, claims = batch.finish_many(outcomes, spec("a"), 5)
        assert states == [JobState.COMPLETED, None, JobState.FAILED, JobState.DELAYED]
        assert [c.job.id for c in claims] == [jobs[4].id, jobs[5].id]
        done = batch.get(c0.job.id)
        assert done is not None and done.result == "r0" and done.state is JobState.COMPLETED
        still = batch.get(c1.job.id)
        assert still is not None and still.state is JobState.ACTIVE
        failed = batch.get(c2.job.id)
        assert failed is not None and failed.error == JobError("E", "x")
        assert batch.finish_many([], None, 0) == ([], [])

    # -- exact agreement with the reference backend ------------------------------------------

    def test_differential_matches_the_reference_backend(self) -> None:
        from hypothesis.stateful import run_state_machine_as_test

        machine = make_differential_machine(self.make_backend, self.dispose_backend)
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=self.differential_examples,
                stateful_step_count=self.differential_steps,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )

    # -- the model-checked state machine ------------------------------------------------------

    def test_state_machine_against_model(self) -> None:
        from hypothesis.stateful import run_state_machine_as_test

        machine = make_state_machine(self.make_backend, self.dispose_backend)
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=self.state_machine_examples,
                stateful_step_count=self.state_machine_steps,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )


__all__ = ["BackendContract", "CorruptJobError", "spec"]
