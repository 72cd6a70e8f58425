"""The application of tests/reliability/test_postgres_transactions.py's dispatcher processes:
``python -m jobqueue --app tests.reliability.transaction_app:queue worker``.

Settings from the environment: ``JQ_REL_URL`` (a PostgreSQL URL with its own ``?schema=``),
``JQ_REL_TABLE`` (the application's table, ``(job text, attempt int)``), ``JQ_REL_MARK`` (a
directory where a handler leaves a file named after its job once inside its transaction),
``JQ_REL_LEASE``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from jobqueue import JobQueue


def queue() -> JobQueue:
    return build(
        os.environ["JQ_REL_URL"],
        os.environ["JQ_REL_TABLE"],
        Path(os.environ["JQ_REL_MARK"]),
        lease_seconds=float(os.environ.get("JQ_REL_LEASE", "1")),
    )


def build(url: str, table: str, mark: Path, **options: Any) -> JobQueue:
    jobs = JobQueue(url, load_entrypoints=False, **options)

    @jobs.worker("charge", attempts=5)
    def charge(job: Any) -> None:
        """Writes its row and completes in one transaction; the first attempt stops inside
        the transaction (its row written, not committed) until the process is killed."""
        with job.transaction(result={"attempt": job.attempts_made}) as conn:
            conn.execute(
                f"INSERT INTO public.{table} (job, attempt) VALUES (%s, %s)",
                (job.id, job.attempts_made),
            )
            if job.attempts_made == 1:
                (mark / job.id).touch()
                while True:  # Python code between short sleeps: SIGKILL needs no help
                    time.sleep(0.05)

    @jobs.worker("decline", attempts=1)
    def decline(job: Any) -> None:
        """Writes its row, then raises inside the transaction: neither stays."""
        with job.transaction() as conn:
            conn.execute(
                f"INSERT INTO public.{table} (job, attempt) VALUES (%s, %s)",
                (job.id, job.attempts_made),
            )
            raise RuntimeError("declined on purpose")

    return jobs
