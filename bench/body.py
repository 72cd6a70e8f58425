"""The job body every library runs: a no-op that does one INCR with its own Redis client.

It also records start times, read back by the harness:

* ``rate`` mode: the start time of job 1, of every ``BENCH_STEP``-th job (and the one after
  it) and of job ``BENCH_TARGET``, pushed to a list — one extra command every ~500 jobs;
* ``latency`` mode: every job's start time, by its payload's ``n``, in a hash;
* ``intervals`` mode: every job's start and end times, pushed to a list after the INCR (to
  check that ``exclusive=True`` jobs never overlap).

Configured by the environment the harness gives each worker process: ``BENCH_REDIS_URL``,
``BENCH_MODE`` (``rate`` or ``latency``), ``BENCH_TARGET``, ``BENCH_STEP``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

COUNTER = "bench:count"
MARKS = "bench:marks"
STARTS = "bench:starts"
INTERVALS = "bench:intervals"

_MODE = os.environ.get("BENCH_MODE", "rate")
_TARGET = int(os.environ.get("BENCH_TARGET", "0"))
_STEP = int(os.environ.get("BENCH_STEP", "1000"))
_client: Any = None


def run(data: dict[str, Any]) -> None:
    """The body: one INCR on the counter, plus the start-time records described above."""
    started = time.time()
    client = _client or _connect()
    n = client.incr(COUNTER)
    if _MODE == "latency":
        client.hset(STARTS, data["n"], started)
    elif _MODE == "intervals":
        client.rpush(INTERVALS, f"{started!r} {time.time()!r}")
    elif n % _STEP in (0, 1) or n == _TARGET:
        client.rpush(MARKS, f"{n} {started!r}")


def _connect() -> Any:
    global _client
    _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _client
