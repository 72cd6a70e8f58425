"""The Engine's control plane: cancel, retry and run now (one job, decided from a fresh read
and written guarded, read again if the job moved in between), their bulk forms page by page,
purge, remove and pauses."""

from __future__ import annotations

from typing import Protocol

from jobqueue import lifecycle
from jobqueue.backend import Backend, BackendOptions
from jobqueue.changes import Change, Selector
from jobqueue.engine.flows import Flows
from jobqueue.flow_rules import DEPENDENCY_FAILED
from jobqueue.job import FINISHED_STATES, Job, JobState

PAGE = 500
"""Jobs read and written per step by the bulk verbs (and stall recovery)."""

_CONFLICT_RETRIES = 5
"""How often a control-plane verb reads again when the job moved between its read and its
write (a race with a dispatcher): each round is a fresh decision."""


class _Rule(Protocol):
    def __call__(self, job: Job, /) -> Change | None: ...


class Steering(Flows):
    """The operator's verbs (a part of ``Engine``)."""

    store: Backend
    options: BackendOptions

    def cancel(self, job_id: str) -> JobState | None:
        """``lifecycle.on_cancel``: the job's state after the call, ``None`` if none."""
        state: JobState | None = None
        for _ in range(_CONFLICT_RETRIES):
            job = self.store.get(job_id)
            if job is None:
                return None
            change = lifecycle.on_cancel(job)
            if change is None:
                return job.state
            (conflict,), _ = self.store.apply([change])
            if conflict is None:
                if job.dependents and change.to is JobState.CANCELLED:
                    self.ended(job_id, job.dependents)
                return change.to
            state = conflict.state
        return state

    def retry(self, job_id: str) -> Job | None:
        """``lifecycle.on_retry``; raises ``JobStateError`` for a job that is not failed or
        cancelled, or whose unique key another live job holds."""
        for _ in range(_CONFLICT_RETRIES):
            job = self.store.get(job_id)
            if job is None:
                return None
            (conflict,), _ = self.store.apply([lifecycle.on_retry(job, self.options.clock())])
            if conflict is None:
                if job.dependents:
                    self.revive_dependents(job)
                break
            if conflict.unique_holder is not None:
                assert job.unique_key is not None
                raise lifecycle.unique_key_taken(job_id, conflict.unique_holder, job.unique_key)
        return self.store.get(job_id)

    def promote(self, job_id: str) -> Job | None:
        """``lifecycle.on_promote``: a delayed job waiting now; ``JobStateError`` otherwise."""
        for _ in range(_CONFLICT_RETRIES):
            job = self.store.get(job_id)
            if job is None:
                return None
            (conflict,), _ = self.store.apply([lifecycle.on_promote(job)])
            if conflict is None:
                break
        return self.store.get(job_id)

    def retry_many(self, state: JobState, name: str | None = None) -> int:
        """``retry`` every job in ``state`` (of ``name``), skipping those whose unique key
        another live job holds; returns how many were retried."""
        if state not in lifecycle.RETRIABLE:
            return 0
        now = self.options.clock()
        return self._each(Selector(state, name), lambda job: lifecycle.on_retry(job, now))

    def cancel_many(self, state: JobState, name: str | None = None) -> int:
        """``cancel`` every job in ``state`` (of ``name``), in the order they would have run;
        returns how many were cancelled or asked to stop."""
        if state not in lifecycle.NOT_STARTED and state is not JobState.ACTIVE:
            return 0
        return self._each(Selector(state, name), lifecycle.on_cancel)

    def _each(self, selector: Selector, decide: _Rule) -> int:
        """Apply ``decide``'s change to every job ``selector`` finds, a page per step;
        returns how many were written. Jobs that stay in the state are paged past."""
        written, offset = 0, 0
        while page := self.store.scan(selector, offset, PAGE):
            decided = [(job, decide(job)) for job in page]
            changes = [change for _, change in decided if change is not None]
            conflicts, _ = self.store.apply(changes) if changes else ([], [])
            outcome = iter(conflicts)
            for job, change in decided:
                if change is None or next(outcome) is not None:
                    offset += 1
                else:
                    written += 1
                    offset += change.to is selector.state
                    if job.dependents:  # a flow's job: its dependents follow
                        self._flow_follows(job, change.to)
        return written

    def cancel_flow(self, flow_id: str) -> int:
        """Cancel every job of a flow not finished yet (an active one is asked to stop);
        returns how many were cancelled or asked."""
        before = [job for job in self.flow(flow_id) if job.state.is_live]
        for job in before:
            self.cancel(job.id)  # its dependents may follow already: cancel reads again
        after = {job.id: job for job in self.flow(flow_id)}
        return sum(
            1
            for job in before
            if (now := after.get(job.id)) is not None
            and (now.state is JobState.CANCELLED or now.cancel_requested)
        )

    def retry_flow(self, flow_id: str) -> int:
        """Retry every failed or cancelled job of a flow that a dependency did not end (those
        come back with the dependency they wait for); returns how many were retried."""
        retried = 0
        for job in self.flow(flow_id):
            ended_by_dependency = job.error is not None and job.error.type == DEPENDENCY_FAILED
            if job.state in lifecycle.RETRIABLE and not ended_by_dependency:
                again = self.retry(job.id)
                retried += again is not None and again.state is not job.state
        return retried

    def _flow_follows(self, job: Job, to: JobState) -> None:
        if to is JobState.CANCELLED:
            self.ended(job.id, job.dependents)
        elif job.state in lifecycle.RETRIABLE:
            self.revive_dependents(job)

    def purge(
        self, state: JobState, name: str | None = None, finished_before: float | None = None
    ) -> int:
        """Delete finished jobs in ``state`` (of ``name``, finished before
        ``finished_before``); returns how many."""
        if state not in FINISHED_STATES:
            return 0
        selector, deleted = Selector(state, name, finished_before), 0
        while page := self.store.scan(selector, 0, PAGE):
            removed = self.store.delete([job.id for job in page])
            deleted += removed
            if removed == 0:
                break
        return deleted

    def remove(self, job_id: str) -> bool:
        return self.store.delete([job_id]) == 1

    def pause(self, name: str) -> None:
        self.store.set_paused("worker", name, True)

    def resume(self, name: str) -> None:
        self.store.set_paused("worker", name, False)

    def remove_dispatcher(self, dispatcher_id: str) -> None:
        self.store.forget("dispatcher", dispatcher_id)
