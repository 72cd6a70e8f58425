"""What every part of the contract shares: ``ContractBase`` (the backend author's hooks and the
fixtures ``clock``, ``open_backend``, ``backend``, ``new_job``, ``same_store``) and small
helpers. Each part subclasses ``ContractBase``, so a part also runs on its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import strategies as st

from jobqueue.backend import Backend, BackendOptions, Claim, DispatcherInfo, WorkSpec
from jobqueue.engine import Engine
from jobqueue.job import JSON, Job, JobError, JobState
from jobqueue.testing.clock import ManualClock

MakeJob = Callable[..., Job]
"""``new_job(name="a", data={"n": 1}, **job_fields)``: an unsaved ``Job`` made now."""

OpenBackend = Callable[..., Engine]
"""``open_backend(**backend_options)``: a new, empty backend on the test's clock, as the core
drives it (an ``Engine`` over it)."""

ERROR = JobError("ValueError", "boom", "Traceback ...")

_DEFAULT_DATA = {"n": 1}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def spec(
    *names: str, lease: float = 30.0, dispatcher: str | None = None, **max_active: int
) -> WorkSpec:
    return WorkSpec(names=names, lease_seconds=lease, max_active=max_active, dispatcher=dispatcher)


def name_counts(**states: int) -> dict[JobState, int]:
    """Every state's count for one name: the given ones (by state value), the rest zero."""
    by_state = dict.fromkeys(JobState, 0)
    for state, n in states.items():
        by_state[JobState(state)] = n
    return by_state


def dispatcher_info(clock: ManualClock, dispatcher_id: str = "d1", **fields: Any) -> DispatcherInfo:
    fields.setdefault("host", "host-1")
    fields.setdefault("pid", 4242)
    fields.setdefault("names", ("a",))
    fields.setdefault("concurrency", 1)
    fields.setdefault("started_at", clock())
    return DispatcherInfo(id=dispatcher_id, **fields)


def read(backend: Engine, job_id: str) -> Job:
    job = backend.get(job_id)
    assert job is not None, f"job {job_id} is gone"
    return job


class ContractBase:
    """The hooks a backend author overrides, and the fixtures every contract test uses."""

    state_machine_examples = 25
    state_machine_steps = 40
    differential_examples = 60
    differential_steps = 50

    def make_backend(self, options: BackendOptions) -> Backend:
        """Return a NEW, EMPTY backend using ``options`` (clock, retention, max_stalls). The
        tests drive it through the core (``jobqueue.engine.Engine``), as a queue does, and
        through the seam itself (``ApplyContract``)."""
        raise NotImplementedError

    def dispose_backend(self, backend: Backend) -> None:
        """Called once per backend made; override to drop test data, then close."""
        backend.close()

    def open_same_store(self, backend: Backend, options: BackendOptions) -> Backend | None:
        """Another backend on ``backend``'s store (a second connection), or ``None`` when
        the store cannot be shared (then threads share ``backend`` itself). Closed with
        ``close()`` after the test; never disposed of as a store of its own."""
        return None

    # -- fixtures -------------------------------------------------------------------------------

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock()

    @pytest.fixture
    def open_backend(self, clock: ManualClock) -> Iterator[OpenBackend]:
        made: list[Backend] = []

        def open_backend(**options: Any) -> Engine:
            backend = self.make_backend(BackendOptions(clock=clock, **options))
            made.append(backend)
            return Engine(backend)

        yield open_backend
        for backend in made:
            self.dispose_backend(backend)

    @pytest.fixture
    def backend(self, open_backend: OpenBackend) -> Engine:
        return open_backend()

    @pytest.fixture
    def new_job(self, clock: ManualClock) -> MakeJob:
        def new_job(name: str = "a", data: JSON = _DEFAULT_DATA, **fields: Any) -> Job:
            fields.setdefault("created_at", clock())
            fields.setdefault("run_at", clock())
            return Job(id="", name=name, data=data, **fields)

        return new_job

    @pytest.fixture
    def same_store(self, backend: Engine, clock: ManualClock) -> Iterator[Callable[[], Engine]]:
        opened: list[Backend] = []

        def same_store() -> Engine:
            other = self.open_same_store(backend.store, BackendOptions(clock=clock))
            if other is None:
                return backend
            opened.append(other)
            return Engine(other)

        yield same_store
        for other in opened:
            other.close()

    # -- helpers --------------------------------------------------------------------------------

    def _claim(self, backend: Engine, *names: str, lease: float = 30.0) -> Claim:
        claim = backend.claim(spec(*names, lease=lease))
        assert claim is not None, f"expected a job to claim among {names}"
        return claim
