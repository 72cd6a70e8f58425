"""``python -m tests.reliability.skewed_clock SKEW ARGS...``: the ``jobqueue`` command line
(ARGS) on a host whose clock is SKEW seconds off.

``time.time`` is moved before jobqueue is imported, so the process is what a host with a wrong
clock runs: its default clock (``time.time``, captured as defaults when jobqueue is imported)
is the skewed one, and everything that reads the host's time reads it skewed. Only the
database's clock is right.
"""

from __future__ import annotations

import sys
import time


def main() -> int:
    skew = float(sys.argv[1])
    real = time.time
    time.time = lambda: real() + skew

    from jobqueue.cli import main as jobqueue_main

    return jobqueue_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
