"""What a new user meets first: clear errors in the right family, options that work as the
docs say, ``wait_for`` that tells a timeout from an unknown id, increasing decimal ids."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobqueue import (
    ConfigurationError,
    Handler,
    InvalidJobDataError,
    InvalidJobError,
    InvalidOptionError,
    InvalidSettingError,
    InvalidURLError,
    InvalidWorkerError,
    JobNotFoundError,
    JobQueue,
    JobState,
    RunningJob,
    TLSVerificationError,
    Worker,
)
from jobqueue.runtime.dispatcher import Dispatcher
from tests.backends.redis_fixtures import delete_namespace, new_namespace, redis_url

__all__ = ["redis_url"]  # the session fixture, used below


class ContactImport:
    def handle(self, job: RunningJob) -> dict[str, str]:
        return {"user": job.data["user"]}

    def get_title(self, data: dict[str, str]) -> str:
        return f"Import contacts for {data['user']}"


@pytest.fixture(params=["memory://", "sqlite"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobQueue]:
    url = request.param if request.param != "sqlite" else f"sqlite:///{tmp_path / 'jobs.db'}"
    with JobQueue(url, load_entrypoints=False) as queue:
        queue.add_worker("contact-import", ContactImport())
        yield queue


def nothing_stored(queue: JobQueue) -> bool:
    return sum(queue.count_by_state().values()) == 0


def test_handler_protocol_is_exported() -> None:
    assert isinstance(ContactImport(), Handler)


def test_get_title_that_raises_is_a_job_input_error_naming_the_worker(queue: JobQueue) -> None:
    with pytest.raises(InvalidJobDataError) as caught:
        queue.submit_job("contact-import", {"account": "a1"})
    message = str(caught.value)
    assert "worker 'contact-import'" in message and "KeyError" in message and "'user'" in message
    assert isinstance(caught.value, InvalidJobError)
    assert nothing_stored(queue)
    with pytest.raises(InvalidJobDataError):
        queue.submit_jobs("contact-import", [{"user": "u1"}, {"nope": 1}])
    assert nothing_stored(queue)


def test_get_title_does_not_hide_option_checks(queue: JobQueue) -> None:
    """A bad option is reported as such even when get_title would fail on the data too."""
    with pytest.raises(InvalidOptionError, match="priority"):
        queue.submit_job("contact-import", {"account": "a1"}, priority="high")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="delay"):
        queue.submit_job("contact-import", {"account": "a1"}, delay=-1)
    assert nothing_stored(queue)


def test_unknown_submit_option_is_refused_naming_the_known_ones(queue: JobQueue) -> None:
    with pytest.raises(InvalidOptionError, match=r"unknown submit option\(s\) retries.*attempts"):
        queue.submit_job("contact-import", {"user": "u1"}, retries=3)
    with pytest.raises(InvalidOptionError, match="unknown submit option"):
        queue.submit_jobs("contact-import", [{"user": "u1"}], retries=3)
    assert nothing_stored(queue)


def test_exclusive_works_on_worker_as_the_docs_say(queue: JobQueue) -> None:
    worker = Worker("reindex", lambda job: None, exclusive=True)
    assert worker.max_active == 1
    queue.add_worker(worker)
    assert queue.dispatcher().spec.max_active["reindex"] == 1
    assert queue.add_worker("mail", lambda job: None, exclusive=True).max_active == 1
    with pytest.raises(InvalidWorkerError, match="exclusive=True means max_active=1"):
        Worker("both", lambda job: None, exclusive=True, max_active=3)


def test_worker_option_mistakes_are_configuration_errors() -> None:
    with pytest.raises(InvalidWorkerError, match="worker 'w': attempts must be"):
        Worker("w", lambda job: None, attempts=0)
    with pytest.raises(InvalidWorkerError, match=r"unknown worker option\(s\) retries"):
        JobQueue("memory://", load_entrypoints=False).add_worker("w", print, retries=3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: JobQueue("memory://", lease_seconds=0, load_entrypoints=False),
        lambda: JobQueue("memory://", grace_seconds=-1, load_entrypoints=False),
        lambda: JobQueue("memory://", max_stalls=-1, load_entrypoints=False),
        lambda: JobQueue("memory://", load_entrypoints=False).dispatcher(concurrency=0),
        lambda: JobQueue("memory://", load_entrypoints=False).dispatcher(prefetch=0),
    ],
)
def test_setting_mistakes_are_configuration_errors(make: Any) -> None:
    with pytest.raises(InvalidSettingError) as caught:
        make()
    assert isinstance(caught.value, ConfigurationError)
    assert not isinstance(caught.value, InvalidJobError)


def test_dispatcher_setting_mistakes_are_configuration_errors() -> None:
    queue = JobQueue("memory://", load_entrypoints=False)
    with pytest.raises(ConfigurationError):
        Dispatcher(queue.backend, queue.registry, queue.plugins.hook, lease_seconds=0)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://[::1", "bad backend URL"),
        ("redis://localhost:6379/0?namspace=x", "namspace"),
        ("redis://localhost:6379/0?bogus=1", "known: namespace, cluster"),
        ("redis://localhost:6379/abc", "database by number"),
        ("rediss://localhost:6379/0?cluster=maybe", "cluster= takes true or false"),
        ("memory://x", "bad memory URL"),
        ("sqlite:///jobs.db?bogus=1", "known: busy_timeout, synchronous"),
    ],
)
def test_malformed_urls_are_refused_when_the_queue_is_created(url: str, message: str) -> None:
    with pytest.raises(InvalidURLError) as caught:
        JobQueue(url, load_entrypoints=False)
    assert message in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)


def test_wait_for_tells_timeout_from_unknown_id(queue: JobQueue) -> None:
    with pytest.raises(JobNotFoundError, match="no job with id '999'"):
        queue.wait_for("999", timeout=0.1)
    job = queue.submit_job("contact-import", {"user": "u1"})
    assert queue.wait_for(job.id, timeout=0.05) is None  # exists, not finished: a timeout
    queue.work(burst=True)
    finished = queue.wait_for(job.id, timeout=5)
    assert finished is not None and finished.state is JobState.COMPLETED


def test_wait_for_a_job_removed_meanwhile_raises(queue: JobQueue) -> None:
    job = queue.submit_job("contact-import", {"user": "u1"})
    waiting = threading.Event()
    outcome: list[object] = []
    original = queue.backend.wait_for_finish

    def wait_then_note(job_id: str, timeout: float) -> Any:
        waiting.set()
        return original(job_id, timeout)

    queue.backend.wait_for_finish = wait_then_note  # type: ignore[method-assign]

    def waiter() -> None:
        try:
            outcome.append(queue.wait_for(job.id, timeout=10))
        except JobNotFoundError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(10)
    queue.remove_job(job.id)
    thread.join(15)
    assert not thread.is_alive()
    assert isinstance(outcome[0], JobNotFoundError)


def test_ids_are_decimal_and_increasing(queue: JobQueue) -> None:
    ids = [queue.submit_job("contact-import", {"user": f"u{n}"}).id for n in range(3)]
    queue.work(burst=True)
    ids += [queue.submit_job("contact-import", {"user": f"v{n}"}).id for n in range(2)]
    numbers = [int(i) for i in ids]
    assert numbers == sorted(set(numbers)) and len(numbers) == 5


def test_duplicate_unique_key_says_it_returned_the_existing_job(queue: JobQueue) -> None:
    first = queue.submit_job("contact-import", {"user": "u1"}, unique_key="import:u1")
    again = queue.submit_job("contact-import", {"user": "u1"}, unique_key="import:u1")
    assert (first.deduplicated, again.deduplicated) == (False, True)
    assert again.id == first.id
    assert queue.count_by_state()[JobState.WAITING] == 1


def test_list_jobs_without_state_and_by_name(queue: JobQueue) -> None:
    queue.add_worker("mail", lambda job: None)
    imported = queue.submit_job("contact-import", {"user": "u1"})
    queue.work(burst=True)
    mail = queue.submit_job("mail", None, delay=600)
    waiting = queue.submit_job("contact-import", {"user": "u2"})
    everything = queue.list_jobs()
    assert {job.id for job in everything} == {imported.id, mail.id, waiting.id}
    assert [job.id for job in queue.list_jobs(name="mail")] == [mail.id]
    assert {job.id for job in queue.list_jobs(name="contact-import")} == {
        imported.id,
        waiting.id,
    }
    assert [job.id for job in queue.list_jobs(JobState.COMPLETED, name="mail")] == []
    assert len(queue.list_jobs(limit=1)) == 1


def test_namespace_comes_from_the_environment(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = new_namespace()
    monkeypatch.setenv("JOBQUEUE_NAMESPACE", namespace)
    queue = JobQueue(redis_url, load_entrypoints=False)
    store = getattr(queue.backend, "store", queue.backend)  # under the core's Engine
    try:
        assert store.namespace == namespace
        queue.add_worker("w", lambda job: None)
        queue.submit_job("w", None)
        client = redis.Redis.from_url(redis_url)
        assert list(client.scan_iter(match=f"jq:{{{namespace}}}:*"))
    finally:
        delete_namespace(store.client, namespace)
        queue.close()


def test_unreachable_redis_does_not_promise_nothing_was_stored() -> None:
    from jobqueue import BackendUnavailableError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    queue = JobQueue(f"redis://127.0.0.1:{port}/0", load_entrypoints=False)
    with pytest.raises(BackendUnavailableError) as caught:
        queue.count_by_state()
    assert "nothing was changed" not in str(caught.value)
    assert "may or may not" in str(caught.value)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[int]:
    """A TLS server with a self-signed certificate, which no default CA trusts."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass  # the client refuses our certificate: that is the point

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_tls_certificate_failure_is_a_configuration_error(tls_server: int) -> None:
    queue = JobQueue(f"rediss://127.0.0.1:{tls_server}/0", load_entrypoints=False)
    with pytest.raises(TLSVerificationError) as caught:
        queue.count_by_state()
    assert isinstance(caught.value, ConfigurationError)
    assert "certificate" in str(caught.value) and "ssl_ca_certs" in str(caught.value)


def test_async_submit_refuses_unknown_options_too(queue: JobQueue) -> None:
    import asyncio

    async def main() -> None:
        with pytest.raises(InvalidOptionError, match="retries"):
            await queue.aio.submit_job("contact-import", {"user": "u1"}, retries=3)
        with pytest.raises(InvalidOptionError, match="retries"):
            await queue.aio.submit_jobs("contact-import", [{"user": "u1"}], retries=3)
        await queue.aio.close()

    asyncio.run(main())
    assert nothing_stored(queue)
