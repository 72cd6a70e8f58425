"""``jobqueue dashboard``: its refusals in-process, and real servers in subprocesses."""

from __future__ import annotations

import os
import queue as queue_module
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobqueue import JobQueue
from jobqueue.cli import dashboard, main

REPO = Path(__file__).resolve().parent.parent
TOKEN = "t0ken-for-tests"
NO_CREDENTIALS = {"JOBQUEUE_DASHBOARD_TOKEN": None, "JOBQUEUE_DASHBOARD_BASIC": None}


@pytest.fixture(autouse=True)
def no_credentials_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NO_CREDENTIALS:
        monkeypatch.delenv(name, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["dashboard", "--url", "memory://", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--host", "0.0.0.0"], ["0.0.0.0 without credentials", "JOBQUEUE_DASHBOARD_TOKEN"]),
        (["--host", "::"], [":: without credentials", "JOBQUEUE_DASHBOARD_BASIC"]),
        (["--host", "192.168.10.20"], ["192.168.10.20 without credentials"]),
        (["--host", "dashboard.example.com"], ["dashboard.example.com without credentials"]),
        (["--host", "::ffff:10.0.0.1"], ["without credentials"]),
        (["--host", " "], ["--host"]),
        (["--port", "65536"], ["--port must be from 0 to 65535"]),
        (["--port", "-1"], ["--port must be from 0 to 65535"]),
        (["--prefix", "jobqueue"], ["--prefix must start with '/'"]),
        (["--prefix", "/{name}"], ["--prefix must be a path"]),
        (["--prefix", "/ops/../jobs"], ["--prefix must be a path"]),
        (["--prefix", "/a?b=1"], ["--prefix must be a path"]),
        (["--token-env", "NOT_SET_ANYWHERE_42"], ["--token-env NOT_SET_ANYWHERE_42", "not set"]),
        (["--basic-env", "NOT_SET_ANYWHERE_42"], ["--basic-env NOT_SET_ANYWHERE_42"]),
        (["--token-env", "no-such name"], ["--token-env must name an environment variable"]),
        (["--allowed-host", "jobs.example.com"], ["--allowed-host needs credentials"]),
        (["--allowed-host", "*"], ["--allowed-host needs credentials"]),
    ],
)
def test_refusals_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert_one_error_line(code, err, *fragments)
    assert out == ""


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        ({"JOBQUEUE_DASHBOARD_TOKEN": ""}, ["$JOBQUEUE_DASHBOARD_TOKEN is set but empty"]),
        ({"JOBQUEUE_DASHBOARD_TOKEN": "  "}, ["$JOBQUEUE_DASHBOARD_TOKEN is set but empty"]),
        ({"JOBQUEUE_DASHBOARD_BASIC": ""}, ["$JOBQUEUE_DASHBOARD_BASIC is set but empty"]),
        ({"JOBQUEUE_DASHBOARD_BASIC": "admin"}, ["must be user:password"]),
        ({"JOBQUEUE_DASHBOARD_BASIC": "admin:"}, ["must be user:password"]),
        ({"JOBQUEUE_DASHBOARD_BASIC": ":secret"}, ["must be user:password"]),
        ({"MY_TOKEN": ""}, ["$MY_TOKEN is set but empty"]),
    ],
)
def test_bad_credentials_in_the_environment(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    fragments: list[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    argv = ["--token-env", "MY_TOKEN"] if "MY_TOKEN" in env else []
    code, _, err = run(capsys, *argv)
    assert_one_error_line(code, err, *fragments)
    for value in env.values():
        if value.strip():
            assert value not in err  # a secret, even a malformed one, is never echoed


def test_a_taken_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "--port", str(port))
    assert_one_error_line(code, err, f"cannot serve the dashboard on 127.0.0.1:{port}")


def test_without_the_extra_it_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # importing it now raises ImportError
    code, _, err = run(capsys)
    assert_one_error_line(code, err, "pip install 'jobqueue[dashboard]'")


def test_credentials_allow_any_address(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a token (or basic credentials) a non-loopback --host is served. Nothing listens
    on it here: binding and serving are stand-ins recording what they were given."""
    served: dict[str, Any] = {}

    def bind(host: str, port: int) -> socket.socket:
        served["host"] = host
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        return sock

    def serve(config: Any, sock: socket.socket, ready: str) -> int:
        served["ready"] = ready
        return signal.SIGTERM

    monkeypatch.setattr(dashboard, "_bind", bind)
    monkeypatch.setattr(dashboard, "_serve", serve)
    monkeypatch.setenv("JOBQUEUE_DASHBOARD_TOKEN", TOKEN)
    code, _, err = run(capsys, "--host", "0.0.0.0", "--read-only")
    assert code == 0, err
    assert served["host"] == "0.0.0.0"
    assert "bearer token from $JOBQUEUE_DASHBOARD_TOKEN" in served["ready"]
    assert "read-only" in served["ready"] and TOKEN not in served["ready"]
    monkeypatch.delenv("JOBQUEUE_DASHBOARD_TOKEN")
    monkeypatch.setenv("OPS_LOGIN", "ops:pässword")
    code, _, err = run(capsys, "--host", "::", "--basic-env", "OPS_LOGIN", "--prefix", "/ops/")
    assert code == 0, err
    assert (
        "http://[::]:" in served["ready"]
        and "/ops/ (basic credentials from $OPS_LOGIN)" in (served["ready"])
    )


def test_allowed_hosts_with_credentials(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loopback names, the --host given (a name or a single address) and --allowed-host ones
    are answered; another Host is 400. The app is asked in-process, nothing listens."""
    from starlette.testclient import TestClient

    served: dict[str, Any] = {}

    def bind(host: str, port: int) -> socket.socket:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        return sock

    def serve(config: Any, sock: socket.socket, ready: str) -> int:
        served["app"], served["ready"] = config.app, ready
        return signal.SIGTERM

    monkeypatch.setattr(dashboard, "_bind", bind)
    monkeypatch.setattr(dashboard, "_serve", serve)
    monkeypatch.setenv("JOBQUEUE_DASHBOARD_TOKEN", TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}

    def status(host: str) -> int:
        client = TestClient(served["app"], base_url="http://127.0.0.1", headers=bearer)
        return client.get("/api/stats", headers={"Host": host}).status_code

    code, _, err = run(capsys, "--host", "0.0.0.0")
    assert code == 0, err
    assert [status(h) for h in ("localhost:8080", "127.0.0.1", "[::1]:8080")] == [200] * 3
    assert [status(h) for h in ("0.0.0.0", "jobs.example.com", "10.1.2.3")] == [400] * 3
    assert "also answering" not in served["ready"]

    code, _, err = run(
        capsys, "--host", "dash.example.com", "--allowed-host", "jobs.example.com",
        "--allowed-host", ".ops.example",
    )  # fmt: skip
    assert code == 0, err
    allowed = ("dash.example.com", "jobs.example.com:443", "a.ops.example", "localhost")
    assert [status(h) for h in allowed] == [200] * 4
    assert [status(h) for h in ("rebind.evil.example", "example.com", "")] == [400] * 3
    assert "also answering to dash.example.com, jobs.example.com, .ops.example" in (served["ready"])

    code, _, err = run(capsys, "--host", "10.0.0.5", "--allowed-host", "*")
    assert code == 0, err
    assert status("10.0.0.5:8080") == 200 and status("anything.example") == 200

    code, _, err = run(capsys, "--allowed-host", "https://jobs.example.com")
    assert_one_error_line(code, err, "not a host name")


def test_loopback_hosts() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "localhost", "LOCALHOST", "::ffff:127.0.0.1"):
        assert dashboard.is_loopback_host(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "example.com", "localhost.evil"):
        assert not dashboard.is_loopback_host(host), host


def test_subprocess_refusal_has_no_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobqueue", "dashboard", "--url", "memory://", "--host", "0.0.0.0"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: refusing to serve the dashboard on 0.0.0.0")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


# -- real servers -----------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NO_CREDENTIALS}
    return {**env, **extra}


class Dashboard:
    """A ``jobqueue dashboard`` process, its stderr read by a (daemon) thread."""

    def __init__(self, *argv: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jobqueue", "dashboard", "--port", "0", *argv],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue_module.Queue[str | None] = queue_module.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def url(self, timeout: float = 30.0) -> str:
        """The URL of its 'serving the dashboard on ...' line, waited for at most
        ``timeout`` seconds; then polls it until it answers (bounded too)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue_module.Empty:
                raise AssertionError(f"no 'serving' line in {timeout}s: {self.stderr}") from None
            assert line is not None, f"it exited ({self.process.poll()}): {self.stderr}"
            if line.startswith("serving the dashboard on "):
                url = line.split()[4]
                break
        with httpx.Client(trust_env=False, timeout=5) as client:
            while True:
                try:
                    client.get(url)
                    return url
                except httpx.TransportError:
                    assert time.monotonic() < deadline, f"{url} never answered"
                    time.sleep(0.05)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    with JobQueue(url, load_entrypoints=False) as queue:
        queue.add_worker("mail", lambda job: None)
        queue.submit_job("mail", {"to": "ada@example.com"})
    yield url


def client() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=10)


def test_serves_loopback_without_credentials_and_stops_on_sigterm(sqlite_url: str) -> None:
    server = Dashboard("--url", sqlite_url, env=_env())
    try:
        url = server.url()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        with client() as http:
            stats = http.get(f"{url}api/stats")
            assert stats.status_code == 200, stats.text
            assert stats.json()["states"]["waiting"] == 1
            assert stats.headers["x-frame-options"] == "DENY"
            assert "server" not in stats.headers
            csrf = http.get(f"{url}api/csrf").json()["token"]
            paused = http.post(f"{url}api/names/mail/pause", headers={"X-JobQueue-CSRF": csrf})
            assert paused.json() == {"paused": ["mail"]}
        started = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0, server.stderr
        assert time.monotonic() - started < 15
    finally:
        server.close()
    assert "Traceback" not in "".join(server.stderr)
    (line,) = [line for line in server.stderr if line.startswith("serving")]
    assert "(loopback clients only, no credentials)" in line


def _raw(url: str, request: str) -> tuple[int, str]:
    """Send ``request`` (an HTTP/1.x request, verbatim) to the server of ``url``; its status
    and body. Raw, so the Host header is exactly what the test says, or absent."""
    address = httpx.URL(url)
    with socket.create_connection((address.host, address.port or 80), timeout=10) as sock:
        sock.sendall(request.encode("latin-1"))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.decode("latin-1").partition("\r\n\r\n")
    return int(head.split()[1]), body


def test_a_real_dashboard_refuses_foreign_hosts(sqlite_url: str) -> None:
    """DNS rebinding against a dashboard without credentials: a page on another name that
    resolves to 127.0.0.1 reached it from loopback, read the CSRF token and paused a name."""
    server = Dashboard("--url", sqlite_url, env=_env())
    try:
        url = server.url()
        port = httpx.URL(url).port

        def get(path: str, host: str | None) -> tuple[int, str]:
            header = "" if host is None else f"Host: {host}\r\n"
            return _raw(url, f"GET {path} HTTP/1.1\r\n{header}Connection: close\r\n\r\n")

        with client() as http:
            token = http.get(f"{url}api/csrf").json()["token"]
        for host in (f"rebind.evil.example:{port}", "rebind.evil.example", "10.1.2.3", ""):
            for path in ("/", "/static/app.js", "/metrics", "/api/stats", "/api/csrf"):
                status, body = get(path, host)
                assert status == 400 and "Host" in body, (host, path, status, body)
                assert token not in body
        # HTTP/1.0 may omit Host: refused too.
        status, body = _raw(url, "GET /api/csrf HTTP/1.0\r\n\r\n")
        assert status == 400 and token not in body, body
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
            status, body = get("/api/csrf", host)
            assert status == 200 and token in body, (host, body)
        # The rebinding page's POST: its Host, the Origin matching it, and the right token.
        evil = f"rebind.evil.example:{port}"
        status, body = _raw(
            url,
            f"POST /api/names/mail/pause HTTP/1.1\r\nHost: {evil}\r\n"
            f"Origin: http://{evil}\r\nX-JobQueue-CSRF: {token}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n",
        )
        assert status == 400, body
        with client() as http:
            assert http.get(f"{url}api/stats").json()["paused"] == []
        assert server.stop(signal.SIGTERM) == 0, server.stderr
    finally:
        server.close()
    assert "Traceback" not in "".join(server.stderr)


def test_token_from_the_environment_and_a_prefix(sqlite_url: str) -> None:
    server = Dashboard(
        "--url", sqlite_url, "--prefix", "/jobqueue", env=_env(JOBQUEUE_DASHBOARD_TOKEN=TOKEN)
    )
    try:
        url = server.url()
        assert url.endswith("/jobqueue/"), url
        with client() as http:
            refused = http.get(f"{url}api/stats")
            assert refused.status_code == 401 and refused.json() == {
                "error": "authentication required"
            }
            assert refused.headers["www-authenticate"].startswith("Bearer")
            wrong = http.get(f"{url}api/stats", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            stats = http.get(f"{url}api/stats", headers=bearer)
            assert stats.status_code == 200 and stats.json()["total"] == 1
            root = url.removesuffix("jobqueue/")
            assert http.get(f"{root}api/stats", headers=bearer).status_code == 404
            moved = http.get(root)
            assert moved.status_code == 307 and moved.headers["location"] == "/jobqueue/"
        assert server.stop(signal.SIGTERM) == 0, server.stderr
    finally:
        server.close()
    assert TOKEN not in "".join(server.stderr)


def test_basic_credentials_read_only_and_ctrl_c(sqlite_url: str) -> None:
    server = Dashboard(
        "--url",
        sqlite_url,
        "--read-only",
        "--basic-env",
        "OPS_LOGIN",
        env=_env(OPS_LOGIN="ops:s3cret"),
    )
    try:
        url = server.url()
        with client() as http:
            assert http.get(f"{url}api/stats").status_code == 401
            assert http.get(f"{url}api/stats", auth=("ops", "wrong")).status_code == 401
            jobs = http.get(f"{url}api/jobs", auth=("ops", "s3cret"))
            assert jobs.status_code == 200 and len(jobs.json()["jobs"]) == 1
            csrf = http.get(f"{url}api/csrf", auth=("ops", "s3cret")).json()["token"]
            paused = http.post(
                f"{url}api/names/mail/pause",
                auth=("ops", "s3cret"),
                headers={"X-JobQueue-CSRF": csrf},
            )
            assert paused.status_code == 403 and "read-only" in paused.json()["error"]
        assert server.stop(signal.SIGINT) == 130, server.stderr  # as a Ctrl-C
    finally:
        server.close()
    assert "Traceback" not in "".join(server.stderr)
