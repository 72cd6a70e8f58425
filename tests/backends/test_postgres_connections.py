"""The PostgreSQL backend's URL, errors, clock and wake-ups, on a real server."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from jobqueue import JobQueue
from jobqueue.backend import BackendOptions, WorkSpec
from jobqueue.backends import _postgres
from jobqueue.backends.postgres import PostgresBackend, connections
from jobqueue.backends.postgres.url import parse
from jobqueue.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidURLError,
)
from jobqueue.job import Job, JobState
from tests.backends.postgres_fixtures import drop_schema, new_schema, postgres_url

__all__ = ["postgres_url"]

pytestmark = pytest.mark.postgres

WORKER = Path(__file__).with_name("postgres_process_worker.py")


@pytest.fixture
def url(postgres_url: str) -> Iterator[str]:
    schema = new_schema()
    yield f"{postgres_url}?schema={schema}"
    drop_schema(postgres_url, schema)


def a_job(name: str = "a") -> Job:
    now = time.time()
    return Job(id="", name=name, data={}, created_at=now, run_at=now)


# -- URLs --------------------------------------------------------------------------------------


def test_libpq_parameters_pass_through_and_ours_are_taken_out() -> None:
    found = parse(
        "postgres://app:secret@db.example:6432/jobs?sslmode=require&schema=queue_1"
        "&listen=false&application_name=worker&pool_size=8"
    )
    assert found.conninfo == (
        "postgres://app:secret@db.example:6432/jobs?sslmode=require&application_name=worker"
    )
    assert (found.schema, found.listen, found.pool_size) == ("queue_1", False, 8)
    assert found.database == "postgresql://db.example:6432/jobs"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://h/db", "use postgresql://"),
        ("postgresql://h/db?sslmod=require", "sslmod"),
        ("postgresql://h/db?schema=Bad-Name", "schema name"),
        ("postgresql://h/db?listen=maybe", "listen='maybe'"),
        ("postgresql://h/db?pool_size=1", "pool_size"),
        ("postgresql://h:99999/db", "bad PostgreSQL URL"),
    ],
)
def test_a_bad_url_is_refused_in_one_line(url: str, words: str) -> None:
    with pytest.raises(InvalidURLError, match=words) as raised:
        parse(url)
    assert "\n" not in str(raised.value)


def test_a_password_never_shows_in_an_error() -> None:
    with pytest.raises(InvalidURLError) as raised:
        parse("postgresql://app:hunter2@h/db?nonsense=1")
    assert "hunter2" not in str(raised.value)


def test_without_psycopg_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'jobqueue\[postgres\]'"):
        _postgres("postgresql://127.0.0.1/db", BackendOptions())


def test_both_schemes_open_a_queue(url: str) -> None:
    for scheme in ("postgresql", "postgres"):
        with JobQueue(url.replace("postgresql", scheme, 1), load_entrypoints=False) as queue:
            assert type(queue.backend.store).__name__ == "PostgresBackend"


def test_no_server_is_unavailable_in_one_line() -> None:
    with pytest.raises(BackendUnavailableError, match="unavailable") as raised:
        PostgresBackend("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")
    assert "127.0.0.1:1/none" in str(raised.value)


def test_a_dead_pooled_connection_is_replaced_once(url: str, postgres_url: str) -> None:
    backend = PostgresBackend(url)
    try:
        backend.insert([a_job()])  # the write connection is open now
        writer = backend._link._writer
        assert writer is not None
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (writer.raw.info.backend_pid,))
        (job,) = backend.insert([a_job()])  # on a new connection, nothing written twice
        assert backend.get(job.id) is not None
        assert backend.counts()["a"][JobState.WAITING] == 2
    finally:
        backend.close()


# -- the server's clock ------------------------------------------------------------------------


class SkewedTime:
    """The ``time`` module of a host whose clock is an hour ahead."""

    SKEW = 3600.0

    @staticmethod
    def time() -> float:
        return time.time() + SkewedTime.SKEW


def test_leases_are_measured_on_the_servers_clock(
    url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "time", SkewedTime)
    backend = PostgresBackend(url)  # the default clock: the server's
    try:
        assert backend.server_clock
        backend.insert([a_job()])
        (claim,) = backend.claim_many(WorkSpec(("a",), lease_seconds=30.0), 1)
        with psycopg.connect(postgres_url) as conn:
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        assert row is not None
        # Set from the server's clock, not the host's (an hour ahead).
        assert abs(claim.lease_expires_at - 30.0 - row[0]) < SkewedTime.SKEW / 2
        assert abs(backend.options.clock() - row[0]) < SkewedTime.SKEW / 2
    finally:
        backend.close()


def test_a_given_clock_is_kept(url: str) -> None:
    backend = PostgresBackend(url, BackendOptions(clock=lambda: 1000.0))
    try:
        assert not backend.server_clock
        backend.insert([Job(id="", name="a", data={}, created_at=1.0, run_at=1.0)])
        (claim,) = backend.claim_many(WorkSpec(("a",), lease_seconds=30.0), 1)
        assert claim.lease_expires_at == 1030.0
    finally:
        backend.close()


# -- wake-ups ----------------------------------------------------------------------------------


def submit_from_another_process(url: str, name: str) -> str:
    done = subprocess.run(
        [sys.executable, str(WORKER), "submit", url, name],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def listening_backend(url: str) -> PostgresBackend:
    backend = PostgresBackend(url)
    hub = backend._link.signal.wakeups
    assert hub is not None and hub.wait_listening(backend._link._dialect.channel, 30)
    assert not backend._link.polls  # only a notification can end a wait now
    return backend


def test_another_processs_submit_wakes_a_waiter_through_listen(url: str) -> None:
    backend = listening_backend(url)
    try:
        # The waiter neither polls nor times out first: the NOTIFY is what wakes it.
        result: list[bool] = []
        waiter = threading.Thread(target=lambda: result.append(backend.wait_for_work(["a"], 120)))
        waiter.start()
        submit_from_another_process(url, "a")
        waiter.join()
        assert result == [True]
    finally:
        backend.close()


def test_wake_ups_resume_after_the_listen_connection_is_killed(url: str, postgres_url: str) -> None:
    backend = listening_backend(url)
    try:
        hub = backend._link.signal.wakeups
        assert hub is not None
        channel, generation = backend._link._dialect.channel, hub.generation
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (hub.listener_pid,))
        assert hub.wait_listening(channel, 30, after=generation)  # reconnected on its own
        assert not backend._link.polls
        submit_from_another_process(url, "a")
        assert backend.wait_for_work(["a"], 120)
    finally:
        backend.close()


def test_listen_false_opens_no_listen_connection_and_polls(url: str) -> None:
    backend = PostgresBackend(f"{url}&listen=false")
    try:
        assert backend._link.polls
        hub = backend._link.signal.wakeups
        assert hub is not None and not hub.wait_listening(backend._link._dialect.channel, 0)
        submit_from_another_process(url, "a")
        assert backend.wait_for_work(["a"], 120)
    finally:
        backend.close()


def test_reads_and_writes_ride_over_killed_connections(url: str, postgres_url: str) -> None:
    """As after a server restart: every connection the backend holds is dead."""
    backend = PostgresBackend(url)
    try:
        (job,) = backend.insert([a_job()])
        assert backend.get(job.id) is not None
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        assert backend.get(job.id) is not None
        backend.insert([a_job()])
        assert backend.counts()["a"][JobState.WAITING] == 2
    finally:
        backend.close()


def test_a_backend_opened_before_a_fork_refuses_to_work_in_the_child(url: str) -> None:
    import os

    backend = PostgresBackend(url)
    try:
        backend.insert([a_job()])
        pid = os.fork()
        if pid == 0:  # the child: a clear error, and the parent's sessions untouched
            code = 1
            try:
                backend.insert([a_job()])
            except BackendError as exc:
                code = 0 if "before a fork" in str(exc) else 2
            backend.close()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        backend.insert([a_job()])  # the parent's connections still work
        assert backend.counts()["a"][JobState.WAITING] == 2
    finally:
        backend.close()
