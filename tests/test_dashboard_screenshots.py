"""The docs' screenshots of the dashboard, taken in Debian's Chromium from a demo queue.

Every run takes them into a temporary folder and checks them; to refresh the committed ones:

    JOBQUEUE_DASHBOARD_SCREENSHOTS=docs/images scripts/test tests/test_dashboard_screenshots.py

The demo is a memory queue whose clock is moved through the last hour while its jobs run,
so the chart has an hour of history; then a dispatcher runs a long import while the pages
are photographed: the overview, a running job, a failed job, a list of failed jobs, and the
overview on a phone.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, expect

from jobqueue import JobQueue
from jobqueue.dashboard import create_app
from tests.test_dashboard_browser import Server, browser, playwright

__all__ = ["browser", "playwright"]  # the module fixtures, shared

SHOTS = ("overview", "running", "failed-job", "failed", "phone")


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
        if job.data.get("bounce"):
            raise LookupError(f"550 5.1.1 <{job.data['to']}>: recipient address rejected")
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


def test_screenshots_of_the_pages(browser: Browser, tmp_path: Path) -> None:
    out = Path(os.environ.get("JOBQUEUE_DASHBOARD_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    clock = DemoClock()
    queue, importer = build(clock)
    bounce = {"n": 0, "to": "nobody@example.com", "bounce": True}
    failed = queue.submit_job("mail.welcome", bounce, attempts=2, backoff=0)
    queue.work(burst=True)  # refused twice: retried, then failed for good
    dispatcher = queue.dispatcher(names=["contacts.import", "mail.welcome"], idle_timeout=0.1)
    running = threading.Thread(target=dispatcher.run, name="demo-dispatcher")
    long_job = queue.submit_job("contacts.import", {"user": "ada", "long": True})
    queue.submit_jobs("contacts.import", [{"user": f"user{i}"} for i in range(5)])
    with Server(create_app(queue)) as server:
        running.start()
        base = server.url + "/"
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "#/")
            page.wait_for_selector(f'tr[data-dispatcher] a[href="#/jobs/{long_job.id}"]')
            page.wait_for_selector("rect.bar")
            (out / "dashboard-overview.png").write_bytes(page.screenshot(full_page=True))
            page.goto(base + "#/jobs/" + long_job.id)
            # (No wait_for_function: the page's CSP refuses evaluated strings, rightly.)
            expect(page.locator(".progress span")).to_have_text(re.compile(r"^(3|4|5|6)\d% "))
            (out / "dashboard-running.png").write_bytes(page.screenshot(full_page=True))
            page.goto(base + "#/jobs/" + failed.id)
            page.wait_for_selector('tr[data-attempt="2"]')
            (out / "dashboard-failed-job.png").write_bytes(page.screenshot(full_page=True))
            page.goto(base + "#/jobs?state=failed")
            page.wait_for_selector("tr[data-job]")
            (out / "dashboard-failed.png").write_bytes(page.screenshot())
            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
            phone.goto(base + "#/")
            phone.wait_for_selector("tr[data-name]")
            (out / "dashboard-phone.png").write_bytes(phone.screenshot())
            page.goto("about:blank")
            phone.goto("about:blank")
            page.close()
            phone.close()
        finally:
            importer.release.set()
            dispatcher.stop(grace_seconds=1)
            running.join(15)
    queue.close()
    for name in SHOTS:
        picture = (out / f"dashboard-{name}.png").read_bytes()
        assert picture.startswith(b"\x89PNG") and len(picture) > 10_000, name
