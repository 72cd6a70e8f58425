"""A reply lost after Redis applied the command is never applied twice.

The connection is wrapped so that the reply to the next command is read (the server has
applied it) and then a ``ConnectionError`` is raised, as when a connection drops between the
server's write and the client's read. The backend resends the command once, marked as a
repeat; each script answers the repeat with what its first run did (the verbs are the
core's, ``Engine``, over ``apply``'s lanes: a resent apply answers what its first run
answered). On real Redis and on fakeredis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, cast

import fakeredis
import pytest
import redis

from jobqueue.backend import BackendOptions, TickClaim, TickOutcome, TickResult, WorkSpec
from jobqueue.backends.redis import RedisBackend
from jobqueue.backends.redis.scripts import SCRIPT_NAMES
from jobqueue.engine import Engine
from jobqueue.errors import LeaseLostError
from jobqueue.job import Job, JobError, JobState
from jobqueue.testing import ManualClock
from tests.backends.redis_fixtures import delete_namespace, new_namespace, redis_url

__all__ = ["redis_url"]

SPEC = WorkSpec(("a",), lease_seconds=10)


@pytest.fixture(params=["redis", "fakeredis"])
def backend(request: pytest.FixtureRequest) -> Iterator[Engine]:
    options = BackendOptions(clock=ManualClock())
    client: Any
    if request.param == "redis":
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    else:
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    made = RedisBackend(client, options, namespace=new_namespace())
    yield Engine(made)
    delete_namespace(client, made.namespace)
    made.close()


def lose_next_reply(backend: Engine | RedisBackend, script: str | None = None) -> list[int]:
    """Make the next reply on this thread's connection (to a call of ``script``, when
    given: a verb may read before it writes) arrive and then be lost; returns a list that
    counts the commands (of ``script``) sent from then on."""
    store = cast("RedisBackend", backend.store if isinstance(backend, Engine) else backend)
    marks = (
        ()
        if script is None
        else (store.calls.library.functions[script].encode(), store.calls.sha[script].encode())
    )
    last: list[bool] = []
    store.counts()  # the thread's connection is open (and fakeredis's scripts chosen)
    for name in SCRIPT_NAMES:  # so that the reply lost is not a NOSCRIPT (on scripts)
        store.client.script_load(store.calls.scripts[name].source)
    connection = store._connections.held()  # type: ignore[union-attr]
    sent: list[int] = []
    send, read = connection.send_packed_command, connection.read_response

    def counting_send(command: Any, *args: Any, **kwargs: Any) -> None:
        # Not the handshake of a reconnection (the backend packs its commands itself).
        whole = b"".join(bytes(part) for part in command) if isinstance(command, list) else command
        head = bytes(whole)[:32]
        wanted = not marks or any(mark in bytes(whole) for mark in marks)
        last[:] = [wanted]
        if (b"\r\nFCALL\r\n" in head or b"\r\nEVALSHA\r\n" in head) and wanted:
            sent.append(1)
        send(command, *args, **kwargs)

    def losing_read(*args: Any, **kwargs: Any) -> Any:
        if not last[0]:  # another script's reply: read as usual
            return read(*args, **kwargs)
        del connection.read_response  # once only
        read(*args, **kwargs)  # the server applied it and answered...
        raise redis.exceptions.ConnectionError("reply lost on purpose")  # ...in vain

    connection.send_packed_command = counting_send
    connection.read_response = losing_read
    return sent


def new_job(data: Any = 1) -> Job:
    return Job(id="", name="a", data=data, created_at=0.0, run_at=0.0)


def test_a_resent_submit_stores_one_job(backend: Engine) -> None:
    sent = lose_next_reply(backend)
    stored = backend.submit(new_job("only"))
    assert len(sent) == 2  # it was sent again
    assert backend.count_by_state()[JobState.WAITING] == 1
    found = backend.get(stored.id)
    assert found is not None and found.data == "only"


def test_a_resent_submit_many_returns_the_same_ids(backend: Engine) -> None:
    held = backend.submit(dataclasses.replace(new_job("held"), unique_key="k"))
    sent = lose_next_reply(backend)
    jobs = [new_job(n) for n in range(3)] + [dataclasses.replace(new_job("dup"), unique_key="k")]
    stored = backend.submit_many(jobs)
    assert len(sent) == 2
    assert [job.data for job in stored[:3]] == [0, 1, 2]
    assert stored[3].id == held.id and stored[3].deduplicated
    assert backend.count_by_state()[JobState.WAITING] == 4
    assert {job.id for job in stored[:3]} == {
        claim.job.id for claim in backend.claim_many(SPEC, 10) if claim.job.id != held.id
    }


def test_a_resent_completion_is_reported_completed(backend: Engine) -> None:
    job = backend.submit(new_job())
    claim = backend.claim(SPEC)
    assert claim is not None
    sent = lose_next_reply(backend, "apply")
    assert backend.complete(job.id, claim.token, "result", None) is None  # not LeaseLostError
    assert len(sent) == 2
    assert list(backend.outcome_counts(0).values()) == [{"completed": 1}]  # counted once
    done = backend.get(job.id)
    assert done is not None and done.state is JobState.COMPLETED and done.result == "result"
    # A deliberate second call is idempotent too: it reports the completion, changes nothing.
    assert backend.complete(job.id, claim.token, "again", None) is None
    done = backend.get(job.id)
    assert done is not None and done.result == "result"
    with pytest.raises(LeaseLostError):  # a different outcome with that token is refused
        backend.fail(job.id, claim.token, JobError("E", "x"), None)


def test_a_resent_complete_and_claim_hands_out_the_next_job(backend: Engine) -> None:
    first, second = backend.submit(new_job(1)), backend.submit(new_job(2))
    claim = backend.claim(SPEC)
    assert claim is not None and claim.job.id == first.id
    sent = lose_next_reply(backend, "apply")
    following = backend.complete(first.id, claim.token, "r", SPEC)
    assert len(sent) == 2
    # The job the first run claimed, not a third one (nor nothing, leaving it to stall).
    assert following is not None and following.job.id == second.id
    assert backend.complete(second.id, following.token, "r", None) is None
    counts = backend.count_by_state()
    assert counts[JobState.COMPLETED] == 2 and counts[JobState.ACTIVE] == 0


@pytest.mark.parametrize(("retry_at", "state"), [(None, JobState.FAILED), (0.0, JobState.WAITING)])
def test_a_resent_failure_reports_its_state(
    backend: Engine, retry_at: float | None, state: JobState
) -> None:
    job = backend.submit(new_job())
    claim = backend.claim(SPEC)
    assert claim is not None
    lose_next_reply(backend, "apply")
    assert backend.fail(job.id, claim.token, JobError("E", "no"), retry_at) is state
    stored = backend.get(job.id)
    assert stored is not None and stored.state is state and stored.attempts_made == 1
    outcome = "failed" if retry_at is None else "retried"
    assert list(backend.outcome_counts(0).values()) == [{outcome: 1}]  # counted once


def test_a_resent_finish_many_reports_each_outcome(backend: Engine) -> None:
    from jobqueue.backend import Outcome

    jobs = backend.submit_many([new_job(1), new_job(2)])
    claims = backend.claim_many(SPEC, 2)
    outcomes = [
        Outcome(claims[0].job.id, claims[0].token, result="ok"),
        Outcome(claims[1].job.id, claims[1].token, error=JobError("E", "no")),
    ]
    lose_next_reply(backend, "apply")
    states, _ = backend.finish_many(outcomes, None, 0)
    assert states == [JobState.COMPLETED, JobState.FAILED]
    assert [backend.get(job.id).state for job in jobs] == [  # type: ignore[union-attr]
        JobState.COMPLETED,
        JobState.FAILED,
    ]
    assert list(backend.outcome_counts(0).values()) == [{"completed": 1, "failed": 1}]


def test_a_resent_promote_reports_the_job_running_now(backend: Engine) -> None:
    clock = backend.options.clock
    job = backend.submit(dataclasses.replace(new_job(), run_at=clock() + 60))
    sent = lose_next_reply(backend, "apply")
    promoted = backend.promote(job.id)  # not a JobStateError for the job now waiting
    assert len(sent) == 2
    assert promoted is not None and promoted.state is JobState.WAITING
    assert backend.count_by_state()[JobState.WAITING] == 1


def test_a_resent_bulk_cancel_cancels_each_job_once(backend: Engine) -> None:
    backend.submit_many([new_job(n) for n in range(3)])
    sent = lose_next_reply(backend, "apply")
    backend.cancel_many(JobState.WAITING)  # the count of the first run is lost with its reply
    assert len(sent) == 2
    counts = backend.count_by_state()
    assert counts[JobState.WAITING] == 0 and counts[JobState.CANCELLED] == 3
    assert backend.outcome_counts(0) == {}  # cancelling waiting jobs ends no attempt


def test_a_resent_claim_hands_out_the_job_it_took(backend: Engine) -> None:
    first = backend.submit(new_job(1))
    backend.submit(new_job(2))
    sent = lose_next_reply(backend, "apply")
    claim = backend.claim(SPEC)
    assert len(sent) == 2
    assert claim is not None and claim.job.id == first.id
    assert backend.count_by_state()[JobState.ACTIVE] == 1  # no second job left to stall


def test_a_resent_release_is_reported_released(backend: Engine) -> None:
    job = backend.submit(new_job())
    claim = backend.claim(SPEC)
    assert claim is not None
    lose_next_reply(backend, "apply")
    assert backend.release(job.id, claim.token) is True
    stored = backend.get(job.id)
    assert stored is not None and stored.state is JobState.WAITING and stored.attempts_made == 0
    assert backend.outcome_counts(0) == {}


def test_a_resent_completion_of_an_expired_lease_stays_fenced(backend: Engine) -> None:
    clock = backend.options.clock
    assert isinstance(clock, ManualClock)
    job = backend.submit(new_job())
    old = backend.claim(SPEC)
    clock.advance(11)
    assert [job.id for job in backend.maintain()] == [job.id]  # stalls are the core's
    new = backend.claim(SPEC)
    assert old is not None and new is not None and new.job.id == job.id
    lose_next_reply(backend, "apply")
    with pytest.raises(LeaseLostError):
        backend.complete(job.id, old.token, "late", None)
    assert backend.complete(job.id, new.token, "fresh", None) is None


def test_a_resent_tick_claim_submits_once_and_returns_its_job(backend: Engine) -> None:
    claim = TickClaim("nightly", "{}", 1_700_000_040, new_job("tick"), missed=2)
    sent = lose_next_reply(backend)
    result = backend.claim_tick(claim)  # not ALREADY_CLAIMED: the first run's own answer
    assert len(sent) == 2
    assert result.outcome is TickOutcome.SUBMITTED and result.job is not None
    assert result.job.state is JobState.WAITING and result.job.data == "tick"
    assert backend.count_by_state()[JobState.WAITING] == 1
    stored = backend.get(result.job.id)
    assert stored is not None and stored.data == "tick"
    record = backend.schedule_record("nightly")
    assert record is not None and record.last_job_id == result.job.id
    assert (record.missed, len(record.recent)) == (2, 1)  # counted once
    # Another scheduler's claim of that tick (another call) is refused as ever.
    assert backend.claim_tick(claim) == TickResult(TickOutcome.ALREADY_CLAIMED)


def test_a_resent_tick_claim_reports_a_skip_as_a_skip(backend: Engine) -> None:
    first = backend.claim_tick(TickClaim("s", "{}", 60, new_job()))
    assert first.outcome is TickOutcome.SUBMITTED
    sent = lose_next_reply(backend)
    skipped = backend.claim_tick(TickClaim("s", "{}", 120, new_job()))
    assert len(sent) == 2
    assert skipped == TickResult(TickOutcome.OVERLAP_SKIPPED)
    record = backend.schedule_record("s")
    assert record is not None and record.skipped == 1 and len(record.recent) == 2
    lose_next_reply(backend)
    assert backend.claim_tick(TickClaim("s", "{}", 180, None)).outcome is TickOutcome.RECORDED


def test_a_resent_log_line_is_stored_once(backend: Engine) -> None:
    job = backend.submit(new_job())
    claim = backend.claim(SPEC)
    assert claim is not None
    sent = lose_next_reply(backend, "annotate")
    assert backend.add_log(job.id, claim.token, "once")  # annotate.lua finds its line there
    assert len(sent) == 2
    stored = backend.get(job.id)
    assert stored is not None and [entry.message for entry in stored.logs] == ["once"]


# -- a large submit: batches sent while the previous reply is turned into jobs ----------------


def lose_reply_number(backend: Engine, number: int) -> list[int]:
    """Lose the ``number``-th reply read on this thread's connection from now on (the server
    applied that command); returns a list counting the reads."""
    backend.count_by_state()
    connection = cast("RedisBackend", backend.store)._connections.held()  # type: ignore[union-attr]
    read = connection.read_response
    reads: list[int] = []

    def losing_read(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        reply = read(*args, **kwargs)
        if len(reads) == number:
            raise redis.exceptions.ConnectionError("reply lost on purpose")
        return reply

    connection.read_response = losing_read
    return reads


@pytest.mark.parametrize("lost", [1, 2, 3])
def test_a_large_submit_with_a_batch_reply_lost_stores_every_job_once(
    backend: Engine, lost: int
) -> None:
    lose_reply_number(backend, lost)
    stored = backend.submit_many([new_job(n) for n in range(1_300)])  # batches of 500
    assert [job.data for job in stored] == list(range(1_300))
    assert len({job.id for job in stored}) == 1_300
    assert backend.count_by_state()[JobState.WAITING] == 1_300
    claims = backend.claim_many(SPEC, 1_000) + backend.claim_many(SPEC, 1_000)
    assert [claim.job.id for claim in claims] == [job.id for job in stored]  # in order, once


def test_a_large_submit_reloads_the_library_the_server_lost() -> None:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(version=(7,)))
    backend = Engine(RedisBackend(client, BackendOptions(clock=ManualClock()), namespace="n"))
    backend.submit(new_job("first"))  # the library is loaded...
    client.execute_command("FUNCTION", "FLUSH")  # ... and lost (a restart, a failover)
    stored = backend.submit_many([new_job(n) for n in range(1_200)])
    assert [job.data for job in stored] == list(range(1_200))
    assert backend.count_by_state()[JobState.WAITING] == 1_201
