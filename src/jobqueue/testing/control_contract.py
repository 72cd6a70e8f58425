"""The control-plane half of the contract: cancel, retry, purge, pause, heartbeats and
dispatcher records, attempt history, and reads that never write. Mixed into
``BackendContract``; uses its fixtures (``backend``, ``new_job``, ``clock``)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from jobqueue.backend import Backend, DispatcherInfo, LeaseStatus, Retention, WorkSpec
from jobqueue.errors import JobStateError, LeaseLostError
from jobqueue.job import MAX_HISTORY, AttemptOutcome, JobError, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.fixture_types import MakeJob, OpenBackend

ERROR = JobError("ValueError", "boom", "Traceback ...")


def _spec(*names: str, lease: float = 30.0, dispatcher: str | None = None) -> WorkSpec:
    return WorkSpec(names=names, lease_seconds=lease, dispatcher=dispatcher)


def _counts(**states: int) -> dict[JobState, int]:
    """Every state's count for one name: the given ones (by state value), the rest zero."""
    counts = dict.fromkeys(JobState, 0)
    for state, n in states.items():
        counts[JobState(state)] = n
    return counts


def _info(clock: ManualClock, dispatcher_id: str = "d1", **fields: Any) -> DispatcherInfo:
    fields.setdefault("host", "host-1")
    fields.setdefault("pid", 4242)
    fields.setdefault("names", ("a",))
    fields.setdefault("concurrency", 1)
    fields.setdefault("started_at", clock())
    return DispatcherInfo(id=dispatcher_id, **fields)


class ControlPlaneContract:
    """Contract tests of the control plane (see the module docstring)."""

    # -- cancel -------------------------------------------------------------------------------

    def test_cancel_waiting_and_delayed_jobs_at_once(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        waiting = backend.submit(new_job(unique_key="k1"))
        delayed = backend.submit(new_job(run_at=clock() + 60))
        assert backend.cancel(waiting.id) is JobState.CANCELLED
        assert backend.cancel(delayed.id) is JobState.CANCELLED
        stored = backend.get(waiting.id)
        assert stored is not None and stored.state is JobState.CANCELLED
        assert stored.finished_at == clock()
        assert backend.claim(_spec("a")) is None
        clock.advance(120)
        assert backend.claim(_spec("a")) is None  # the delayed one does not come due
        assert backend.count_by_state()[JobState.CANCELLED] == 2
        assert backend.submit(new_job(unique_key="k1")).id != waiting.id  # key freed
        assert backend.cancel("999999") is None

    def test_cancel_finished_job_changes_nothing(self, backend: Backend, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        claim = backend.claim(_spec("a"))
        assert claim is not None
        backend.complete(job.id, claim.token, "r", None)
        assert backend.cancel(job.id) is JobState.COMPLETED
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.COMPLETED and stored.result == "r"

    def test_cancel_active_job_reaches_its_holder(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        claim = backend.claim(_spec("a", dispatcher="d1"))
        assert claim is not None
        info = _info(clock)
        assert backend.heartbeat(info, [(job.id, claim.token)], 30) == [LeaseStatus.HELD]
        assert backend.cancel(job.id) is JobState.ACTIVE
        stored = backend.get(job.id)
        assert stored is not None and stored.cancel_requested and stored.state is JobState.ACTIVE
        assert backend.heartbeat(info, [(job.id, claim.token)], 30) == [LeaseStatus.CANCEL]
        assert backend.finish_cancelled(job.id, claim.token, None)
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.CANCELLED
        assert [a.outcome for a in stored.history] == [AttemptOutcome.CANCELLED]
        assert stored.history[0].dispatcher == "d1"
        # A repeat with the same token reports the stored outcome (idempotent per token).
        assert backend.finish_cancelled(job.id, claim.token, None)
        with pytest.raises(LeaseLostError):  # a late outcome never overwrites a cancel
            backend.complete(job.id, claim.token, "late", None)
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.CANCELLED and stored.result is None

    def test_completion_before_the_cancel_is_delivered_keeps_the_result(
        self, backend: Backend, new_job: MakeJob
    ) -> None:
        job = backend.submit(new_job())
        claim = backend.claim(_spec("a"))
        assert claim is not None
        backend.cancel(job.id)
        backend.complete(job.id, claim.token, "done", None)
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.COMPLETED and stored.result == "done"

    def test_failure_of_a_cancelled_job_is_not_retried(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job(attempts=3))
        claim = backend.claim(_spec("a"))
        assert claim is not None
        backend.cancel(job.id)
        assert backend.fail(job.id, claim.token, ERROR, clock()) is JobState.CANCELLED
        assert backend.claim(_spec("a")) is None

    def test_cancelled_job_whose_holder_died_ends_cancelled(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job(attempts=3))
        assert backend.claim(_spec("a", lease=5)) is not None
        backend.cancel(job.id)
        clock.advance(10)
        backend.maintain()
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.CANCELLED
        assert backend.claim(_spec("a")) is None

    # -- retry and purge ----------------------------------------------------------------------

    def test_retry_failed_job_keeps_its_history(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job(attempts=1))
        claim = backend.claim(_spec("a", dispatcher="d1"))
        assert claim is not None
        backend.fail(job.id, claim.token, ERROR, None)
        retried = backend.retry(job.id)
        assert retried is not None and retried.state is JobState.WAITING
        assert (retried.attempts_made, retried.stalls, retried.finished_at) == (0, 0, None)
        assert retried.error == ERROR  # the last error stays readable
        again = backend.claim(_spec("a", dispatcher="d2"))
        assert again is not None and again.job.id == job.id and again.job.attempts_made == 1
        backend.complete(job.id, again.token, "ok", None)
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.COMPLETED
        assert [(a.outcome, a.dispatcher) for a in stored.history] == [
            (AttemptOutcome.FAILED, "d1"),
            (AttemptOutcome.COMPLETED, "d2"),
        ]
        assert stored.history[0].error == ERROR and stored.history[1].error is None

    def test_retry_refuses_unfinished_jobs(self, backend: Backend, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        with pytest.raises(JobStateError):
            backend.retry(job.id)
        assert backend.retry("999999") is None

    def test_retry_of_a_cancelled_job(self, backend: Backend, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        backend.cancel(job.id)
        retried = backend.retry(job.id)
        assert retried is not None and retried.state is JobState.WAITING
        claim = backend.claim(_spec("a"))
        assert claim is not None and claim.job.id == job.id

    def test_retry_refused_while_another_job_holds_the_unique_key(
        self, backend: Backend, new_job: MakeJob
    ) -> None:
        first = backend.submit(new_job(unique_key="k"))
        backend.cancel(first.id)
        second = backend.submit(new_job(unique_key="k"))
        with pytest.raises(JobStateError):
            backend.retry(first.id)
        assert backend.retry_many(JobState.CANCELLED) == 0
        backend.cancel(second.id)
        assert backend.retry(first.id) is not None
        assert backend.submit(new_job(unique_key="k")).id == first.id

    def test_retry_many_by_state_and_name(self, backend: Backend, new_job: MakeJob) -> None:
        for name in ("a", "a", "b"):
            job = backend.submit(new_job(name))
            claim = backend.claim(_spec(name))
            assert claim is not None
            backend.fail(job.id, claim.token, ERROR, None)
        assert backend.retry_many(JobState.FAILED, "b") == 1
        assert backend.count_by_state()[JobState.FAILED] == 2
        assert backend.retry_many(JobState.FAILED) == 2
        assert backend.count_by_state()[JobState.WAITING] == 3

    def test_purge_by_state_name_and_age(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        old = backend.submit(new_job("a"))
        backend.cancel(old.id)
        clock.advance(100)
        young = backend.submit(new_job("a"))
        backend.cancel(young.id)
        other = backend.submit(new_job("b"))
        backend.cancel(other.id)
        waiting = backend.submit(new_job("a"))
        assert backend.purge(JobState.CANCELLED, "a", finished_before=clock() - 50) == 1
        assert backend.get(old.id) is None and backend.get(young.id) is not None
        assert backend.purge(JobState.CANCELLED, "a") == 1
        assert backend.purge(JobState.CANCELLED) == 1
        assert backend.purge(JobState.COMPLETED) == 0
        assert backend.get(waiting.id) is not None
        assert backend.count_by_state()[JobState.CANCELLED] == 0

    # -- pause --------------------------------------------------------------------------------

    def test_pause_stops_claims_of_that_name_only(self, backend: Backend, new_job: MakeJob) -> None:
        a = backend.submit(new_job("a"))
        backend.pause("a")
        assert backend.paused() == frozenset({"a"})
        backend.submit(new_job("a"))  # submitting to a paused name still works
        assert backend.claim(_spec("a")) is None
        b = backend.submit(new_job("b"))
        claim = backend.claim(_spec("a", "b"))
        assert claim is not None and claim.job.id == b.id
        assert backend.wait_for_work(["a"], 0.05) is False  # nothing claimable: no spinning
        backend.resume("a")
        assert backend.paused() == frozenset()
        claim = backend.claim(_spec("a"))
        assert claim is not None and claim.job.id == a.id

    def test_resume_wakes_an_idle_waiter(self, backend: Backend, new_job: MakeJob) -> None:
        backend.pause("a")
        backend.submit(new_job("a"))
        woke: list[bool] = []
        waiter = threading.Thread(target=lambda: woke.append(backend.wait_for_work(["a"], 30)))
        waiter.start()
        backend.resume("a")
        waiter.join(20)
        assert not waiter.is_alive() and woke, "resume did not wake the waiting dispatcher"
        assert backend.claim(_spec("a")) is not None

    # -- heartbeats and dispatchers -----------------------------------------------------------

    def test_heartbeat_renews_every_lease_in_one_step(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        jobs = [backend.submit(new_job()) for _ in range(3)]
        claims = [backend.claim(_spec("a", lease=10, dispatcher="d1")) for _ in jobs]
        leases = [(c.job.id, c.token) for c in claims if c is not None]
        clock.advance(8)
        assert backend.heartbeat(_info(clock), leases, 10) == [LeaseStatus.HELD] * 3
        clock.advance(8)  # past the first deadline, within the renewed one
        backend.maintain()
        assert backend.claim(_spec("a")) is None
        assert backend.count_by_state()[JobState.ACTIVE] == 3
        stolen = [(leases[0][0], "not-the-token"), *leases[1:]]
        statuses = backend.heartbeat(_info(clock), stolen, 10)
        assert statuses == [LeaseStatus.LOST, LeaseStatus.HELD, LeaseStatus.HELD]

    def test_dispatchers_are_recorded_refreshed_and_forgotten(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job())
        claim = backend.claim(_spec("a", dispatcher="d1"))
        assert claim is not None
        backend.heartbeat(_info(clock, "d1", names=("a", "b"), concurrency=2), [], 10)
        clock.advance(1)
        backend.heartbeat(_info(clock, "d2", started_at=clock()), [(job.id, claim.token)], 10)
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

    # -- attempt history ----------------------------------------------------------------------

    def test_history_records_stalls_and_is_bounded(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        job = backend.submit(new_job(attempts=MAX_HISTORY + 5))
        claim = backend.claim(_spec("a", lease=5, dispatcher="gone"))
        assert claim is not None
        clock.advance(10)
        backend.maintain()
        stored = backend.get(job.id)
        assert stored is not None and stored.state is JobState.WAITING and stored.stalls == 1
        assert [(a.outcome, a.dispatcher) for a in stored.history] == [
            (AttemptOutcome.STALLED, "gone")
        ]
        for _ in range(MAX_HISTORY + 2):
            again = backend.claim(_spec("a"))
            assert again is not None
            backend.fail(job.id, again.token, ERROR, clock())
        stored = backend.get(job.id)
        assert stored is not None and len(stored.history) == MAX_HISTORY
        assert all(a.outcome is AttemptOutcome.RETRIED for a in stored.history)

    def test_release_is_recorded_and_not_counted(self, backend: Backend, new_job: MakeJob) -> None:
        job = backend.submit(new_job())
        claim = backend.claim(_spec("a"))
        assert claim is not None
        assert backend.release(job.id, claim.token)
        stored = backend.get(job.id)
        assert stored is not None and stored.attempts_made == 0
        assert [a.outcome for a in stored.history] == [AttemptOutcome.RELEASED]

    # -- counts by name -----------------------------------------------------------------------

    def test_count_by_name_follows_every_transition(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        assert backend.count_by_name() == {}
        a1 = backend.submit(new_job("a", attempts=3))
        a2 = backend.submit(new_job("a"))
        b1 = backend.submit(new_job("b", run_at=clock() + 60))
        assert backend.count_by_name() == {"a": _counts(waiting=2), "b": _counts(delayed=1)}
        claim = backend.claim(_spec("a"))
        assert claim is not None and claim.job.id == a1.id
        assert backend.count_by_name()["a"] == _counts(waiting=1, active=1)
        backend.fail(a1.id, claim.token, ERROR, clock() + 30)  # retried later: delayed
        assert backend.count_by_name()["a"] == _counts(waiting=1, delayed=1)
        claim = backend.claim(_spec("a"))
        assert claim is not None and claim.job.id == a2.id
        backend.complete(a2.id, claim.token, "ok", None)
        assert backend.count_by_name()["a"] == _counts(delayed=1, completed=1)
        clock.advance(30)
        claim = backend.claim(_spec("a"))  # promotes a1, then takes it
        assert claim is not None and claim.job.id == a1.id
        backend.fail(a1.id, claim.token, ERROR, None)  # for good
        assert backend.count_by_name()["a"] == _counts(completed=1, failed=1)
        assert backend.cancel(b1.id) is JobState.CANCELLED
        assert backend.count_by_name()["b"] == _counts(cancelled=1)
        assert backend.retry(b1.id) is not None
        assert backend.count_by_name()["b"] == _counts(waiting=1)
        assert backend.retry(a1.id) is not None
        assert backend.count_by_name()["a"] == _counts(waiting=1, completed=1)
        assert backend.purge(JobState.COMPLETED) == 1
        assert backend.count_by_name() == {"a": _counts(waiting=1), "b": _counts(waiting=1)}
        assert backend.remove(b1.id)
        assert backend.count_by_name() == {"a": _counts(waiting=1)}
        assert backend.remove(a1.id)
        assert backend.count_by_name() == {}  # a name without jobs is left out

    def test_count_by_name_after_stalls_and_retention(
        self, open_backend: OpenBackend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        backend = open_backend(retention=Retention(completed_count=1), max_stalls=1)
        for _ in range(3):
            job = backend.submit(new_job("a"))
            claim = backend.claim(_spec("a"))
            assert claim is not None
            backend.complete(job.id, claim.token, None, None)
        backend.maintain()  # retention keeps the newest completed job only
        assert backend.count_by_name() == {"a": _counts(completed=1)}
        stalled = backend.submit(new_job("s"))
        assert backend.claim(_spec("s", lease=5)) is not None
        clock.advance(10)
        assert [j.id for j in backend.maintain()] == [stalled.id]  # back to waiting, a stall
        assert backend.count_by_name()["s"] == _counts(waiting=1)
        assert backend.claim(_spec("s", lease=5)) is not None
        clock.advance(10)
        backend.maintain()  # past max_stalls: failed
        assert backend.count_by_name()["s"] == _counts(failed=1)
        cancelled = backend.submit(new_job("s"))
        assert backend.claim(_spec("s", lease=5)) is not None
        backend.cancel(cancelled.id)
        clock.advance(10)
        backend.maintain()  # a cancel-requested job whose holder died: cancelled
        assert backend.count_by_name()["s"] == _counts(failed=1, cancelled=1)
        stored = backend.get(stalled.id)
        assert stored is not None and stored.state is JobState.FAILED

    # -- reads never write --------------------------------------------------------------------

    def test_reads_never_write(
        self, backend: Backend, new_job: MakeJob, clock: ManualClock
    ) -> None:
        """A due delayed job and an expired lease stay as they are until maintenance or a
        claim: counting, listing and reading are free of transitions."""
        due = backend.submit(new_job(run_at=clock() + 5))
        expired = backend.submit(new_job("b"))
        assert backend.claim(_spec("b", lease=5)) is not None
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
                "a": _counts(delayed=1),
                "b": _counts(active=1),
            }
        assert [j.id for j in backend.maintain()] == [expired.id]  # and the due one promoted
        counts = backend.count_by_state()
        assert (counts[JobState.WAITING], counts[JobState.ACTIVE]) == (2, 0)
