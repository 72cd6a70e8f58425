"""Where jobqueue's worker spends its time: one dispatcher at concurrency 1 on the Redis backend.

    python3 bench/profile_worker.py                 # 20,000 jobs, prefetch 1
    python3 bench/profile_worker.py --prefetch 50   # the prefetch mode
    python3 bench/profile_worker.py --py-spy        # also a py-spy flame graph of a worker process

Runs the dispatcher in this process (``JobQueue.work(burst=True)``) on pre-queued jobs that run
the benchmark's body (one INCR). Reports jobs/s without and with cProfile, Redis round trips per
job (the dispatcher's, apart from the body's), CPU per job of this process and of Redis, the
profile's time grouped by package (time blocked reading a socket is time waiting for Redis), and
the top functions by own time, in microseconds per job.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

if __name__ == "__main__":
    from common import ensure_venv

    ensure_venv()  # re-runs this command inside bench/.venv

    from profiling import main

    main()
