"""Part 6 -- bad input, on the memory backend and on real Redis.

Property tests (hypothesis) over ``submit_job``/``submit_jobs``/``get_job_by_id`` arguments:
data that is not JSON, payloads beyond ``max_data_bytes``, a wrong type or value for every
option, unknown or malformed worker names, ids that are not strings. Each is refused with a
specific :class:`JobQueueError` subclass and stores nothing (``count_by_state`` unchanged).
Unicode worker names and data round-trip through a dispatcher.

Then corrupt job records planted directly in Redis (garbage in a field, a missing field, text
that is not UTF-8, an id in a waiting list whose hash is gone or is not a hash): each one is
failed with a clear ``CorruptJobError`` or skipped, and the dispatcher keeps serving the rest.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from jobqueue import JobQueue
from jobqueue.errors import (
    CorruptJobError,
    InvalidArgumentError,
    InvalidOptionError,
    InvalidWorkerError,
    JobQueueError,
    NotSerializableError,
    PayloadTooLargeError,
    UnknownWorkerError,
)
from jobqueue.job import JobState
from jobqueue.submission import DEFAULT_MAX_DATA_BYTES
from jobqueue.worker import MAX_PRIORITY
from tests.reliability.support import key, redis_client

LIMIT = 4096  # max_data_bytes of the property-test queues (the default is checked apart)
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def queue(request: pytest.FixtureRequest) -> Iterator[JobQueue]:
    if request.param == "memory":
        made = JobQueue("memory://", max_data_bytes=LIMIT, load_entrypoints=False)
    else:
        url, ns = request.getfixturevalue("redis_url"), request.getfixturevalue("namespace")
        made = JobQueue(url, namespace=ns, max_data_bytes=LIMIT, load_entrypoints=False)
    made.add_worker("ok", lambda job: job.data)
    yield made
    made.close()


def refused(queue: JobQueue, error: type[JobQueueError], call: Any) -> JobQueueError:
    """``call()`` raises ``error`` (exactly that family) and stores nothing."""
    before = queue.count_by_state()
    with pytest.raises(error) as info:
        call()
    assert queue.count_by_state() == before, "a refused call stored something"
    return info.value


# -- strategies -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

poisons = st.one_of(
    st.sets(st.integers(), max_size=3),
    st.tuples(st.integers()),
    st.binary(max_size=8),
    st.builds(object),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.dictionaries(st.integers() | st.booleans() | st.none(), st.integers(), min_size=1),
    st.complex_numbers(allow_nan=False, allow_infinity=False),
    st.datetimes(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.just(Decimal("1.5")),
    # Lone surrogates: Python strings, valid to json.dumps, but no UTF-8 form to store.
    st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3),
)


def _embed(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A poison somewhere inside otherwise valid JSON."""
    return st.one_of(
        st.tuples(children, st.lists(json_values, max_size=3)).map(lambda t: [*t[1], t[0]]),
        st.tuples(children, st.text(max_size=5), st.dictionaries(st.text(), json_values)).map(
            lambda t: {**t[2], t[1]: t[0]}
        ),
    )


not_json = st.recursive(poisons, _embed, max_leaves=5)
junk = st.one_of(
    st.text(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(), st.integers(), max_size=2),
    st.builds(object),
)
bad_numbers = st.sampled_from([math.nan, math.inf, -math.inf])
bad_options: dict[str, st.SearchStrategy[Any]] = {
    "priority": junk
    | st.booleans()
    | st.floats()
    | st.integers(min_value=MAX_PRIORITY + 1)
    | st.integers(max_value=-MAX_PRIORITY - 1),
    "delay": junk
    | st.booleans()
    | bad_numbers
    | st.floats(max_value=-1e-9)
    | st.integers(max_value=-1),
    "run_at": junk | st.booleans() | bad_numbers | st.datetimes(),  # naive datetimes
    "attempts": junk
    | st.booleans()
    | st.floats()
    | st.integers(max_value=0)
    | st.integers(min_value=1001),
    "backoff": st.text()
    | st.booleans()
    | st.lists(st.integers(), max_size=2)
    | st.builds(object)
    | st.dictionaries(
        st.text().filter(lambda k: k not in ("kind", "delay", "max_delay", "jitter")),
        st.integers(),
        min_size=1,
    )
    | st.fixed_dictionaries({"kind": st.text().filter(lambda k: k not in ("fixed", "exponential"))})
    | st.fixed_dictionaries(
        {"delay": junk | bad_numbers | st.booleans() | st.integers(max_value=-1)}
    )
    | st.fixed_dictionaries({"jitter": junk | st.integers()})
    | bad_numbers
    | st.integers(max_value=-1),
    "timeout": junk
    | st.booleans()
    | bad_numbers
    | st.floats(max_value=0)
    | st.integers(max_value=0),
    "unique_key": st.integers()
    | st.booleans()
    | st.just("")
    | st.text(min_size=513)
    | st.lists(st.text(), max_size=2),
}
option_and_value = st.sampled_from(sorted(bad_options)).flatmap(
    lambda name: st.tuples(st.just(name), bad_options[name])
)


# -- refusals ---------------------------------------------------------------------------------


@PROPERTY
@given(data=not_json)
def test_data_that_is_not_json_is_refused(queue: JobQueue, data: Any) -> None:
    error = refused(queue, NotSerializableError, lambda: queue.submit_job("ok", data))
    assert "JSON" in str(error)


@PROPERTY
@given(size=st.integers(min_value=LIMIT - 1, max_value=3 * LIMIT), wide=st.booleans())
def test_payloads_over_the_limit_are_refused(queue: JobQueue, size: int, wide: bool) -> None:
    # Measured in UTF-8 bytes of the JSON text, not characters: "é" is two bytes.
    data = "é" * (size // 2) if wide else "x" * size
    assume(len(json.dumps(data, ensure_ascii=False).encode()) > LIMIT)
    error = refused(queue, PayloadTooLargeError, lambda: queue.submit_job("ok", data))
    assert f"limit of {LIMIT}" in str(error)


def test_the_documented_default_limit_is_one_mib() -> None:
    assert DEFAULT_MAX_DATA_BYTES == 1024 * 1024
    queue = JobQueue("memory://", load_entrypoints=False)
    queue.add_worker("ok", lambda job: None)
    queue.submit_job("ok", "x" * (DEFAULT_MAX_DATA_BYTES - 2))  # exactly 1 MiB of JSON
    refused(
        queue, PayloadTooLargeError, lambda: queue.submit_job("ok", "x" * DEFAULT_MAX_DATA_BYTES)
    )


@PROPERTY
@given(option=option_and_value)
def test_every_option_with_a_wrong_type_or_value_is_refused(
    queue: JobQueue, option: tuple[str, Any]
) -> None:
    name, value = option
    error = refused(queue, InvalidOptionError, lambda: queue.submit_job("ok", {}, **{name: value}))
    assert name.split("_")[0] in str(error)


def test_delay_and_run_at_together_are_refused(queue: JobQueue) -> None:
    refused(
        queue,
        InvalidOptionError,
        lambda: queue.submit_job("ok", delay=1, run_at=datetime.now().astimezone()),
    )
    refused(queue, InvalidOptionError, lambda: queue.submit_job("ok", delay=timedelta(-1)))


@PROPERTY
@given(good=st.lists(json_values, max_size=5), bad=not_json, at=st.integers(0, 5))
def test_one_bad_item_in_a_bulk_submit_stores_none(
    queue: JobQueue, good: list[Any], bad: Any, at: int
) -> None:
    datas = [*good[:at], bad, *good[at:]]
    refused(queue, NotSerializableError, lambda: queue.submit_jobs("ok", datas))


@PROPERTY
@given(name=st.text() | st.integers() | st.none() | st.binary() | st.lists(st.text(), max_size=2))
def test_unknown_worker_names_are_refused(queue: JobQueue, name: Any) -> None:
    assume(name != "ok")
    error = refused(queue, UnknownWorkerError, lambda: queue.submit_job(name, {}))
    assert "register it" in str(error)


@PROPERTY
@given(
    name=st.text(alphabet=st.sampled_from(" \t\n\r\x0b\x0c\xa0\u2003\u3000\x85\u2028"), max_size=4)
)
def test_empty_and_blank_worker_names_cannot_be_registered(queue: JobQueue, name: str) -> None:
    assume(not name.strip())
    with pytest.raises(InvalidWorkerError):
        queue.add_worker(name, lambda job: None)
    refused(queue, UnknownWorkerError, lambda: queue.submit_job(name, {}))


@PROPERTY
@given(
    job_id=st.integers()
    | st.none()
    | st.binary()
    | st.floats()
    | st.just("")
    | st.lists(st.text(), max_size=2)
)
def test_ids_that_are_not_strings_are_refused(queue: JobQueue, job_id: Any) -> None:
    refused(queue, InvalidArgumentError, lambda: queue.get_job_by_id(job_id))
    refused(queue, InvalidArgumentError, lambda: queue.remove_job(job_id))


@PROPERTY
@given(job_id=st.text(min_size=1))
def test_unknown_string_ids_are_none(queue: JobQueue, job_id: str) -> None:
    assume(not job_id.isdigit())
    assert queue.get_job_by_id(job_id) is None


@PROPERTY
@given(
    name=st.text(min_size=1, max_size=20).filter(lambda s: s.strip() and s != "ok"),
    data=json_values,
)
def test_unicode_names_and_data_round_trip_through_a_dispatcher(
    queue: JobQueue, name: str, data: Any
) -> None:
    if name not in queue.registry:
        queue.add_worker(name, lambda job: job.data)
    job = queue.submit_job(name, data)
    stored = queue.get_job_by_id(job.id)
    assert stored is not None and stored.name == name and stored.data == data
    assert queue.work(burst=True, names=[name]) == 1
    done = queue.get_job_by_id(job.id)
    assert done is not None and done.state is JobState.COMPLETED and done.result == data
    assert queue.remove_job(job.id)


# -- corrupt records planted in Redis ---------------------------------------------------------

CORRUPTIONS: dict[str, Any] = {
    "data is not JSON": lambda r, j: r.hset(j, "d", "{not json"),
    "priority is not a number": lambda r, j: r.hset(j, "p", "high"),
    "created_at is not a number": lambda r, j: r.hset(j, "c", "yesterday"),
    "options are not an object": lambda r, j: r.hset(j, "o", "[1, 2]"),
    "data is not UTF-8": lambda r, j: r.hset(j, "d", b'\xff\xfe"x"'),
    "error is not an object": lambda r, j: r.hset(j, "E", "42"),
    # A hash without its name, state or creation time is foreign data, not a job to guess at.
    "name missing": lambda r, j: r.hdel(j, "n"),
    # A key that is no hash is replaced by the failed job's record (the key is the namespace's).
    "key is not a hash": lambda r, j: (r.delete(j), r.set(j, "someone else's value")),
}
REPAIRED = {
    "attempts made is not a number": lambda r, j: r.hset(j, "m", "lots"),
}
SKIPPED = {
    "hash deleted": lambda r, j: r.delete(j),
}


@pytest.mark.redis
@pytest.mark.parametrize("prefetch", [1, 10])
def test_corrupt_records_fail_or_are_skipped_and_the_rest_is_served(
    redis_url: str, namespace: str, prefetch: int, caplog: pytest.LogCaptureFixture
) -> None:
    queue = JobQueue(redis_url, namespace=namespace, load_entrypoints=False)
    queue.add_worker("ok", lambda job: {"ok": job.id})
    client = redis_client(queue)
    plans = {**CORRUPTIONS, **REPAIRED, **SKIPPED}
    jobs = queue.submit_jobs("ok", [{"n": n} for n in range(len(plans) * 3)])
    # Every third job is damaged; the others are healthy neighbours.
    damaged = {jobs[3 * n + 1].id: what for n, what in enumerate(plans)}
    for job_id, what in damaged.items():
        plans[what](client, key(namespace, f"j:{job_id}"))
    client.rpush(key(namespace, "r:ok:0"), "no-such-job")  # an id with no hash at all

    processed = queue.work(burst=True, prefetch=prefetch)

    healthy = [job.id for job in jobs if job.id not in damaged]
    for job_id in healthy:
        job = queue.get_job_by_id(job_id)
        assert job is not None and job.state is JobState.COMPLETED, job
    for job_id, what in damaged.items():
        raw = (
            {k.decode(): v for k, v in client.hgetall(key(namespace, f"j:{job_id}")).items()}
            if what not in SKIPPED
            else {}
        )
        if what in CORRUPTIONS:
            assert raw["s"] == b"f", (what, raw)
            error = json.loads(raw["E"])
            assert error["type"] == "CorruptJobError", (what, error)
            assert f"job {job_id}" in error["message"] and "malformed" in error["message"]
            try:  # still unreadable, or readable once the failure replaced the bad field
                failed = queue.get_job_by_id(job_id)
            except CorruptJobError as exc:
                assert f"stored job {job_id} is malformed" in str(exc)
            else:
                assert failed is not None and failed.state is JobState.FAILED
                assert failed.error is not None and failed.error.type == "CorruptJobError"
        elif what in REPAIRED:
            job = queue.get_job_by_id(job_id)
            assert job is not None and job.state is JobState.COMPLETED, (what, job)
    counts = queue.count_by_state()
    assert counts[JobState.WAITING] == counts[JobState.ACTIVE] == 0
    assert counts[JobState.FAILED] == len(CORRUPTIONS)
    assert counts[JobState.COMPLETED] == len(healthy) + len(REPAIRED)
    assert processed == len(healthy) + len(REPAIRED)
    assert "failing corrupt job" in caplog.text
    queue.close()
