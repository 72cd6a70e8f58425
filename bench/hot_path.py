"""The client's Python per completion on Redis, the network left out: one complete that claims
the next job, its script reply recorded once, then replayed (20,000 calls, best of 5).

    python3 bench/hot_path.py                      # this checkout
    python3 bench/hot_path.py --jobqueue-src DIR   # another checkout's src/

Run it for two checkouts, alternately, to compare what a change costs the worker in Python
(encoding the call, decoding the reply, the core's decision) apart from Redis and the
network. Needs a Redis at 127.0.0.1:6379 (a namespace of its own, deleted at the end).
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
import uuid
from pathlib import Path
from typing import Any

CALLS, REPEATS = 20_000, 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobqueue-src", help="measure the jobqueue package in this folder")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    if args.jobqueue_src:
        sys.path.insert(0, str(Path(args.jobqueue_src).resolve()))
    import jobqueue
    from jobqueue.backend import BackendOptions, WorkSpec
    from jobqueue.backends.redis import RedisBackend
    from jobqueue.job import Job

    namespace = "hotpath-" + uuid.uuid4().hex[:8]
    store = RedisBackend.from_url(args.url, BackendOptions(namespace=namespace))
    queue: Any = store
    try:  # the core over the store, where the checkout has one
        from jobqueue.engine import Engine

        queue = Engine(store)
    except ImportError:
        pass
    try:
        now = time.time()
        jobs = [Job(id="", name="a", data={"n": n}, created_at=now, run_at=now) for n in range(3)]
        queue.submit_many(jobs)
        spec = WorkSpec(("a",), 30.0)
        first = queue.claim(spec)
        replies: dict[str, object] = {}
        real_run = store._run

        def record(script: str, call_args: object) -> object:
            replies[script] = real_run(script, call_args)
            return replies[script]

        store._run = record  # type: ignore[method-assign]
        second = queue.complete(first.job.id, first.token, None, spec)
        store._run = lambda script, call_args: replies[script]  # type: ignore[method-assign]
        best = min(
            timeit.repeat(
                lambda: queue.complete(second.job.id, second.token, None, spec),
                number=CALLS,
                repeat=REPEATS,
            )
        )
        store._run = real_run  # type: ignore[method-assign]
        where = Path(jobqueue.__file__).parent
        print(f"{best / CALLS * 1e6:.2f} µs of Python per complete+claim (reply replayed): {where}")
    finally:
        for key in store.client.scan_iter(f"*{namespace}*", count=1000):
            store.client.delete(key)
        store.close()


if __name__ == "__main__":
    main()
