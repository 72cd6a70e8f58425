"""Claim cost vs. the number of worker names one dispatcher serves (issue 20 item 11).

    .venv/bin/python bench/names.py                     # SQLite, 1/20/200/2,000 names
    PYTHONPATH=/other/checkout/src .venv/bin/python bench/names.py   # compare another tree

One dispatcher serves every name (a no-op handler each); each name gets ``--per-name`` jobs
(more when that makes fewer than ``--min-jobs`` in all, so one name is timed on enough jobs);
``work(burst=True)`` runs them all. Prints jobs/s per name count (median of ``--rounds``) and
the ratio to one name.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from jobqueue import JobQueue


def run_once(url: str, names: int, per_name: int) -> float:
    with JobQueue(url, load_entrypoints=False) as queue:
        for i in range(names):
            queue.add_worker(f"w{i:05d}", lambda job: None)
        for i in range(names):
            queue.submit_jobs(f"w{i:05d}", [{"i": n} for n in range(per_name)])
        started = time.perf_counter()
        done = queue.work(burst=True, concurrency=1)
        took = time.perf_counter() - started
        assert done == names * per_name, done
        return done / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", default="1,20,200,2000")
    parser.add_argument("--per-name", type=int, default=10)
    parser.add_argument("--min-jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base: float | None = None
    with tempfile.TemporaryDirectory() as directory:
        for names in [int(n) for n in args.names.split(",")]:
            per_name = max(args.per_name, -(-args.min_jobs // names))
            rates = []
            for r in range(args.rounds):
                url = f"sqlite:///{Path(directory) / f'names-{names}-{r}.db'}"
                rates.append(run_once(url, names, per_name))
            rate = statistics.median(rates)
            base = rate if base is None else base
            print(
                f"{names:>6,} names x {per_name:>5,} jobs: {rate:>8,.0f} jobs/s "
                f"(1 name / this: {base / rate:.2f}x)",
                flush=True,
            )


if __name__ == "__main__":
    main()
