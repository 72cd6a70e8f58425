"""Handlers that end or break their worker process, for ``jobqueue worker`` processes of
the handler-fault tests: ``python -m jobqueue --app tests.reliability.fault_apps:queue``.

``queue()`` opens ``JQ_FAULT_URL`` (a SQLite file of the test's own) with grace period
``JQ_FAULT_GRACE``; with ``JQ_FAULT_BROKEN_CLAIM=1`` every claim raises a ``RuntimeError``,
as a bug in a backend would, so that the dispatcher's slots crash.
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any

from jobqueue import JobQueue


def queue() -> JobQueue:
    jobs = build(os.environ["JQ_FAULT_URL"], float(os.environ.get("JQ_FAULT_GRACE", "5")))
    if os.environ.get("JQ_FAULT_BROKEN_CLAIM") == "1":

        def broken_claim(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug in the backend's claim, on purpose")

        jobs.backend.claim_many = broken_claim  # type: ignore[method-assign]
    return jobs


def build(url: str, grace: float = 5.0) -> JobQueue:
    jobs = JobQueue(url, load_entrypoints=False, grace_seconds=grace)

    @jobs.worker("exit4")
    def exit4(job: Any) -> None:
        raise SystemExit(4)

    @jobs.worker("ctrl_c")
    def ctrl_c(job: Any) -> None:
        raise KeyboardInterrupt

    @jobs.worker("segfault")
    def segfault(job: Any) -> None:
        ctypes.string_at(0)  # reads address 0: SIGSEGV

    @jobs.worker("stuck", timeout=0.5, attempts=2, backoff=0)
    def stuck(job: Any) -> None:
        """Blocks in one C call far past its timeout: the interrupt cannot land."""
        time.sleep(3600)

    @jobs.worker("fine")
    def fine(job: Any) -> str:
        return "ok"

    return jobs
