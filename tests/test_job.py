"""The Job value serializes to JSON and back without loss."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobqueue import Backoff, CorruptJobError, Job, JobError, JobLog, JobState
from jobqueue.testing.contract import json_values

finite = st.floats(allow_nan=False, allow_infinity=False)

jobs = st.builds(
    Job,
    id=st.text(min_size=1, max_size=10),
    name=st.text(min_size=1, max_size=10),
    data=json_values,
    title=st.none() | st.text(max_size=20),
    state=st.sampled_from(JobState),
    priority=st.integers(-1000, 1000),
    attempts=st.integers(1, 10),
    attempts_made=st.integers(0, 10),
    stalls=st.integers(0, 5),
    backoff=st.builds(
        Backoff,
        kind=st.sampled_from(["fixed", "exponential"]),
        delay=st.floats(0, 1e6),
        max_delay=st.floats(0, 1e6),
        jitter=st.booleans(),
    ),
    timeout=st.none() | st.floats(0.001, 1e6),
    unique_key=st.none() | st.text(min_size=1, max_size=10),
    created_at=finite,
    run_at=finite,
    started_at=st.none() | finite,
    finished_at=st.none() | finite,
    progress=st.floats(0, 100),
    progress_message=st.none() | st.text(max_size=10),
    result=json_values,
    error=st.none() | st.builds(JobError, st.text(max_size=5), st.text(), st.text()),
    logs=st.lists(st.builds(JobLog, finite, st.text(max_size=10)), max_size=3),
    lease_expires_at=st.none() | finite,
)


@given(jobs)
def test_json_round_trip_is_lossless(job: Job) -> None:
    back = Job.from_json(job.to_json())
    assert back == job
    assert back.lease_expires_at == job.lease_expires_at  # a read's field, outside equality


def test_the_lease_deadline_takes_no_part_in_equality() -> None:
    """It moves with every heartbeat while the job stays the same job."""
    job = Job(id="1", name="a", data=None, state=JobState.ACTIVE, lease_expires_at=10.0)
    later = Job(id="1", name="a", data=None, state=JobState.ACTIVE, lease_expires_at=40.0)
    assert job == later and job.to_dict() != later.to_dict()


@pytest.mark.parametrize(
    "text",
    [b"not json", b"[1, 2]", b'{"id": "1"}', b'{"id": "1", "name": "a", "state": "sleeping"}'],
)
def test_corrupt_records_raise_a_clear_error(text: bytes) -> None:
    with pytest.raises(CorruptJobError, match="stored job record"):
        Job.from_json(text)
