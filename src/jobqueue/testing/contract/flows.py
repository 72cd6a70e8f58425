"""Flows on every backend: jobs that wait for others (``Job.depends_on``), stored BLOCKED in
one atomic step, made waiting in the same step as their last dependency's completion, and
ended or run by their failure rules -- on the store (``insert``'s ``"@k"`` references,
``Change.deliver``) and through the core's verbs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from jobqueue.backend import Backend, Outcome
from jobqueue.changes import Change, Delivery, InState, Selector
from jobqueue.engine import Engine
from jobqueue.flows import Flow, FlowStep
from jobqueue.job import JSON, Job, JobError, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.support import ContractBase, MakeJob, read, spec

_BLOCKED = frozenset({JobState.BLOCKED})
_COMPLETED = frozenset({JobState.COMPLETED})
_ERROR = JobError("E", "boom")

Edges = Sequence[int | tuple[int, str]]


def flow_jobs(new_job: MakeJob, steps: Sequence[tuple[str, Edges]]) -> list[Job]:
    """The jobs of a flow of ``steps`` (worker name, the earlier steps it depends on, each a
    position or a ``(position, rule)`` pair), as ``submit_flow`` hands them to a store."""
    flow = Flow()
    added: list[FlowStep] = []
    for name, edges in steps:
        depends = [added[e] if isinstance(e, int) else (added[e[0]], e[1]) for e in edges]
        added.append(flow.add(name, {"step": len(added)}, depends_on=depends))

    def new_jobs(name: str, datas: Iterable[JSON], options: dict[str, object]) -> list[Job]:
        return [new_job(name, data) for data in datas]

    return flow.jobs(new_jobs)


class FlowContract(ContractBase):
    """Contract tests of flows (see the module docstring)."""

    def _submit(self, backend: Engine, new_job: MakeJob, *steps: tuple[str, Edges]) -> list[str]:
        return [job.id for job in backend.submit_flow(flow_jobs(new_job, steps))]

    def _complete(self, backend: Engine, job_id: str, result: JSON = None) -> None:
        """Claim ``job_id`` (the only ready job) and complete it as a dispatcher would."""
        claim = self._claim(backend, read(backend, job_id).name)
        assert claim.job.id == job_id, f"expected {job_id} to be claimed, got {claim.job.id}"
        backend.complete(job_id, claim.token, result, None, claim.job.dependents)

    def _fail(self, backend: Engine, job_id: str) -> None:
        claim = self._claim(backend, read(backend, job_id).name)
        assert claim.job.id == job_id
        state = backend.fail(job_id, claim.token, _ERROR, None, claim.job.dependents)
        assert state is JobState.FAILED

    def _states(self, backend: Engine, ids: Sequence[str]) -> list[JobState]:
        return [read(backend, job_id).state for job_id in ids]

    # -- the store: insert and deliver ----------------------------------------------------

    def test_insert_stores_a_flow_with_its_references_resolved(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        a, b, c = self._submit(backend, new_job, ("a", []), ("a", []), ("b", [0, (1, "ignore")]))
        first, second, third = (read(backend, i) for i in (a, b, c))
        assert first.state is second.state is JobState.WAITING
        assert third.state is JobState.BLOCKED
        assert {job.flow_id for job in (first, second, third)} == {a}
        assert [tuple(d) for d in third.depends_on] == [(a, "cancel"), (b, "ignore")]
        assert [tuple(d) for d in first.dependents] == [(c, "cancel")]
        assert [tuple(d) for d in second.dependents] == [(c, "ignore")]
        assert third.dependency_outcomes == {} and first.depends_on == ()

    def test_blocked_jobs_are_listed_counted_and_never_claimed(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        ids = self._submit(backend, new_job, ("a", []), ("b", [0]), ("b", [0]), ("b", [1]))
        listed = backend.store.scan(Selector(JobState.BLOCKED), 0, 10)
        assert [job.id for job in listed] == ids[1:]  # in submit order
        assert [job.id for job in backend.store.scan(Selector(JobState.BLOCKED, "a"), 0, 10)] == []
        assert backend.count_by_name()["b"][JobState.BLOCKED] == 3
        assert backend.count_by_state()[JobState.BLOCKED] == 3
        clock.advance(3600)
        backend.maintain()
        assert backend.claim(spec("b")) is None
        assert self._states(backend, ids[1:]) == [JobState.BLOCKED] * 3

    def test_a_delivery_moves_the_dependent_only_with_every_outcome(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        store: Backend = backend.store
        a, b, c = self._submit(backend, new_job, ("a", []), ("a", []), ("b", [0, 1]))
        claims = store.claim_many(spec("a"), 2)
        assert sorted(claim.job.id for claim in claims) == sorted([a, b])
        from_a = Change(
            c, InState(_BLOCKED), JobState.WAITING, deliver=Delivery(a, _COMPLETED, {"x": 1})
        )
        # a is still active: its outcome is not final, so nothing is delivered
        (conflict,), _ = store.apply([from_a])
        assert conflict is not None and conflict.state is JobState.BLOCKED
        assert read(backend, c).dependency_outcomes == {}
        by_id = {claim.job.id: claim for claim in claims}
        backend.complete(a, by_id[a].token, "ra", None)  # no delivery: a crash, say
        assert store.apply([from_a])[0] == [None]  # written; c still lacks b's outcome
        assert read(backend, c).state is JobState.BLOCKED
        assert read(backend, c).dependency_outcomes == {a: {"x": 1}}
        backend.complete(b, by_id[b].token, "rb", None)
        from_b = Change(
            c, InState(_BLOCKED), JobState.WAITING, deliver=Delivery(b, _COMPLETED, {"y": 2})
        )
        assert store.apply([from_b])[0] == [None]
        moved = read(backend, c)
        assert moved.state is JobState.WAITING
        assert moved.dependency_outcomes == {a: {"x": 1}, b: {"y": 2}}
        assert self._claim(backend, "b").job.id == c

    def test_a_dependent_due_later_is_delayed_when_unblocked(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        jobs = flow_jobs(new_job, [("a", []), ("b", [0])])
        jobs[1].run_at = clock() + 60
        a, b = (job.id for job in backend.submit_flow(jobs))
        self._complete(backend, a)
        assert read(backend, b).state is JobState.DELAYED
        clock.advance(61)
        assert self._claim(backend, "b").job.id == b

    # -- the core: completion, failure rules, cancel, retry -----------------------------------

    def test_the_last_completion_makes_the_dependent_waiting_in_its_step(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        a, b, c = self._submit(backend, new_job, ("a", []), ("a", []), ("b", [0, 1]))
        self._complete(backend, a, {"from": "a"})
        assert read(backend, c).state is JobState.BLOCKED
        self._complete(backend, b, [1, 2])
        dependent = read(backend, c)
        assert dependent.state is JobState.WAITING
        assert dependent.dependency_results() == {a: {"from": "a"}, b: [1, 2]}
        assert dependent.dependency_errors() == {}
        claim = self._claim(backend, "b")
        assert claim.job.dependency_results() == {a: {"from": "a"}, b: [1, 2]}

    def test_a_completion_and_the_next_claim_still_share_one_step(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        a, b = self._submit(backend, new_job, ("a", []), ("a", [0]))
        claim = self._claim(backend, "a")
        following = backend.complete(a, claim.token, "r", spec("a"), claim.job.dependents)
        # b became waiting in the completion's step; the claim in that step may take it
        if following is None:
            following = self._claim(backend, "a")
        assert following.job.id == b
        assert following.job.dependency_results() == {a: "r"}

    def test_a_batch_of_outcomes_delivers_and_fails_in_its_step(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        a, b, c, d = self._submit(backend, new_job, ("a", []), ("a", []), ("b", [0]), ("b", [1]))
        claims = {claim.job.id: claim for claim in backend.claim_many(spec("a"), 2)}
        outcomes = [
            Outcome(a, claims[a].token, result="ra", dependents=claims[a].job.dependents),
            Outcome(b, claims[b].token, error=_ERROR, dependents=claims[b].job.dependents),
        ]
        states, _ = backend.finish_many(outcomes, None, 0)
        assert states == [JobState.COMPLETED, JobState.FAILED]
        assert read(backend, c).state is JobState.WAITING
        assert read(backend, c).dependency_results() == {a: "ra"}
        assert read(backend, d).state is JobState.CANCELLED

    def test_a_failure_cancels_its_dependents_recursively_naming_the_job(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        a, b, c, d = self._submit(backend, new_job, ("a", []), ("b", [0]), ("b", [1]), ("c", []))
        self._fail(backend, a)
        cancelled_b, cancelled_c = read(backend, b), read(backend, c)
        assert cancelled_b.state is cancelled_c.state is JobState.CANCELLED
        assert cancelled_b.error is not None and a in cancelled_b.error.message
        assert cancelled_c.error is not None and b in cancelled_c.error.message
        assert cancelled_b.finished_at is not None
        assert read(backend, d).state is JobState.WAITING  # not a dependent: untouched

    def test_ignore_runs_the_dependent_with_the_failure_readable(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        a, b, c = self._submit(backend, new_job, ("a", []), ("a", []), ("b", [(0, "ignore"), 1]))
        self._fail(backend, a)
        assert read(backend, c).state is JobState.BLOCKED  # b has not delivered yet
        self._complete(backend, b, "rb")
        dependent = self._claim(backend, "b").job
        assert dependent.id == c
        assert dependent.dependency_results() == {b: "rb"}
        errors = dependent.dependency_errors()
        assert list(errors) == [a] and errors[a] == _ERROR

    def test_fail_fails_the_dependent_and_its_own_dependents_follow_their_rules(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        a, b, c, d = self._submit(
            backend, new_job, ("a", []), ("b", [(0, "fail")]), ("c", [1]), ("c", [(1, "ignore")])
        )
        self._fail(backend, a)
        assert self._states(backend, [b, c, d]) == [
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.WAITING,
        ]
        assert read(backend, d).dependency_errors()[b] is not None

    def test_cancelling_a_job_cancels_its_dependents(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        a, b, c = self._submit(backend, new_job, ("a", []), ("b", [0]), ("b", [1]))
        assert backend.cancel(a) is JobState.CANCELLED
        assert self._states(backend, [b, c]) == [JobState.CANCELLED] * 2
        assert backend.cancel(b) is JobState.CANCELLED  # already: nothing more

    def test_a_blocked_job_can_be_cancelled_and_its_dependents_follow(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        a, b, c = self._submit(backend, new_job, ("a", []), ("b", [0]), ("b", [1]))
        assert backend.cancel(b) is JobState.CANCELLED
        assert self._states(backend, [a, b, c]) == [
            JobState.WAITING,
            JobState.CANCELLED,
            JobState.CANCELLED,
        ]
        self._complete(backend, a)  # delivers nothing to a cancelled dependent
        assert self._states(backend, [b, c]) == [JobState.CANCELLED] * 2

    def test_retrying_the_failed_dependency_brings_its_dependents_back(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        a, b, c = self._submit(backend, new_job, ("a", []), ("b", [0]), ("b", [1]))
        self._fail(backend, a)
        assert self._states(backend, [b, c]) == [JobState.CANCELLED] * 2
        retried = backend.retry(a)
        assert retried is not None and retried.state is JobState.WAITING
        assert self._states(backend, [b, c]) == [JobState.BLOCKED] * 2
        assert read(backend, b).error is None and read(backend, b).dependency_outcomes == {}
        self._complete(backend, a, "again")
        assert read(backend, b).state is JobState.WAITING
        self._complete(backend, b)
        assert read(backend, c).state is JobState.WAITING

    def test_a_dependent_another_failure_ended_stays_ended_on_retry(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        a, b, c = self._submit(backend, new_job, ("a", []), ("a", []), ("b", [0, (1, "fail")]))
        self._fail(backend, a)
        assert read(backend, c).state is JobState.CANCELLED
        backend.retry(a)
        assert read(backend, c).state is JobState.BLOCKED  # a alone ended it
        self._fail(backend, b)
        assert read(backend, c).state is JobState.FAILED
        self._complete(backend, a)  # delivers nothing to a dependent that has ended
        assert read(backend, c).state is JobState.FAILED

    # -- nothing waits forever --------------------------------------------------------------

    def test_maintenance_delivers_an_outcome_a_crash_lost(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        a, b = self._submit(backend, new_job, ("a", []), ("b", [0]))
        claim = self._claim(backend, "a")
        backend.complete(a, claim.token, "r", None)  # the deliveries never made
        assert read(backend, b).state is JobState.BLOCKED
        backend.maintain()
        dependent = read(backend, b)
        assert dependent.state is JobState.WAITING and dependent.dependency_results() == {a: "r"}

    def test_maintenance_ends_a_dependent_whose_dependency_was_removed(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        a, b, c = self._submit(backend, new_job, ("a", []), ("b", [0]), ("c", [(0, "ignore")]))
        assert backend.remove(a)
        backend.maintain()
        removed = read(backend, b)
        assert removed.state is JobState.CANCELLED
        assert removed.error is not None and "removed" in removed.error.message
        assert read(backend, c).state is JobState.WAITING

    def test_every_blocked_job_names_what_it_waits_for(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        steps: list[tuple[str, Edges]] = [("a", [])]
        steps += [("a", [0]) for _ in range(6)]  # fan out
        steps += [("b", list(range(1, 7)))]  # gather
        steps += [("c", [7]), ("c", [(7, "ignore")]), ("c", [(8, "fail")])]
        ids = self._submit(backend, new_job, *steps)
        self._complete(backend, ids[0])
        for job_id in ids[1:4]:
            self._complete(backend, job_id)
        blocked = backend.store.scan(Selector(JobState.BLOCKED), 0, 100)
        assert [job.id for job in blocked] == ids[7:]
        for job in blocked:
            missing = [e.job_id for e in job.depends_on if e.job_id not in job.dependency_outcomes]
            assert missing, f"blocked job {job.id} has every outcome"
            assert any(read(backend, m).state.is_live for m in missing), (
                f"blocked job {job.id} waits only for finished jobs {missing}"
            )
        self._fail(backend, ids[4])
        assert self._states(backend, ids[7:]) == [
            JobState.CANCELLED,  # the gather: a dependency failed
            JobState.CANCELLED,  # its dependent
            JobState.WAITING,  # ignores the gather's end
            JobState.FAILED,  # fails with the cancelled one
        ]

    def test_a_fan_in_of_fifty_completes_every_job_once(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        steps: list[tuple[str, Edges]] = [("a", []) for _ in range(50)]
        steps.append(("b", list(range(50))))
        ids = self._submit(backend, new_job, *steps)
        done: list[str] = []
        while (claim := backend.claim(spec("a", "b"))) is not None:
            done.append(claim.job.id)
            backend.complete(claim.job.id, claim.token, len(done), None, claim.job.dependents)
        assert sorted(done) == sorted(ids) and done[-1] == ids[-1]
        gathered = read(backend, ids[-1]).dependency_results()
        assert sorted(gathered.values()) == list(range(1, 51))
