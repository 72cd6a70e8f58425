"""The Engine's verbs for flows: a dependency's outcome reaching its dependents, recursively
for cancellations and failures, dependents brought back by a retry, and the sweep that makes
sure no blocked job waits for an outcome that was never delivered (a crash between a job's
end and its dependents' changes, a removed dependency)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from jobqueue import flow_rules
from jobqueue.backend import Backend, BackendOptions
from jobqueue.changes import Change, Selector
from jobqueue.dependency import Dependency
from jobqueue.job import Job, JobError, JobState

logger = logging.getLogger("jobqueue.engine")

SWEEP_PAGE = 200
"""Blocked jobs checked per maintenance pass (the sweep goes round them page by page)."""

_ENDED = frozenset({JobState.FAILED, JobState.CANCELLED})


class Flows:
    """Dependencies between jobs (a part of ``Engine``)."""

    store: Backend
    options: BackendOptions
    _sweep_offset: int

    def submit_flow(self, jobs: Sequence[Job]) -> list[Job]:
        """Store a flow's jobs (``jobqueue.flows.Flow.jobs``: ``"@k"`` references) in one
        atomic step."""
        return self.store.insert(jobs)

    def flow(self, flow_id: str) -> list[Job]:
        """The jobs of the flow whose first job is ``flow_id``, in id order: every job
        reached from it through dependencies either way (a step with no edge at all is not)."""
        root = self.store.get(flow_id)
        if root is None or root.flow_id != flow_id:
            return []
        found, frontier = {root.id: root}, [root]
        while frontier:
            job = frontier.pop()
            for edge in (*job.depends_on, *job.dependents):
                if edge.job_id not in found:
                    other = self.store.get(edge.job_id)
                    if other is not None:
                        found[other.id] = other
                        frontier.append(other)
        return sorted(found.values(), key=lambda job: int(job.id) if job.id.isdigit() else 0)

    def ended(self, job_id: str, dependents: Sequence[Dependency] | None = None) -> int:
        """``job_id`` failed for good or was cancelled: apply its dependents' rules, recursively
        (a cancelled or failed dependent ends its own dependents in the same step). Reads the
        job (for its state and error) unless ``dependents`` says it has none. Returns how
        many dependents changed."""
        if dependents is not None and not dependents:
            return 0
        job = self.store.get(job_id)
        if job is None or job.state not in _ENDED or not job.dependents:
            return 0
        changes = self._consequences(job, job.dependents)
        conflicts, _ = self.store.apply(changes)
        return sum(conflict is None for conflict in conflicts)

    def revive_dependents(self, job: Job) -> int:
        """``job`` was retried: each dependent it alone had cancelled or failed waits for it
        again (blocked), and so on down the flow. Returns how many came back."""
        revived, frontier = 0, [job]
        while frontier:
            source = frontier.pop()
            for edge in source.dependents:
                dependent = self.store.get(edge.job_id)
                if dependent is None or not flow_rules.ended_by(dependent, source.id):
                    continue
                (conflict,), _ = self.store.apply([flow_rules.on_revived(dependent, source.id)])
                if conflict is None:
                    revived += 1
                    frontier.append(dependent)
                    # The outcomes its other dependencies gave while it was ended: now.
                    again = self.store.get(dependent.id)
                    if again is not None:
                        self._catch_up(again)
        return revived

    def sweep_blocked(self) -> int:
        """Check a page of blocked jobs: an outcome never delivered (the dependency finished,
        or was removed) is delivered now, by the same rules. Returns how many changed."""
        page = self.store.scan(Selector(JobState.BLOCKED), self._sweep_offset, SWEEP_PAGE)
        self._sweep_offset = self._sweep_offset + len(page) if len(page) == SWEEP_PAGE else 0
        return sum(self._catch_up(dependent) for dependent in page)

    def _catch_up(self, dependent: Job) -> bool:
        """Deliver to a blocked ``dependent`` every outcome it lacks of a dependency that has
        ended (or is gone), in one step, in its ``depends_on`` order. Whether it changed."""
        changes = [
            change
            for edge in dependent.depends_on
            if edge.job_id not in dependent.dependency_outcomes
            for change in self._late(dependent, edge)
        ]
        if not changes:
            return False
        conflicts, _ = self.store.apply(changes)
        return any(conflict is None for conflict in conflicts)

    def _late(self, dependent: Job, edge: Dependency) -> list[Change]:
        source = self.store.get(edge.job_id)
        if source is None:
            logger.warning(
                "job %s: dependency %s is gone: applying its rule", dependent.id, edge.job_id
            )
            return [flow_rules.missing_dependency(dependent, edge.job_id, self.options.clock())]
        mine = Dependency(dependent.id, edge.on_failure)
        if source.state is JobState.COMPLETED:
            return flow_rules.on_completed(source.id, source.result, [mine])
        if source.state in _ENDED:
            return self._consequences(source, [mine])
        return []

    def _consequences(self, source: Job, edges: Sequence[Dependency]) -> list[Change]:
        """The changes ``source``'s end makes to ``edges``' dependents and, for each one it
        cancels or fails, to that one's dependents, breadth first (a job reached twice is
        changed once: the second change's guard finds it no longer blocked)."""
        changes: list[Change] = []
        frontier: list[tuple[str, JobState, JobError | None, Sequence[Dependency]]] = [
            (source.id, source.state, source.error, edges)
        ]
        seen: set[str] = set()
        while frontier:
            job_id, state, error, dependents = frontier.pop(0)
            for edge in dependents:
                change = flow_rules.on_ended(job_id, state, error, edge)
                changes.append(change)
                if change.to in _ENDED and edge.job_id not in seen:
                    seen.add(edge.job_id)
                    dependent = self.store.get(edge.job_id)
                    if dependent is not None and dependent.dependents:
                        reason = change.set.get("error")
                        assert reason is None or isinstance(reason, JobError)
                        frontier.append((edge.job_id, change.to, reason, dependent.dependents))
        return changes
