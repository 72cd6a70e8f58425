"""A dispatcher process for the SIGKILL test: ``python redis_chaos_worker.py URL NAMESPACE DIR``.

Its handler records which process started each attempt (a file in DIR) and, on a job's first
attempt, hangs -- so the test can SIGKILL the process holding the job mid-run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from jobqueue import JobQueue


def main() -> None:
    url, namespace, workdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    queue = JobQueue(url, namespace=namespace, lease_seconds=2.0, load_entrypoints=False)

    def handle(job: object) -> dict[str, int]:
        attempt = job.attempts_made  # type: ignore[attr-defined]
        (workdir / f"attempt-{attempt}-pid-{os.getpid()}").touch()
        if attempt == 1:
            time.sleep(3600)  # killed here
        return {"pid": os.getpid(), "attempt": attempt}

    queue.add_worker("chaos", handle)
    (workdir / f"ready-{os.getpid()}").touch()
    queue.run_worker()


if __name__ == "__main__":
    main()
