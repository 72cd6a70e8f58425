"""The state machine's flows (``state_machine``): small flows submitted at random, and what a
dispatcher passes when it ends a flow's job; the model's side is ``ModelBook``'s flow
bookkeeping (every rule the default, cancel)."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import strategies as st
from hypothesis.stateful import rule

from jobqueue.dependency import Dependency
from jobqueue.engine import Engine
from jobqueue.flows import Flow, FlowStep
from jobqueue.job import JSON, Job, JobState
from jobqueue.testing.model import NAMES, ModelBook, ModelJob


class FlowSteps(ModelBook):
    """The flow rules of the machine (a part of its class)."""

    backend: Engine

    @rule(
        shape=st.sampled_from(["pair", "chain", "join"]),
        names=st.lists(st.sampled_from(NAMES), min_size=3, max_size=3),
    )
    def submit_flow(self, shape: str, names: list[str]) -> None:
        """A small flow (every rule the default, cancel): a pair a -> b, a chain
        a -> b -> c, or a join a, b -> c."""
        edges = {"pair": [[], [0]], "chain": [[], [0], [1]], "join": [[], [], [0, 1]]}[shape]
        now = self.clock()

        def new_jobs(name: str, datas: Iterable[JSON], options: dict[str, object]) -> list[Job]:
            return [Job(id="", name=name, data=d, created_at=now, run_at=now) for d in datas]

        flow = Flow()
        steps: list[FlowStep] = []
        for position, depends in enumerate(edges):
            steps.append(
                flow.add(names[position], position, depends_on=[steps[d] for d in depends])
            )
        stored = self.backend.submit_flow(flow.jobs(new_jobs))
        for job, depends in zip(stored, edges, strict=True):
            assert job.id not in self.jobs, "backend reused a job id"
            state = JobState.BLOCKED if depends else JobState.WAITING
            assert job.state is state, f"flow job {job.id}: {job.state}, not {state}"
            model = ModelJob(job.id, job.name, 0, now, state)
            model.depends_on = [stored[d].id for d in depends]
            self.jobs[job.id] = model
            for d in depends:
                self.jobs[stored[d].id].dependents.append(job.id)

    def _edges(self, job: ModelJob) -> list[Dependency]:
        """What the dispatcher passes when it ends ``job``: the claim's dependents."""
        return [Dependency(d) for d in job.dependents]
