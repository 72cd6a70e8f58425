"""jobqueue against its peers (Python; BullMQ and Kue on Node), on one private Redis,
interleaved in one run; with ``--postgres``, jobqueue's PostgreSQL backend against the
PostgreSQL peers (procrastinate, pgqueuer, Chancy, and oban-py under Python 3.12) in a
database of the bench's own.

    python3 bench/run.py                        # full run: 20,000 jobs, 3 rounds
    python3 bench/run.py --jobs 2000 --rounds 1 # quick run
    python3 bench/run.py --flat                 # also: claim cost with 1,000,000 jobs waiting
    python3 bench/run.py --postgres             # the PostgreSQL peers (+ transactions per job)

It creates ``bench/.venv`` (jobqueue editable with hiredis, and the peers pinned in
``bench/requirements.txt``) on first use and re-runs itself inside it; the Node peers' packages
go to ``bench/node/node_modules`` (``npm ci``) the first time one is measured, and without
``node`` those peers are skipped with one message. Each round measures
every library in turn (the order rotates by round), each phase on a flushed database:

(a)  submit N jobs one by one from one producer                   -> submits/s
(d)  Redis ``used_memory`` after (a) minus before, over N          -> bytes per queued job
(b)  start ONE worker process at concurrency 1 on those N jobs      -> jobs/s, first to last start
(a') bulk-submit N jobs, where the library has a bulk API         -> jobs/s
(c)  200 submits 10 ms apart to an idle worker                      -> submit->start p50 / p99

See bench/README.md and docs/benchmarks.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

if __name__ == "__main__":
    from common import ensure_venv

    ensure_venv()  # re-runs this command inside bench/.venv

    from harness import main

    main()
