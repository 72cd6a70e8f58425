"""The types of the contract suite's fixtures, shared by its modules."""

from __future__ import annotations

from collections.abc import Callable

from jobqueue.backend import Backend
from jobqueue.job import Job

MakeJob = Callable[..., Job]
"""``new_job(name="a", data={"n": 1}, **job_fields)``: an unsaved ``Job`` made now."""

OpenBackend = Callable[..., Backend]
"""``open_backend(**backend_options)``: a new, empty backend on the test's clock."""
