"""The lifecycle rules, each tested once, as pure functions (no backend involved)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobqueue import lifecycle
from jobqueue.backend import Retention, TickOutcome
from jobqueue.changes import Ended
from jobqueue.errors import JobStateError
from jobqueue.job import (
    FINISHED_STATES,
    MAX_HISTORY,
    Attempt,
    AttemptOutcome,
    Backoff,
    Job,
    JobError,
    JobState,
)
from jobqueue.lifecycle import Expired, Held, InState

NOW = 1_700_000_000.0
ERROR = JobError("ValueError", "boom")


def running(**fields: object) -> Job:
    job = Job(id="7", name="a", data=None, created_at=NOW - 10, run_at=NOW - 10)
    job.state, job.attempts_made, job.dispatcher, job.started_at = (
        JobState.ACTIVE,
        2,
        "d1",
        NOW - 5,
    )
    return replace(job, **fields)  # type: ignore[arg-type]


def test_complete_keeps_the_result_even_after_a_cancel() -> None:
    change = lifecycle.on_complete("7", "t", {"ok": 1})
    assert (change.job_id, change.guard, change.to) == ("7", Held("t"), JobState.COMPLETED)
    assert change.set == {"result": {"ok": 1}}
    assert change.ended == Ended(AttemptOutcome.COMPLETED)
    assert (change.ends_lease, change.counts_as) == ("complete", AttemptOutcome.COMPLETED)


@pytest.mark.parametrize(
    ("cancel", "retry_in", "to", "outcome"),
    [
        (True, 5.0, JobState.CANCELLED, AttemptOutcome.CANCELLED),
        (False, None, JobState.FAILED, AttemptOutcome.FAILED),
        (False, 5.0, JobState.DELAYED, AttemptOutcome.RETRIED),
        (False, 0.0, JobState.WAITING, AttemptOutcome.RETRIED),
    ],
)
def test_fail_cancelled_failed_or_retried(
    cancel: bool, retry_in: float | None, to: JobState, outcome: AttemptOutcome
) -> None:
    retry_at = None if retry_in is None else NOW + retry_in
    change = lifecycle.on_fail(running(cancel_requested=cancel), "t", ERROR, retry_at, NOW)
    # Decided for this cancel flag: a cancel requested since fails the guard (decide again).
    assert (change.guard, change.to, change.counts_as) == (Held("t", cancel), to, outcome)
    assert change.run_at == (retry_in if outcome is AttemptOutcome.RETRIED else None)
    assert change.set == {"error": ERROR}
    assert change.ended == Ended(outcome, ERROR) and change.ends_lease == "fail"


@given(now=st.floats(0, 4e9), delay=st.floats(0, 1e6))
def test_a_relative_retry_delay_lands_on_the_asked_time(now: float, delay: float) -> None:
    retry_at = now + delay
    change = lifecycle.on_fail(running(), "t", ERROR, retry_at, now)
    assert change.run_at is not None and now + change.run_at == retry_at
    assert change.to is lifecycle.due_state(retry_at, now)


def test_retry_at_follows_the_backoff_until_no_attempt_is_left() -> None:
    job = running(attempts=3, attempts_made=2, backoff=Backoff("exponential", 4.0))
    assert lifecycle.retry_at(job, NOW) == NOW + 8.0
    assert lifecycle.retry_at(replace(job, attempts_made=3), NOW) is None


@pytest.mark.parametrize("cancel", [False, True])
def test_release_does_not_count_the_attempt(cancel: bool) -> None:
    change = lifecycle.on_release(running(cancel_requested=cancel), "t", NOW)
    assert change.guard == Held("t", cancel)
    # Given back: the store records it under the number it ran as, then counts one less.
    assert change.ended == Ended(AttemptOutcome.RELEASED, counted=False)
    assert change.ended.record(2, "d1", NOW - 5, NOW) == Attempt(
        2, "d1", NOW - 5, NOW, AttemptOutcome.RELEASED, None
    )
    if cancel:
        assert (change.to, change.counts_as, change.run_at) == (
            JobState.CANCELLED,
            AttemptOutcome.CANCELLED,
            None,
        )
    else:
        assert (change.to, change.counts_as, change.run_at) == (JobState.WAITING, None, 0.0)


@pytest.mark.parametrize("delay", [0.0, 30.0])
def test_snooze_puts_the_job_back_later_without_counting_the_attempt(delay: float) -> None:
    change = lifecycle.on_snooze(running(), "t", delay)
    assert change.guard == Held("t", False)
    assert change.ended == Ended(AttemptOutcome.SNOOZED, counted=False)
    assert (change.run_at, change.counts_as, change.ends_lease) == (delay, None, "snooze")
    # Due now: waiting at once; later: delayed (run_at is a delay on the store's clock).
    assert change.to is (JobState.DELAYED if delay else JobState.WAITING)
    assert change.set == {}  # no error: a snooze is not a failure


def test_a_snooze_after_a_cancel_request_ends_the_job_cancelled() -> None:
    change = lifecycle.on_snooze(running(cancel_requested=True), "t", 30.0)
    assert (change.to, change.run_at, change.counts_as) == (
        JobState.CANCELLED,
        None,
        AttemptOutcome.CANCELLED,
    )
    assert change.guard == Held("t", True)


@pytest.mark.parametrize(
    ("state", "reported"),
    [
        (JobState.WAITING, JobState.WAITING),
        (JobState.DELAYED, JobState.DELAYED),
        (JobState.CANCELLED, JobState.CANCELLED),
        (JobState.ACTIVE, None),  # claimed again since: the lease is lost
        (JobState.COMPLETED, None),
    ],
)
def test_a_repeated_snooze_reports_where_it_left_the_job(
    state: JobState, reported: JobState | None
) -> None:
    assert lifecycle.repeat_or_lost("snooze", True, state) is reported
    assert lifecycle.repeat_or_lost("snooze", False, state) is None


def test_finish_cancelled_keeps_an_error_only_when_given() -> None:
    change = lifecycle.on_cancelled(running(), "t", None, NOW)
    assert (change.to, change.set, change.ends_lease) == (
        JobState.CANCELLED,
        {},
        "finish_cancelled",
    )
    assert lifecycle.on_cancelled(running(), "t", ERROR, NOW).set == {"error": ERROR}


@pytest.mark.parametrize(
    ("stalls", "cancel", "to", "outcome"),
    [
        (0, False, JobState.WAITING, AttemptOutcome.RETRIED),
        (1, False, JobState.WAITING, AttemptOutcome.RETRIED),  # the 2nd stall: == max_stalls
        (2, False, JobState.FAILED, AttemptOutcome.FAILED),  # the 3rd: past it
        (2, True, JobState.CANCELLED, AttemptOutcome.CANCELLED),
    ],
)
def test_stall(stalls: int, cancel: bool, to: JobState, outcome: AttemptOutcome) -> None:
    job = running(stalls=stalls, cancel_requested=cancel)
    change = lifecycle.on_stall(job, 2, NOW, token="t")
    assert (change.guard, change.to, change.counts_as) == (Expired("t", cancel), to, outcome)
    assert change.set["stalls"] == stalls + 1
    assert change.ended == Ended(AttemptOutcome.STALLED)
    assert change.ends_lease is None
    if to is JobState.FAILED:
        assert change.set["error"] == lifecycle.stalled_error(3)
        assert lifecycle.stalled_error(3).type == "StalledJobError"


def test_a_corrupt_record_fails_and_counts_as_failed() -> None:
    change = lifecycle.on_corrupt("9", "column 'priority' holds text")
    assert (change.to, change.counts_as, change.guard) == (
        JobState.FAILED,
        AttemptOutcome.FAILED,
        InState(lifecycle.LIVE_STATES),
    )
    error = change.set["error"]
    assert isinstance(error, JobError) and error.type == "CorruptJobError"
    assert "job 9: column 'priority' holds text" in error.message


@pytest.mark.parametrize("state", list(JobState))
def test_operator_retry_only_failed_or_cancelled(state: JobState) -> None:
    job = running(state=state, stalls=2, cancel_requested=True, result=1, finished_at=NOW)
    if state not in (JobState.FAILED, JobState.CANCELLED):
        with pytest.raises(JobStateError, match="only failed or cancelled"):
            lifecycle.on_retry(job, NOW)
        return
    change = lifecycle.on_retry(job, NOW)
    assert (change.to, change.run_at, change.fence) == (JobState.WAITING, 0.0, True)
    assert change.set == {
        "attempts_made": 0,
        "stalls": 0,
        "cancel_requested": False,
        "result": None,
        "finished_at": None,
    }


@pytest.mark.parametrize("state", list(JobState))
def test_cancel(state: JobState) -> None:
    change = lifecycle.on_cancel(running(state=state))
    if state in (JobState.WAITING, JobState.DELAYED, JobState.BLOCKED):
        assert change is not None and change.to is JobState.CANCELLED
        assert change.ended is None and change.counts_as is None  # no attempt ended
    elif state is JobState.ACTIVE:
        assert change is not None and change.to is JobState.ACTIVE
        assert change.set == {"cancel_requested": True}
        assert lifecycle.on_cancel(running(cancel_requested=True)) is None  # flagged once
    else:
        assert change is None


@pytest.mark.parametrize("state", list(JobState))
def test_promote_only_delayed(state: JobState) -> None:
    if state is not JobState.DELAYED:
        with pytest.raises(JobStateError, match="only delayed"):
            lifecycle.on_promote(running(state=state))
        return
    change = lifecycle.on_promote(running(state=state))
    assert (change.guard, change.to, change.run_at) == (
        InState(frozenset({JobState.DELAYED})),
        JobState.WAITING,
        0.0,
    )


@given(
    call=st.sampled_from(sorted(lifecycle.REPEAT_STATES)),
    ended=st.booleans(),
    state=st.none() | st.sampled_from(JobState),
)
def test_repeat_or_lost(call: str, ended: bool, state: JobState | None) -> None:
    answer = lifecycle.repeat_or_lost(call, ended, state)
    if ended and state in lifecycle.REPEAT_STATES[call]:
        assert answer is state
    else:
        assert answer is None


def test_live_states_hold_the_unique_key() -> None:
    assert {s for s in JobState if s.is_live} == {
        JobState.WAITING,
        JobState.DELAYED,
        JobState.ACTIVE,
        JobState.BLOCKED,
    }
    assert {s for s in JobState if not s.is_live} == FINISHED_STATES


@given(run_at=st.floats(-1e10, 1e10), now=st.floats(-1e10, 1e10))
def test_due_state(run_at: float, now: float) -> None:
    due = lifecycle.due_state(run_at, now)
    assert due is (JobState.DELAYED if run_at > now else JobState.WAITING)


def test_history_keeps_the_newest_attempts() -> None:
    attempts = [Attempt(n, None, None, float(n), AttemptOutcome.RETRIED, None) for n in range(60)]
    history: list[Attempt] = []
    for attempt in attempts:
        history = lifecycle.bounded_history(history, attempt)
    assert history == attempts[-MAX_HISTORY:]


@given(total=st.integers(0, 20), keep=st.none() | st.integers(0, 20), age=st.floats(0, 100))
def test_retention_removes_beyond_the_count_or_past_the_age(
    total: int, keep: int | None, age: float
) -> None:
    retention = Retention(
        completed_seconds=None,
        completed_count=keep,
        failed_seconds=50.0,
        failed_count=None,
        cancelled_seconds=None,
        cancelled_count=None,
    )
    completed, failed, cancelled = lifecycle.retention_cutoffs(retention)
    assert (completed.state, failed.state, cancelled.state) == (
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
    )
    assert completed.removes(total, NOW - age, NOW) is (keep is not None and total > keep)
    assert failed.removes(total, NOW - age, NOW) is (age >= 50.0)
    assert failed.before(NOW) == NOW - 50.0 and completed.before(NOW) is None
    assert not cancelled.removes(total, NOW - age, NOW)


@pytest.mark.parametrize(
    ("overlap", "blocking"),
    [
        ("skip", {JobState.WAITING, JobState.DELAYED, JobState.ACTIVE, JobState.BLOCKED}),
        ("queue", {JobState.WAITING, JobState.DELAYED}),
        ("allow", set()),
    ],
)
def test_schedule_overlap(overlap: str, blocking: set[JobState]) -> None:
    assert lifecycle.blocking_states(overlap) == blocking
    for state in [None, *JobState]:
        blocked = state in blocking
        assert lifecycle.overlap_blocks(overlap, state) is blocked
        expected = TickOutcome.OVERLAP_SKIPPED if blocked else None
        assert lifecycle.tick_outcome(True, False, overlap, state) is expected
    assert lifecycle.tick_outcome(False, True, overlap, JobState.ACTIVE) is TickOutcome.RECORDED
    assert lifecycle.tick_outcome(True, True, overlap, JobState.ACTIVE) is TickOutcome.PAUSED


def test_outcome_minutes() -> None:
    assert lifecycle.outcome_minute(119.9) == 1
    kept = lifecycle.outcome_minute(NOW) - lifecycle.first_kept_minute(NOW) + 1
    assert kept == lifecycle.OUTCOME_MINUTES_KEPT
    assert lifecycle.is_stalled_too_often(3, 2) and not lifecycle.is_stalled_too_often(2, 2)
