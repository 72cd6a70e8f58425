"""Run the example end to end: submit jobs, run a dispatcher until they are done, show them.

    python -m jobqueue_example_contacts [--home DIR] [--url sqlite:///DIR/jobs.db]

Needs no server: the queue is an SQLite file (a temporary directory unless ``--home``).
Exits 0 when every job completed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from jobqueue import Job, JobQueue, JobState
from jobqueue_example_contacts import settings

WORKERS = ("contact-import", "event-alarm")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobqueue_example_contacts", description=__doc__
    )
    parser.add_argument("--home", help="directory for the contacts store, outbox and queue file")
    parser.add_argument("--url", help="queue URL (default: sqlite:///HOME/jobs.db)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    home = Path(args.home or tempfile.mkdtemp(prefix="jobqueue-example-")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ[settings.HOME_VARIABLE] = str(home)  # where this process's handlers write
    url = args.url or f"sqlite:///{home / 'jobs.db'}"

    # The workers come from this package's "jobqueue" entry point, like any plugin's.
    with JobQueue(url, lease_seconds=10) as queue:
        missing = [name for name in WORKERS if name not in queue.workers]
        if missing:
            print(
                f"workers {missing} are not registered: install the example first "
                "(pip install -e examples/contacts_app)",
                file=sys.stderr,
            )
            return 2
        print(f"queue: {url}  (no server needed)")
        jobs = submit_jobs(queue)
        print(f"submitted {len(jobs)} jobs; running a dispatcher until they are done...")
        started = time.perf_counter()
        processed = queue.work(burst=True)
        print(f"processed {processed} jobs in {time.perf_counter() - started:.2f}s\n")
        finished = [queue.get_job_by_id(job.id) or job for job in jobs]
        show(finished)
        print(f"\ncontacts store: {settings.contacts_db()} ({count_contacts()} contacts)")
        print(f"outbox: {settings.outbox()} ({len(list(settings.outbox().glob('*.eml')))} mails)")
        ok = all(job.state is JobState.COMPLETED for job in finished)
        print("all jobs completed" if ok else "some jobs did not complete")
        print(f"inspect one (progress, logs): jobqueue --url {url} job {finished[0].id}")
        return 0 if ok else 1


def submit_jobs(queue: JobQueue) -> list[Job]:
    jobs = [
        queue.submit_job("contact-import", {"user": user, "source": source}, priority=priority)
        for user, source, priority in (
            ("alice@example.com", "sample-addressbook", 5),
            ("bob@example.com", "team-directory", 0),
        )
    ]
    events = json.loads(
        resources.files("jobqueue_example_contacts").joinpath("data/events.json").read_text()
    )["events"]
    for event in events:
        for attendee in event["attendees"]:
            summary = {key: event[key] for key in ("uid", "summary", "start", "location")}
            jobs.append(
                queue.submit_job(
                    "event-alarm",
                    {"attendee": attendee, "event": summary},
                    # Resubmitting the same alarm while one is pending returns that job.
                    unique_key=f"alarm:{event['uid']}:{attendee}",
                )
            )
    return jobs


def show(jobs: Sequence[Job]) -> None:
    rows = [("ID", "STATE", "TITLE", "RESULT")]
    for job in jobs:
        outcome = job.result if job.state is JobState.COMPLETED else (job.error and str(job.error))
        rows.append((job.id, job.state.value, job.title or "", json.dumps(outcome)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
            + "  "
            + row[3]
        )


def count_contacts() -> int:
    path = settings.contacts_db()
    if not path.exists():
        return 0
    with sqlite3.connect(path) as store:
        (count,) = store.execute("SELECT count(*) FROM contacts").fetchone()
    store.close()
    return int(count)


if __name__ == "__main__":
    sys.exit(main())
