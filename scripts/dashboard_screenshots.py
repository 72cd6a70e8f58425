"""Take the dashboard screenshots of docs/images/ from a demo queue, in Debian's Chromium.

    .venv/bin/python scripts/dashboard_screenshots.py [docs/images]

The demo is a memory queue whose clock is moved through the last hour while its jobs run,
so the chart has an hour of history; then a dispatcher runs a long import while the pages
are photographed: the overview, a job that failed then completed on retry, a running job,
a list of failed jobs, and the overview on a phone.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import sync_playwright

from jobqueue import JobQueue
from jobqueue.dashboard import create_app

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class DemoClock:
    """Real time, or a moment of the past while the history is made."""

    def __init__(self) -> None:
        self.fixed: float | None = None

    def __call__(self) -> float:
        return self.fixed if self.fixed is not None else time.time()


class Mail:
    def __init__(self) -> None:
        self.refused: set[str] = set()

    def __call__(self, job: Any) -> dict[str, Any]:
        if job.data["n"] % 23 == 0 and job.id not in self.refused:  # works when retried
            self.refused.add(job.id)
            raise ConnectionError("smtp.example.com:587: connection refused")
        return {"accepted": [job.data["to"]]}

    def get_title(self, data: dict[str, Any]) -> str:
        return f"Welcome mail to {data['to']}"


class Import:
    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, job: Any) -> dict[str, int]:
        if job.data.get("long"):
            for step in range(1, 11):
                job.progress(step * 6, f"{step * 1200} of 20000 contacts")
                if step == 2:
                    job.log("address book 'Sales' opened")
                if self.release.wait(0.05) and step > 5:
                    break
            self.release.wait(60)
        return {"imported": 1200}

    def get_title(self, data: dict[str, Any]) -> str:
        return f"Import contacts of {data['user']}"


def reindex(job: Any) -> None:
    return None


def build(clock: DemoClock) -> tuple[JobQueue, Import]:
    queue = JobQueue("memory://", clock=clock, load_entrypoints=False, lease_seconds=30)
    importer = Import()
    queue.add_worker("mail.welcome", Mail(), attempts=1)
    queue.add_worker("contacts.import", importer)
    queue.add_worker("search.reindex", reindex)
    start = time.time() - 3600
    n = 0
    for minute in range(60):
        clock.fixed = start + minute * 60
        volume = 20 + (minute * 7) % 30
        mails = [{"n": n + i, "to": f"user{n + i}@example.com"} for i in range(volume)]
        queue.submit_jobs("mail.welcome", mails)
        queue.submit_jobs("search.reindex", [{"shard": i} for i in range(volume // 3)])
        n += volume
        queue.work(burst=True)
    clock.fixed = None
    queue.submit_jobs("search.reindex", [{"shard": i} for i in range(40)])
    queue.submit_job("mail.welcome", {"n": 1, "to": "later@example.com"}, delay=1800)
    queue.pause("search.reindex")
    return queue, importer


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
    out.mkdir(parents=True, exist_ok=True)
    clock = DemoClock()
    queue, importer = build(clock)
    failed = queue.list_jobs("failed", limit=1)[0]
    queue.retry_job(failed.id)  # the dispatcher below runs it again, and it is delivered
    config = uvicorn.Config(create_app(queue), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}/"
    dispatcher = queue.dispatcher(names=["contacts.import", "mail.welcome"], idle_timeout=0.1)
    running = threading.Thread(target=dispatcher.run, daemon=True)
    long_job = queue.submit_job("contacts.import", {"user": "ada", "long": True})
    queue.submit_jobs("contacts.import", [{"user": f"user{i}"} for i in range(5)])
    running.start()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base + "#/")
        page.wait_for_selector("tr[data-dispatcher]")
        page.wait_for_selector("rect.bar")
        page.screenshot(path=str(out / "dashboard-overview.png"), full_page=True)
        page.goto(base + "#/jobs/" + long_job.id)
        page.wait_for_selector(".badge.state-active")
        page.wait_for_function("document.querySelector('progress').value >= 30")
        page.screenshot(path=str(out / "dashboard-running.png"), full_page=True)
        page.goto(base + "#/jobs?state=failed")
        page.wait_for_selector("tr[data-job]")
        page.screenshot(path=str(out / "dashboard-failed.png"))
        page.goto(base + "#/jobs/" + failed.id)
        page.wait_for_selector('tr[data-attempt="2"]')
        page.screenshot(path=str(out / "dashboard-job.png"), full_page=True)
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.goto(base + "#/")
        phone.wait_for_selector("tr[data-name]")
        phone.screenshot(path=str(out / "dashboard-phone.png"))
        browser.close()
    importer.release.set()
    dispatcher.stop(grace_seconds=1)
    running.join(10)
    server.should_exit = True
    serving.join(10)
    queue.close()
    print("screenshots in", out)


if __name__ == "__main__":
    main()
