"""A flow: jobs with dependencies between them, stored in one atomic step
(``queue.submit_flow``).

Build it step by step; a step may only depend on steps added before it, so a flow never has a
cycle. Each dependency has a rule for its failure (``ON_FAILURE``)::

    flow = Flow()
    fetch_a = flow.add("fetch", {"url": "https://a.example"})
    fetch_b = flow.add("fetch", {"url": "https://b.example"})
    merge = flow.add("merge", depends_on=[fetch_a, (fetch_b, "ignore")])
    jobs = queue.submit_flow(flow)  # in the order added; merge is BLOCKED until both end
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from jobqueue.dependency import ON_FAILURE, Dependency, batch_ref
from jobqueue.errors import InvalidOptionError
from jobqueue.job import JSON, Job

MAX_FLOW_JOBS = 10_000
"""A flow holds at most this many jobs (it is stored in one atomic step)."""

MAX_DEPENDENCIES = 1_000
"""A job of a flow depends on at most this many others."""


@dataclass(frozen=True, slots=True)
class FlowStep:
    """A job of a flow before it is stored: what ``Flow.add`` returns, to name it in
    another step's ``depends_on``."""

    flow: Flow = field(repr=False, compare=False)
    position: int


NewJobs = Callable[[str, Iterable[JSON], dict[str, object]], list[Job]]
"""``QueueClient.new_jobs``: a worker's jobs from data and submit options, checked."""


@dataclass(slots=True)
class _Step:
    name: str
    data: JSON
    options: dict[str, object]
    depends_on: tuple[Dependency, ...]


class Flow:
    """Jobs and the dependencies between them, submitted together by ``submit_flow``."""

    def __init__(self) -> None:
        self._steps: list[_Step] = []

    def __len__(self) -> int:
        return len(self._steps)

    def add(
        self,
        name: str,
        data: JSON = None,
        *,
        depends_on: Iterable[FlowStep | tuple[FlowStep, str]] = (),
        **options: object,
    ) -> FlowStep:
        """Add a job for worker ``name`` (``submit_job``'s options, but no ``unique_key``)
        that runs once every step of ``depends_on`` completed. An item ``(step, rule)`` says
        what happens when that step fails for good or is cancelled: ``"cancel"`` this job
        (the default, recursively), ``"ignore"`` (run anyway: ``job.dependency_errors()``),
        or ``"fail"`` it. Bad input raises ``InvalidOptionError`` and adds nothing."""
        if len(self._steps) >= MAX_FLOW_JOBS:
            raise InvalidOptionError(f"a flow holds at most {MAX_FLOW_JOBS} jobs")
        if options.get("unique_key") is not None:
            raise InvalidOptionError(
                "unique_key is not supported in a flow: a deduplicated job would leave its "
                "dependents waiting on another flow's job; submit it with submit_job instead"
            )
        edges = tuple(self._edge(item) for item in depends_on)
        if len(edges) > MAX_DEPENDENCIES:
            raise InvalidOptionError(f"a job depends on at most {MAX_DEPENDENCIES} others")
        if len({edge.job_id for edge in edges}) != len(edges):
            raise InvalidOptionError("depends_on names the same step twice")
        self._steps.append(_Step(name, data, dict(options), edges))
        return FlowStep(self, len(self._steps) - 1)

    def _edge(self, item: FlowStep | tuple[FlowStep, str]) -> Dependency:
        step, rule = (item, "cancel") if isinstance(item, FlowStep) else _pair(item)
        if step.flow is not self:
            raise InvalidOptionError("depends_on names a step of another flow")
        if rule not in ON_FAILURE:
            raise InvalidOptionError(
                f"unknown dependency rule {rule!r}; use one of {', '.join(ON_FAILURE)}"
            )
        return Dependency(batch_ref(step.position), rule)

    def jobs(self, new_jobs: NewJobs) -> list[Job]:
        """The flow's unsaved jobs, every step checked as ``submit_job`` checks it, both
        directions of every edge filled in with ``"@k"`` references (``Backend.insert``)."""
        if not self._steps:
            raise InvalidOptionError("a flow needs at least one job")
        dependents: list[list[Dependency]] = [[] for _ in self._steps]
        for position, step in enumerate(self._steps):
            for edge in step.depends_on:
                upstream = int(edge.job_id[1:])
                dependents[upstream].append(Dependency(batch_ref(position), edge.on_failure))
        built = []
        for position, step in enumerate(self._steps):
            (job,) = new_jobs(step.name, [step.data], step.options)
            built.append(
                replace(
                    job,
                    flow_id=batch_ref(0),
                    depends_on=step.depends_on,
                    dependents=tuple(dependents[position]),
                )
            )
        return built


def _pair(item: object) -> tuple[FlowStep, str]:
    if (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], FlowStep)
        and isinstance(item[1], str)
    ):
        return item[0], item[1]
    raise InvalidOptionError(f"depends_on items are steps or (step, rule) pairs, got {item!r}")
