"""The shared backend contract suite, importable by third-party backend authors.

Subclass ``BackendContract`` in a test module and implement ``make_backend``::

    from jobqueue.testing import BackendContract

    class TestMyBackend(BackendContract):
        def make_backend(self, options):
            return MyBackend(options)   # a NEW, EMPTY backend on every call

Every test then runs against your backend, including a hypothesis state machine that
compares it with a simple model after every step, and a differential machine that drives it
and the in-memory reference backend with the same operations and demands identical
results. ``BackendContract`` combines one part per part of the seam, each a module of
``jobqueue.testing.contract`` (storage, fencing, ordering, dedup, waits, handoff, schedules,
schedule_records, control, operator, stalls, outcomes, machines) whose class also runs on
its own. Needs ``pytest`` and ``hypothesis``.
"""

from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract import BackendContract
from jobqueue.testing.differential import make_differential_machine
from jobqueue.testing.state_machine import make_state_machine

__all__ = ["BackendContract", "ManualClock", "make_differential_machine", "make_state_machine"]
