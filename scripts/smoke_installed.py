"""Smoke-test an installed jobqueue: the wheel as users get it, not the source tree.

    python scripts/smoke_installed.py [--redis-url URL] [--sqlite-fixture FILE]

Run with the interpreter of a virtualenv the wheel was installed into (with the ``dashboard``
extra and httpx, for Starlette's TestClient), from a directory outside the checkout: .ci/run
does that. It refuses to run against a jobqueue imported from a source tree. On memory://, an
SQLite file that starts out empty (so every migration runs) and a fresh Redis namespace
(deleted after): submit a job, work it, read it back; the dashboard's page, every static file
the page loads (followed through HTML, CSS and ES module imports) and its JSON API; the
``jobqueue`` command's ``--help`` and ``stats``. With ``--sqlite-fixture``, a copy of an SQLite
file written by an older release is upgraded and read too. Exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import redis
from starlette.testclient import TestClient

import jobqueue
from jobqueue import JobQueue, JobState, RunningJob
from jobqueue.backends.sqlite import SCHEMA_VERSION
from jobqueue.dashboard import create_app

CHECKOUT = Path(__file__).resolve().parent.parent
HTML_REFS = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")
CSS_REFS = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)""")
JS_REFS = re.compile(
    r"""(?:\bimport\s*(?:[\w*{}\s,$]+\s*from\s*)?|\bexport\s*[\w*{}\s,$]+\s*from\s*"""
    r"""|\bimport\s*\(\s*)["']([^"']+)["']"""
)


def step(message: str) -> None:
    print(f"smoke: {message}", flush=True)


def check_installed_copy() -> None:
    where = Path(jobqueue.__file__).resolve()
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert site in where.parents, f"jobqueue imported from {where}, not from {site}"
    assert CHECKOUT not in where.parents, f"jobqueue imported from the checkout: {where}"
    step(f"jobqueue {jobqueue.__version__} from {where.parent}")
    # Every file of the source tree, installed: what no request below happens to load too.
    source = CHECKOUT / "src" / "jobqueue"
    if source.is_dir():
        missing = sorted(set(package_files(source)) - set(package_files(where.parent)))
        assert not missing, f"not installed: {missing}"
        step(f"  all {len(package_files(source))} files of src/jobqueue installed")


def package_files(root: Path) -> list[str]:
    return [
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]


def handle(job: RunningJob) -> dict[str, object]:
    job.progress(50, "half way")
    job.log("smoke line")
    return {"echo": job.data}


def submit_and_work(queue: JobQueue) -> str:
    job = queue.submit_job("smoke", {"n": 1}, unique_key="smoke-1")
    later = queue.submit_job("smoke", {"n": 2}, delay=3600)
    assert queue.work(burst=True) == 1
    done = queue.get_job_by_id(job.id)
    assert done is not None and done.state is JobState.COMPLETED, done
    assert done.result == {"echo": {"n": 1}} and done.progress == 50
    assert [line.message for line in done.logs] == ["smoke line"]
    still = queue.get_job_by_id(later.id)
    assert still is not None and still.state is JobState.DELAYED
    return job.id


def fetch_page_and_assets(client: TestClient) -> list[str]:
    """GET the page, then every same-origin file it loads, transitively; all must be 200."""
    seen: list[str] = []
    todo = ["http://127.0.0.1/"]
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.append(url)
        response = client.get(url)
        assert response.status_code == 200, f"{url}: {response.status_code}"
        path = urlsplit(url).path
        if path.endswith(".js"):
            refs = JS_REFS.findall(response.text)
        elif path.endswith(".css"):
            refs = CSS_REFS.findall(response.text)
        elif path.endswith("/"):
            refs = HTML_REFS.findall(response.text)
        else:
            refs = []
        for ref in refs:
            target = urljoin(url, ref)
            if urlsplit(target).netloc == "127.0.0.1" and not ref.startswith("data:"):
                todo.append(target.split("#")[0].split("?")[0])
    assert any(u.endswith(".js") for u in seen) and any(u.endswith(".css") for u in seen), seen
    return seen


def dashboard(queue: JobQueue, job_id: str) -> None:
    client = TestClient(create_app(queue), base_url="http://127.0.0.1", client=("127.0.0.1", 50000))
    with client:
        files = fetch_page_and_assets(client)
        stats = client.get("/api/stats")
        assert stats.status_code == 200 and stats.json()["total"] == 2, stats.text
        job = client.get(f"/api/jobs/{job_id}")
        assert job.status_code == 200 and job.json()["state"] == "completed", job.text
        assert client.get("/api/openapi.json").status_code == 200
        refusals = logging.getLogger("jobqueue.dashboard")
        refusals.disabled = True  # the refusal below is expected: no warning line for it
        try:
            assert client.get("/", headers={"Host": "rebind.example"}).status_code == 400
        finally:
            refusals.disabled = False
    step(f"  dashboard: page and {len(files) - 1} static files, API")


def cli(url: str) -> None:
    """The installed console script; each command is a process of its own, so on memory://
    (a store per process) there is nothing for ``stats`` to read."""
    command = Path(sys.executable).with_name("jobqueue")
    shown = subprocess.run(
        [str(command), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert shown.returncode == 0 and "usage" in shown.stdout.lower(), shown.stderr
    if url == "memory://":
        step("  cli: jobqueue --help")
        return
    stats = subprocess.run(
        [str(command), "stats", "--json", "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["total"] == 2, stats.stdout
    step("  cli: jobqueue --help, jobqueue stats --json")


def exercise(url: str) -> None:
    started = time.monotonic()
    step(url)
    queue = JobQueue(url)
    try:
        queue.add_worker("smoke", handle)
        job_id = submit_and_work(queue)
        step("  submit, work, read back")
        dashboard(queue, job_id)
    finally:
        queue.close()
    cli(url)
    step(f"  {time.monotonic() - started:.1f} s")


def schema_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT value FROM jobqueue_meta WHERE key = 'schema_version'")
        return int(row.fetchone()[0])
    finally:
        conn.close()


def upgrade_fixture(fixture: Path, workdir: Path) -> None:
    path = workdir / "old.db"
    shutil.copyfile(fixture, path)
    queue = JobQueue(f"sqlite:///{path}")
    try:
        counts = queue.count_by_state()
        assert sum(counts.values()) > 0, counts
        assert schema_version(path) == SCHEMA_VERSION
    finally:
        queue.close()
    step(f"upgraded {fixture.name} to schema {SCHEMA_VERSION}: {sum(counts.values())} jobs")


def delete_namespace(client: redis.Redis, namespace: str) -> int:
    keys = list(client.scan_iter(match=f"jq:{{{namespace}}}:*", count=1000))
    return int(client.delete(*keys)) if keys else 0


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="smoke: log %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--sqlite-fixture", type=Path)
    args = parser.parse_args()
    check_installed_copy()
    with tempfile.TemporaryDirectory(prefix="jobqueue-smoke-") as tmp:
        workdir = Path(tmp)
        exercise("memory://")

        empty = workdir / "empty.db"
        empty.touch()  # an existing, empty file: the migrations build the whole schema
        exercise(f"sqlite:///{empty}")
        assert schema_version(empty) == SCHEMA_VERSION
        step(f"  migrated an empty file to schema {SCHEMA_VERSION}")
        if args.sqlite_fixture is not None:
            upgrade_fixture(args.sqlite_fixture, workdir)

        namespace = "smoke-" + secrets.token_hex(6)
        client = redis.Redis.from_url(args.redis_url)
        try:
            exercise(f"{args.redis_url}?namespace={namespace}")
        finally:
            deleted = delete_namespace(client, namespace)
            client.close()
        # None deleted would mean the key layout changed and this clean-up missed it.
        assert deleted > 0, f"no key of namespace {namespace} found to delete"
        step(f"  deleted the namespace's {deleted} keys")
    step("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
