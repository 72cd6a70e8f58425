"""The application the schedule reliability test's scheduler processes run:
``python -m jobqueue --app tests.reliability.schedule_app:queue scheduler``.

``queue()`` reads its settings from the environment: ``JQ_REL_URL`` (a Redis or SQLite URL),
``JQ_REL_NAMESPACE`` (Redis only; empty or unset for SQLite, which has no namespaces) and
``JQ_REL_CATCH_UP`` (``"skip"``, ``"once"`` or an int N). One worker, ``tick``, does nothing;
one schedule, ``every-second``, submits a job for it every second. ``overlap="allow"``: no
dispatcher runs, so the jobs stay waiting, and a waiting job must not suppress the next tick.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from jobqueue import JobQueue, Schedule

SCHEDULE = "every-second"
WORKER = "tick"


def catch_up_policy(text: str) -> str | int:
    """``"skip"`` and ``"once"`` as they are, anything else as the int N."""
    return text if text in ("skip", "once") else int(text)


def queue() -> JobQueue:
    return build(
        os.environ["JQ_REL_URL"],
        os.environ.get("JQ_REL_NAMESPACE") or None,
        catch_up_policy(os.environ.get("JQ_REL_CATCH_UP", "skip")),
    )


def build(url: str, namespace: str | None, catch_up: str | int) -> JobQueue:
    """The queue with worker ``tick`` and schedule ``every-second`` (also used in-process by
    the test to read the record and the jobs)."""
    jobs = JobQueue(url, namespace=namespace, load_entrypoints=False)

    @jobs.worker(WORKER)
    def tick(job: Any) -> None:
        return None

    jobs.add_schedule(
        Schedule(
            name=SCHEDULE,
            worker=WORKER,
            every=timedelta(seconds=1),
            overlap="allow",
            catch_up=catch_up,
        )
    )
    return jobs
