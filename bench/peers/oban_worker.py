"""oban-py's worker class for the benchmark (imported under Python 3.12 only, in
``bench/.venv-py312``): jobs name it by import path, ``peers.oban_worker.BenchWorker``, and the
``oban start`` worker process imports this module (``--cron-modules``) and runs it."""

from __future__ import annotations

from typing import Any

import body
from oban import Job, worker

QUEUE = "bench"


@worker(queue=QUEUE)
class BenchWorker:
    """The job body of every library (one Redis ``INCR``); oban awaits ``process``."""

    async def process(self, job: Job) -> Any:
        body.run(job.args)
        return None
