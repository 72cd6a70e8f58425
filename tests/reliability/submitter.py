"""A submitter process for the Redis-restart test:
``python submitter.py URL NAMESPACE COUNT ACKFILE``.

Submits COUNT jobs one at a time; every id ``submit_job`` returned (an acknowledged submit) is
appended to ACKFILE at once. A ``BackendError`` (Redis down) is ridden out with capped back-off
and the same job is submitted again -- the process never exits before the last one is stored.
Prints ``errors=N`` at the end.
"""

from __future__ import annotations

import random
import sys
import time

from jobqueue.errors import BackendError
from tests.reliability import apps


def main() -> None:
    url, namespace, count, ackfile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    queue = apps.build(url, namespace)
    errors = 0
    with open(ackfile, "a", encoding="utf-8") as acks:
        for n in range(count):
            delay = 0.02
            while True:
                try:
                    job = queue.submit_job("effect", {"n": n})
                    break
                except BackendError:
                    errors += 1
                    time.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, 1.0)
            acks.write(job.id + "\n")
            acks.flush()
            time.sleep(0.002)  # a steady stream rather than one burst
    print(f"errors={errors}", flush=True)


if __name__ == "__main__":
    main()
