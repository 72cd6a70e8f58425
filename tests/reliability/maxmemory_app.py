"""The application of ``test_redis_maxmemory``'s dispatcher process:
``python -m jobqueue --app tests.reliability.maxmemory_app:queue worker``.

Its handler records each run in a file (``JQ_REL_RUNS``), not in Redis: the Redis it runs
against is full, and only the queue's own transitions may still write there.
"""

from __future__ import annotations

import os
import time
from typing import Any

from jobqueue import JobQueue


def queue() -> JobQueue:
    jobs = JobQueue(
        os.environ["JQ_REL_URL"],
        namespace=os.environ["JQ_REL_NAMESPACE"],
        lease_seconds=float(os.environ.get("JQ_REL_LEASE", "1")),
        load_entrypoints=False,
    )

    @jobs.worker("outlive")
    def outlive(job: Any) -> dict[str, int]:
        """Records its run, then outlives its lease several times over, reporting progress
        and logging on the way (each a write to the full Redis)."""
        with open(os.environ["JQ_REL_RUNS"], "a", encoding="utf-8") as runs:
            runs.write(f"{job.id}\n")
        steps = int(job.data["steps"])
        for step in range(steps):
            time.sleep(float(job.data["step_seconds"]))
            job.progress((step + 1) / steps, f"step {step + 1}")
            job.log(f"step {step + 1} of {steps}")
        return {"pid": os.getpid()}

    return jobs
