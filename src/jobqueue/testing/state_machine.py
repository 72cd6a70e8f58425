"""A hypothesis state machine that drives a backend and checks it against a simple model.

Random submits, claims, renewals, completions, failures, releases, removals and clock jumps;
after every step: no job in two states, none lost, no claim of a job whose lease is live,
the highest ready priority claimed first, nothing claimed before it is due.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jobqueue.backend import Backend, BackendOptions, WorkSpec
from jobqueue.errors import LeaseLostError
from jobqueue.job import Job, JobError, JobState
from jobqueue.testing.clock import ManualClock

MAX_STALLS = 2
NAMES = ("a", "b")


@dataclass
class ModelJob:
    id: str
    name: str
    priority: int
    run_at: float
    state: JobState = JobState.WAITING
    token: str | None = None
    lease_deadline: float = 0.0
    attempts_made: int = 0
    stalls: int = 0


def make_state_machine(
    make_backend: Callable[[BackendOptions], Backend],
    dispose_backend: Callable[[Backend], None],
) -> type[RuleBasedStateMachine]:
    """Build the machine class for one backend factory (a new, empty backend per example)."""

    class BackendStateMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = ManualClock()
            self.backend = make_backend(BackendOptions(clock=self.clock, max_stalls=MAX_STALLS))
            self.jobs: dict[str, ModelJob] = {}
            self.stale_tokens: list[tuple[str, str]] = []  # (job id, token) no longer valid

        def teardown(self) -> None:
            dispose_backend(self.backend)

        # -- the model's own bookkeeping ------------------------------------------------------

        def _recover_expired(self) -> None:
            now = self.clock()
            for job in self.jobs.values():
                if job.state is JobState.ACTIVE and job.lease_deadline <= now:
                    assert job.token is not None
                    self.stale_tokens.append((job.id, job.token))
                    job.token = None
                    job.stalls += 1
                    if job.stalls > MAX_STALLS:
                        job.state = JobState.FAILED
                    else:
                        job.state, job.run_at = JobState.WAITING, now

        def _ready(self, names: tuple[str, ...]) -> list[ModelJob]:
            now = self.clock()
            return [
                job
                for job in self.jobs.values()
                if job.name in names
                and (
                    job.state is JobState.WAITING
                    or (job.state is JobState.DELAYED and job.run_at <= now)
                )
            ]

        def _active(self) -> list[ModelJob]:
            return sorted(
                (j for j in self.jobs.values() if j.state is JobState.ACTIVE), key=lambda j: j.id
            )

        # -- rules ----------------------------------------------------------------------------

        @rule(
            name=st.sampled_from(NAMES),
            priority=st.integers(-2, 2),
            delay=st.sampled_from([0.0, 0.0, 0.0, 5.0, 20.0]),
        )
        def submit(self, name: str, priority: int, delay: float) -> None:
            now = self.clock()
            stored = self.backend.submit(
                Job(
                    id="",
                    name=name,
                    data={"p": priority},
                    priority=priority,
                    created_at=now,
                    run_at=now + delay,
                )
            )
            assert stored.id not in self.jobs, "backend reused a job id"
            state = JobState.DELAYED if delay > 0 else JobState.WAITING
            assert stored.state is state
            self.jobs[stored.id] = ModelJob(stored.id, name, priority, now + delay, state)

        @rule(
            names=st.sampled_from([("a",), ("b",), ("a", "b")]),
            lease=st.sampled_from([5.0, 30.0]),
        )
        def claim(self, names: tuple[str, ...], lease: float) -> None:
            self._recover_expired()
            ready = self._ready(names)
            claim = self.backend.claim(WorkSpec(names=names, lease_seconds=lease))
            if not ready:
                assert claim is None, f"claimed {claim and claim.job.id} with nothing ready"
                return
            assert claim is not None, f"nothing claimed though {[j.id for j in ready]} ready"
            job = self.jobs.get(claim.job.id)
            assert job is not None, "claimed a job the model never saw"
            assert job in ready, f"claimed job {job.id} in state {job.state} (not ready)"
            assert job.priority == max(j.priority for j in ready), "priority not honoured"
            assert claim.job.attempts_made == job.attempts_made + 1
            assert claim.job.stalls == job.stalls
            job.state, job.token = JobState.ACTIVE, claim.token
            job.lease_deadline = self.clock() + lease
            job.attempts_made += 1

        @precondition(lambda self: bool(self._active()))
        @rule(data=st.data(), lease=st.sampled_from([5.0, 30.0]))
        def renew(self, data: st.DataObject, lease: float) -> None:
            job = data.draw(st.sampled_from(self._active()))
            assert job.token is not None
            live = job.lease_deadline > self.clock()
            assert self.backend.renew(job.id, job.token, lease) is live
            if live:
                job.lease_deadline = self.clock() + lease

        @precondition(lambda self: bool(self._active()))
        @rule(data=st.data(), outcome=st.sampled_from(["complete", "fail", "retry", "release"]))
        def finish(self, data: st.DataObject, outcome: str) -> None:
            job = data.draw(st.sampled_from(self._active()))
            assert job.token is not None
            live = job.lease_deadline > self.clock()
            now = self.clock()
            try:
                if outcome == "complete":
                    self.backend.complete(job.id, job.token, {"done": job.id}, None)
                    new_state = JobState.COMPLETED
                elif outcome == "fail":
                    state = self.backend.fail(job.id, job.token, JobError("E", "x"), None)
                    assert state is JobState.FAILED
                    new_state = JobState.FAILED
                elif outcome == "retry":
                    state = self.backend.fail(job.id, job.token, JobError("E", "x"), now + 10)
                    assert state is JobState.DELAYED
                    new_state, job.run_at = JobState.DELAYED, now + 10
                else:
                    assert self.backend.release(job.id, job.token) is live
                    if not live:
                        return
                    new_state, job.run_at = JobState.WAITING, now
                    job.attempts_made -= 1
            except LeaseLostError:
                assert not live, f"live lease of job {job.id} refused on {outcome}"
                return
            assert live, f"expired lease of job {job.id} accepted on {outcome}"
            self.stale_tokens.append((job.id, job.token))
            job.state, job.token = new_state, None

        @precondition(lambda self: bool(self.stale_tokens))
        @rule(data=st.data())
        def use_stale_token(self, data: st.DataObject) -> None:
            # Prefer tokens of jobs that were claimed again: the case fencing exists for.
            retaken = [
                (job_id, token)
                for job_id, token in self.stale_tokens
                if job_id in self.jobs and self.jobs[job_id].state is JobState.ACTIVE
            ]
            job_id, token = data.draw(st.sampled_from(retaken or self.stale_tokens))
            assert self.backend.renew(job_id, token, 30) is False
            try:
                self.backend.complete(job_id, token, "stale", None)
            except LeaseLostError:
                pass
            else:
                raise AssertionError(f"stale token completed job {job_id}")

        @precondition(lambda self: bool(self.jobs))
        @rule(data=st.data())
        def remove(self, data: st.DataObject) -> None:
            job_id = data.draw(st.sampled_from(sorted(self.jobs)))
            assert self.backend.remove(job_id) is True
            del self.jobs[job_id]
            assert self.backend.get(job_id) is None

        @rule(seconds=st.sampled_from([0.5, 3.0, 10.0, 40.0]))
        def advance_clock(self, seconds: float) -> None:
            self.clock.advance(seconds)

        @rule()
        def recover_expired(self) -> None:
            self.backend.recover_expired()
            self._recover_expired()

        # -- invariants -----------------------------------------------------------------------

        @invariant()
        def every_job_in_exactly_one_state(self) -> None:
            seen: dict[str, JobState] = {}
            for state in JobState:
                for job in self.backend.list_jobs(state, 0, 10_000):
                    assert job.id not in seen, f"job {job.id} listed as {seen[job.id]} and {state}"
                    assert job.state is state
                    seen[job.id] = state
            assert set(seen) == set(self.jobs), "backend and model hold different jobs"
            counts = self.backend.count_by_state()
            assert sum(counts.values()) == len(self.jobs)

        @invariant()
        def states_match_the_model(self) -> None:
            now = self.clock()
            for job in self.jobs.values():
                stored = self.backend.get(job.id)
                assert stored is not None, f"job {job.id} lost"
                if job.state is JobState.ACTIVE and job.lease_deadline <= now:
                    # expired but not yet recovered: recovery is lazy in most backends
                    allowed = {JobState.ACTIVE, JobState.WAITING, JobState.FAILED}
                elif job.state is JobState.DELAYED and job.run_at <= now:
                    allowed = {JobState.DELAYED, JobState.WAITING}
                else:
                    allowed = {job.state}
                assert stored.state in allowed, f"job {job.id}: {stored.state} not in {allowed}"

    return BackendStateMachine
