"""Dispatcher processes on one queue: 1, 2, 4 and 8, plain and with ``exclusive=True``.

    python3 bench/scale.py                         # 10,000 jobs per point, 3 rounds
    python3 bench/scale.py --jobs 2000 --rounds 1  # quick

For each point the queue is filled first (bulk), then P worker processes (``run_worker()`` at
concurrency 1, each its own process) start together; the rate runs from the first job's start to
the last's. Plain jobs should spread over the processes; ``exclusive=True`` jobs must still run
one at a time across all of them: their body records each job's start and end, and the run
checks that no two intervals overlap. Redis's and the workers' CPU use show what saturates.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

if __name__ == "__main__":
    from common import ensure_venv

    ensure_venv()  # re-runs this command inside bench/.venv

    from scaling import main

    main()
