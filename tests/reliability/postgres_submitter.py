"""A submitter process for the PostgreSQL-restart test:
``python postgres_submitter.py COUNT ACKFILE``, with the environment of the dispatchers
(``tests.reliability.postgres_app``: the same queue, its workers' defaults applied).

Submits COUNT ``effect`` jobs one at a time; every id ``submit_job`` returned (an acknowledged
submit) is appended to ACKFILE at once. A ``BackendError`` (PostgreSQL down or restarting) is
ridden out with capped back-off and the same job is submitted again -- the process never
exits before the last one is stored. Each error ridden out adds a line to ACKFILE.errors (the
test waits for those, not for time); prints ``errors=N`` at the end.
"""

from __future__ import annotations

import random
import sys
import time

from jobqueue.errors import BackendError
from tests.reliability import postgres_app


def main() -> None:
    count, ackfile = int(sys.argv[1]), sys.argv[2]
    queue = postgres_app.queue()
    errors = 0
    with open(ackfile, "a", encoding="utf-8") as acks, open(ackfile + ".errors", "a") as seen:
        for n in range(count):
            delay = 0.02
            while True:
                try:
                    job = queue.submit_job("effect", {"n": n})
                    break
                except BackendError as exc:
                    errors += 1
                    seen.write(f"{type(exc).__name__}\n")
                    seen.flush()
                    time.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, 1.0)
            acks.write(job.id + "\n")
            acks.flush()
            time.sleep(0.002)  # a steady stream rather than one burst
    queue.close()
    print(f"errors={errors}", flush=True)


if __name__ == "__main__":
    main()
