"""The dashboard's pages in a real headless Chromium (Debian's ``chromium``, driven by
Playwright; the browser is never downloaded): a real uvicorn server on loopback, a real
dispatcher in a thread, and the clicks an operator makes. Every wait is on something the
page shows (Playwright's auto-waiting ``expect``), never a fixed sleep, except the one test
that checks the page stays quiet while hidden."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from starlette.responses import JSONResponse

from jobqueue import Flow, Job, JobQueue, JobState, Schedule
from jobqueue.dashboard import create_app

CHROMIUM = os.environ.get("JOBQUEUE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
XSS_TITLES = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned = 'img'\">",
    "<svg onload=\"window.__pwned = 'svg'\"></svg>",
    '"><iframe srcdoc="<script>parent.__pwned = \'iframe\'</script>">',
]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package "
            "(apt-get install chromium), or point JOBQUEUE_TEST_CHROMIUM at a Chromium"
        )
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


class Gate:
    """A handler's switch the test flips: failing until opened, or blocking until told."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.started = threading.Event()

    def flaky(self, job: Job) -> dict[str, Any]:
        if not self.open.is_set():
            raise RuntimeError("the mail server said <b>no</b>")
        return {"sent": job.data}

    def slow(self, job: Job) -> None:
        self.started.set()
        job.log("started <i>working</i>")
        job.progress(40, "copying <contacts>")
        while True:  # until cancelled: the dispatcher interrupts it
            time.sleep(0.02)


class Titled:
    def __call__(self, job: Job) -> None:
        raise ValueError(job.data["title"])

    def get_title(self, data: dict[str, str]) -> str:
        return data["title"]


@pytest.fixture(params=["sqlite", "redis"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobQueue]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    else:
        url = request.getfixturevalue("backend_url_redis")
    with JobQueue(url, load_entrypoints=False, lease_seconds=5, grace_seconds=0.5) as queue:
        yield queue


@pytest.fixture
def backend_url_redis(redis_url: str) -> Iterator[str]:
    import redis

    from tests.backends.redis_fixtures import delete_namespace, new_namespace

    namespace = new_namespace()
    yield f"{redis_url}?namespace={namespace}"
    delete_namespace(redis.Redis.from_url(redis_url), namespace)


class Server:
    """uvicorn serving an ASGI app on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="test-uvicorn"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@contextmanager
def dispatching(queue: JobQueue) -> Iterator[None]:
    dispatcher = queue.dispatcher(idle_timeout=0.05)
    thread = threading.Thread(target=dispatcher.run, name="test-dispatcher")
    thread.start()
    try:
        yield
    finally:
        dispatcher.stop(grace_seconds=0.5)
        thread.join(15)


@contextmanager
def dashboard(queue: JobQueue, page: Page, **options: Any) -> Iterator[Server]:
    """The dashboard served while ``page`` uses it; the page leaves before the server stops
    (else its polling would meet a closed port)."""
    with Server(create_app(queue, **options)) as server:
        try:
            yield server
        finally:
            page.goto("about:blank")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: problems.append(f"dialog opened: {dialog.message}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error"
            else None
        ),
    )
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    context.close()
    assert not problems, problems


def _row(page: Page, attribute: str, value: str) -> Any:
    return page.locator(f'tr[{attribute}="{value}"]')


# -- the operator's tour ---------------------------------------------------------------------


def test_follow_a_failed_job_retry_it_and_watch_it_complete_live(
    queue: JobQueue, page: Page
) -> None:
    gate = Gate()
    queue.add_worker("mail", gate.flaky)
    job = queue.submit_job("mail", {"to": "ada@example.com"})
    queue.work(burst=True)
    assert queue.get_job_by_id(job.id).state is JobState.FAILED  # type: ignore[union-attr]
    with dashboard(queue, page) as server, dispatching(queue):
        page.goto(server.url + "/")
        names = _row(page, "data-name", "mail")
        expect(names.locator('td[data-state="failed"]')).to_have_text("1")
        names.locator('td[data-state="failed"] a').click()
        expect(page).to_have_url(re.compile(r"#/jobs\?state=failed&name=mail$"))
        page.locator(f'tr[data-job="{job.id}"] a').first.click()
        expect(page.locator(".badge.state-failed")).to_be_visible()
        expect(page.locator("p.error")).to_have_text("RuntimeError: the mail server said <b>no</b>")
        gate.open.set()
        page.locator('button[data-action="retry"]').click()
        # Nobody reloads: the page polls and shows the dispatcher's work as it happens.
        expect(page.locator(".badge.state-completed")).to_be_visible(timeout=15_000)
        expect(page.locator('tr[data-attempt="1"] .badge')).to_have_text("failed")
        expect(page.locator('tr[data-attempt="2"] .badge')).to_have_text("completed")
        expect(page.locator("pre.json").nth(1)).to_contain_text('"sent"')
    assert queue.get_job_by_id(job.id).state is JobState.COMPLETED  # type: ignore[union-attr]


def test_pause_a_worker_name_and_see_it_paused(queue: JobQueue, page: Page) -> None:
    queue.add_worker("import", lambda job: None)
    queue.submit_job("import", {"file": "contacts.csv"})
    with dashboard(queue, page) as server:
        page.goto(server.url + "/")
        row = _row(page, "data-name", "import")
        row.locator('button[data-action="pause"]').click()
        expect(row.locator(".badge.paused")).to_have_text("paused")
        expect(row.locator('button[data-action="resume"]')).to_be_visible()
        assert queue.paused() == {"import"}
        assert queue.work(burst=True) == 0  # a dispatcher claims nothing of it now
        row.locator('button[data-action="resume"]').click()
        expect(row.locator(".badge.paused")).to_have_count(0)
        assert queue.paused() == frozenset()


def test_cancel_a_running_job(queue: JobQueue, page: Page) -> None:
    gate = Gate()
    queue.add_worker("import", gate.slow)
    job = queue.submit_job("import", {"file": "contacts.csv"})
    with dashboard(queue, page) as server, dispatching(queue):
        assert gate.started.wait(15)
        page.goto(server.url + "/#/jobs/" + job.id)
        expect(page.locator(".badge.state-active")).to_be_visible()
        expect(page.locator("ol.logs")).to_contain_text("started <i>working</i>")
        expect(page.locator(".progress")).to_contain_text("40% — copying <contacts>")
        expect(page.locator("dd").filter(has_text="pid")).to_contain_text(str(os.getpid()))
        page.locator('button[data-action="cancel"]').click()
        expect(page.locator(".badge.state-cancelled")).to_be_visible(timeout=15_000)
    assert queue.get_job_by_id(job.id).state is JobState.CANCELLED  # type: ignore[union-attr]


def test_overview_shows_dispatchers_counts_and_the_chart(queue: JobQueue, page: Page) -> None:
    gate = Gate()
    gate.open.set()
    queue.add_worker("mail", gate.flaky)
    queue.add_worker("boom", Titled(), attempts=1)
    queue.submit_jobs("mail", [{"n": n} for n in range(3)])
    queue.submit_job("boom", {"title": "broken"})
    queue.work(burst=True)
    with dashboard(queue, page) as server, dispatching(queue):
        page.goto(server.url + "/")
        expect(page.locator('.total .count[data-state="completed"]')).to_have_text("3")
        expect(page.locator('.total .count[data-state="failed"]')).to_have_text("1")
        expect(page.locator('[data-total="completed"]')).to_have_text("3")
        expect(page.locator('[data-total="failed"]')).to_have_text("1")
        expect(page.locator("rect.bar.completed")).to_have_count(1)
        page.locator('button[data-period="hour"]').click()
        expect(page.locator("#chart-unit")).to_have_text("hour")
        expect(page.locator('[data-total="completed"]')).to_have_text("3")
        dispatcher = page.locator("tr[data-dispatcher]")
        expect(dispatcher).to_have_count(1)
        expect(dispatcher).to_contain_text(socket.gethostname())
        expect(dispatcher).to_contain_text(str(os.getpid()))
        expect(dispatcher).not_to_have_class(re.compile("late"))


def test_bulk_retry_shows_the_count_before_confirming(queue: JobQueue, page: Page) -> None:
    gate = Gate()
    queue.add_worker("mail", gate.flaky)
    queue.submit_jobs("mail", [{"n": n} for n in range(4)])
    queue.work(burst=True)
    gate.open.set()
    with dashboard(queue, page) as server:
        page.goto(server.url + "/#/jobs?state=failed&name=mail")
        page.locator('button[data-bulk="retry"]').click()
        confirm = page.locator(".confirm")
        expect(confirm).to_contain_text("Retry 4 failed jobs of mail? This touches 4 jobs.")
        assert queue.count_by_state()[JobState.FAILED] == 4  # nothing done before confirming
        confirm.locator('button[data-confirm="yes"]').click()
        expect(page.locator(".flash.ok")).to_have_text("4 jobs retried")
    assert queue.count_by_state()[JobState.WAITING] == 4


def test_run_a_delayed_job_now_and_remove_a_job(queue: JobQueue, page: Page) -> None:
    queue.add_worker("report", lambda job: "done")
    later = queue.submit_job("report", {"month": 11}, delay=3600)
    with dashboard(queue, page) as server:
        page.goto(server.url + "/#/jobs/" + later.id)
        expect(page.locator(".badge.state-delayed")).to_be_visible()
        page.locator('button[data-action="run-now"]').click()
        expect(page.locator(".badge.state-waiting")).to_be_visible()
        assert queue.get_job_by_id(later.id).state is JobState.WAITING  # type: ignore[union-attr]
        page.locator('button[data-action="remove"]').click()
        page.locator('.confirm button[data-confirm="yes"]').click()
        expect(page).to_have_url(re.compile(r"#/jobs\?state=waiting$"))
    assert queue.get_job_by_id(later.id) is None


def test_job_list_filters_by_title_and_id_and_pages(queue: JobQueue, page: Page) -> None:
    queue.add_worker("boom", Titled(), attempts=1)
    for n in range(60):
        queue.submit_job("boom", {"title": f"import of customer {n}"})
    special = queue.submit_job("boom", {"title": "the Zebra account"})
    with dashboard(queue, page) as server:
        page.goto(server.url + "/#/jobs?state=waiting")
        expect(page.locator("tr[data-job]")).to_have_count(50)
        page.locator('a[rel="next"]').click()
        expect(page.locator("tr[data-job]")).to_have_count(11)
        page.get_by_role("link", name="Previous").click()
        expect(page.locator("tr[data-job]")).to_have_count(50)
        page.locator('input[name="q"]').fill("zebra")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("tr[data-job]")).to_have_count(1)
        expect(page.locator(f'tr[data-job="{special.id}"]')).to_contain_text("the Zebra account")
        page.locator('input[name="q"]').fill(special.id)
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("tr[data-job]").first).to_have_attribute("data-job", special.id)


class Refuse:
    def __call__(self, job: Job) -> None:
        raise LookupError(job.data["message"])


def test_the_failed_list_shows_each_jobs_error(queue: JobQueue, page: Page) -> None:
    queue.add_worker("mail", Refuse(), attempts=1)
    messages = [
        "550 5.1.1 <ada@example.com>: recipient rejected\n  by smtp.example.com\n",
        XSS_TITLES[1] + "\nsecond line",
        "",
    ]
    failed = [queue.submit_job("mail", {"message": message}) for message in messages]
    queue.work(burst=True)
    waiting = queue.submit_job("mail", {"message": "not yet"})
    with dashboard(queue, page) as server:
        page.goto(server.url + "/#/jobs?state=failed")
        expect(page.locator("th", has_text="Error")).to_be_visible()
        # The type and the first line of the message, as text; the rest is on the job page.
        shown = [
            "LookupError: 550 5.1.1 <ada@example.com>: recipient rejected",
            "LookupError: " + XSS_TITLES[1],
            "LookupError",
        ]
        for job, line in zip(failed, shown, strict=True):
            cell = _row(page, "data-job", job.id).locator("td.error-line")
            expect(cell).to_have_text(line)
            expect(cell.locator("b")).to_have_text("LookupError")
        expect(page.locator("td.error-line img")).to_have_count(0)
        page.goto(server.url + "/#/jobs?state=waiting")
        expect(_row(page, "data-job", waiting.id)).to_be_visible()
        expect(page.locator("td.error-line")).to_have_count(0)
        assert page.evaluate("window.__pwned") is None


def test_the_state_lists_are_read_once_when_the_server_first_answers(
    queue: JobQueue, page: Page
) -> None:
    """GET /api/meta is read before the first view; while it fails the page says why and
    tries again, and once read it is not asked again as views change."""
    queue.add_worker("mail", lambda job: None)
    job = queue.submit_job("mail", {})
    app = create_app(queue)
    ready = threading.Event()

    async def away_until_ready(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/meta" and not ready.is_set():
            refusal = JSONResponse({"error": "backend away for now"}, status_code=503)
            await refusal(scope, receive, send)
            return
        await app(scope, receive, send)

    asked: list[str] = []
    page.on(
        "request", lambda request: asked.append(request.url) if "/api/meta" in request.url else None
    )
    with Server(away_until_ready) as server:
        try:
            page.goto(server.url + "/")
            expect(page.locator("#live")).to_have_text("backend away for now")
            ready.set()
            expect(page.locator('.total .count[data-state="waiting"]')).to_have_text("1")
            before = len(asked)
            page.goto(server.url + "/#/jobs?state=waiting")
            expect(_row(page, "data-job", job.id)).to_be_visible()
            page.goto(server.url + "/#/jobs/" + job.id)
            expect(page.locator(".badge.state-waiting")).to_be_visible()
            assert len(asked) == before
        finally:
            page.goto("about:blank")
    page.problems.clear()  # type: ignore[attr-defined]  # the refused tries log 503s


# -- security in the browser -------------------------------------------------------------------


def test_markup_in_job_fields_shows_as_text_and_never_runs(queue: JobQueue, page: Page) -> None:
    queue.add_worker("<b>evil</b>", Titled(), attempts=1)
    jobs = [
        queue.submit_job("<b>evil</b>", {"title": title, "payload": title}) for title in XSS_TITLES
    ]
    queue.work(burst=True)  # each fails with its title as the error message
    with dashboard(queue, page) as server:
        for url in ("/", "/#/jobs", "/#/jobs?state=failed"):
            page.goto(server.url + url)
            expect(page.locator("#live")).to_contain_text("live")
        expect(page.locator("td.title")).to_have_count(len(XSS_TITLES))
        shown = sorted(page.locator("td.title").all_inner_texts())
        assert shown == sorted(XSS_TITLES)
        for job, title in zip(jobs, XSS_TITLES, strict=True):
            page.goto(server.url + "/#/jobs/" + job.id)
            expect(page.locator("h1.job-title")).to_have_text(title)
            expect(page.locator("p.error")).to_have_text(f"ValueError: {title}")
            expect(page.locator("pre.json").first).to_contain_text(title.replace('"', '\\"'))
        expect(
            page.locator("main img, main svg:not(.chart svg), main iframe, main script")
        ).to_have_count(0)
        assert page.evaluate("window.__pwned") is None
    # The page fixture fails the test if a dialog opened or a script error happened.


def test_pages_carry_a_strict_content_security_policy(queue: JobQueue, page: Page) -> None:
    queue.add_worker("mail", lambda job: None)
    with dashboard(queue, page) as server:
        answer = page.goto(server.url + "/")
        assert answer is not None
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"
        # An inline script injected into the page is refused by the browser itself.
        page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.__inline = 1'; document.body.append(s); }"
        )
        assert page.evaluate("window.__inline") is None
    page.problems.clear()  # type: ignore[attr-defined]  # the CSP refusal logs a console error


def test_sign_in_with_a_token_then_the_pages_work(queue: JobQueue, page: Page) -> None:
    queue.add_worker("mail", lambda job: None)
    queue.submit_job("mail", {})
    with dashboard(queue, page, token="s3cret") as server:
        page.goto(server.url + "/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.locator('input[name="token"]').fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Those credentials were refused.")).to_be_visible()
        page.locator('input[name="token"]').fill("s3cret")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator('.total .count[data-state="waiting"]')).to_have_text("1")
        page.locator('button[data-action="pause"]').click()  # CSRF header sent by the page
        expect(page.locator(".badge.paused")).to_be_visible()
    page.problems.clear()  # type: ignore[attr-defined]  # the refused tries log 401s


def test_sign_in_with_basic_credentials(queue: JobQueue, page: Page) -> None:
    queue.add_worker("mail", lambda job: None)
    with dashboard(queue, page, basic=("admin", "pässword")) as server:
        page.goto(server.url + "/")
        page.locator('input[name="user"]').fill("admin")
        page.locator('input[name="password"]').fill("pässword")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(page.locator("#live")).to_contain_text("live")
    page.problems.clear()  # type: ignore[attr-defined]


def test_read_only_offers_no_actions(queue: JobQueue, page: Page) -> None:
    queue.add_worker("mail", lambda job: (_ for _ in ()).throw(RuntimeError("no")), attempts=1)
    job = queue.submit_job("mail", {})
    queue.work(burst=True)
    with dashboard(queue, page, read_only=True) as server:
        page.goto(server.url + "/")
        expect(_row(page, "data-name", "mail")).to_be_visible()
        expect(page.locator("button[data-action]")).to_have_count(0)
        page.goto(server.url + "/#/jobs?state=failed")
        expect(page.locator("tr[data-job]")).to_have_count(1)
        expect(page.locator("button[data-bulk]")).to_have_count(0)
        page.goto(server.url + "/#/jobs/" + job.id)
        expect(page.locator("h1")).to_be_visible()
        expect(page.locator("button[data-action]")).to_have_count(0)


def test_polling_stops_while_hidden_and_resumes_when_shown(queue: JobQueue, page: Page) -> None:
    queue.add_worker("mail", lambda job: None)
    with dashboard(queue, page) as server:
        calls: list[str] = []
        page.on(
            "request", lambda request: calls.append(request.url) if "/api/" in request.url else None
        )
        page.goto(server.url + "/")
        expect(page.locator("#live")).to_contain_text("live")
        page.evaluate(
            "() => { Object.defineProperty(document, 'visibilityState', "
            "{configurable: true, get: () => 'hidden'});"
            " document.dispatchEvent(new Event('visibilitychange')); }"
        )
        expect(page.locator("#live")).to_have_text("paused while hidden")
        queue.submit_job("mail", {})
        before = len(calls)
        page.wait_for_timeout(5000)  # 2.5 polling periods: a visible page would have polled
        assert len(calls) == before
        expect(page.locator('.total .count[data-state="waiting"]')).to_have_text("0")
        page.evaluate(
            "() => { Object.defineProperty(document, 'visibilityState', "
            "{configurable: true, get: () => 'visible'});"
            " document.dispatchEvent(new Event('visibilitychange')); }"
        )
        expect(page.locator('.total .count[data-state="waiting"]')).to_have_text("1")


def test_readable_on_a_phone(queue: JobQueue, browser: Browser) -> None:
    queue.add_worker("contacts-import", lambda job: None)
    queue.submit_jobs("contacts-import", [{"n": n} for n in range(3)])
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        phone = context.new_page()
        with dashboard(queue, phone) as server:
            phone.goto(server.url + "/")
            expect(_row(phone, "data-name", "contacts-import")).to_be_visible()
            # Nothing wider than the screen but the tables, which scroll inside their box.
            overflow = phone.evaluate("document.documentElement.scrollWidth")
            assert overflow <= 390, overflow
    finally:
        context.close()


def test_schedules_page_pauses_and_runs_a_schedule(queue: JobQueue, page: Page) -> None:
    queue.add_worker("contacts-sync", lambda job: None)
    queue.add_schedule(Schedule(name="nightly-sync", worker="contacts-sync", cron="0 0 * * *"))
    queue.scheduler().run_pending()
    with dashboard(queue, page) as server:
        page.goto(server.url + "/#/schedules")
        row = _row(page, "data-schedule", "nightly-sync")
        expect(row).to_contain_text("0 0 * * * (UTC)")
        row.locator('button[data-action="pause"]').click()
        expect(row.locator(".badge.paused")).to_have_text("paused")
        (info,) = queue.schedules()
        assert info.paused
        row.locator('button[data-action="run"]').click()
        expect(page.locator(".flash.ok")).to_contain_text("Submitted job")
        assert queue.count_by_state()[JobState.WAITING] == 1


def test_a_flow_shows_what_blocks_a_job_and_is_cancelled_and_retried_whole(
    queue: JobQueue, page: Page
) -> None:
    queue.add_worker("fetch", lambda job: job.data)
    queue.add_worker("gather", lambda job: None)
    flow = Flow()
    later = flow.add("fetch", 1, delay=3600)
    now = flow.add("fetch", 2)
    flow.add("gather", depends_on=[later, now])
    first, second, gather = queue.submit_flow(flow)
    queue.work(burst=True)  # runs the one due now; the delayed one still blocks the gather
    with dashboard(queue, page) as server:
        page.goto(server.url + f"/#/jobs/{gather.id}")
        row = _row(page, "data-flow-job", gather.id)
        expect(row.locator("td.waits")).to_have_text(first.id)
        expect(row.locator("td").nth(2)).to_have_text("blocked")
        done = _row(page, "data-flow-job", second.id)
        expect(done.locator("td").nth(2)).to_have_text("completed")
        page.locator('button[data-action="cancel-flow"]').click()
        expect(row.locator("td").nth(2)).to_have_text("cancelled")
        expect(_row(page, "data-flow-job", first.id).locator("td").nth(2)).to_have_text("cancelled")
        page.locator('button[data-action="retry-flow"]').click()
        expect(row.locator("td").nth(2)).to_have_text("blocked")
        expect(row.locator("td.waits")).to_have_text(first.id)
    assert queue.get_job_by_id(first.id).state is JobState.WAITING  # type: ignore[union-attr]
