"""The Engine's verbs for the holder of a lease: renew, heartbeat, progress and logs, and
the calls that end an attempt (complete, fail, release, finish_cancelled, a batch of
outcomes), each the rule's change written by one ``apply``, the next claims in the same step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from jobqueue import flow_rules, lifecycle
from jobqueue.backend import Backend, BackendOptions
from jobqueue.changes import Change, ClaimAsk, Conflict
from jobqueue.dependency import Dependency
from jobqueue.engine.flows import Flows
from jobqueue.errors import LeaseLostError
from jobqueue.job import JSON, JobError, JobState
from jobqueue.values import Claim, DispatcherInfo, LeaseStatus, Outcome, WorkSpec

Call = Literal["complete", "fail", "release", "snooze", "finish_cancelled"]

FLOW_ENDS = frozenset({JobState.FAILED, JobState.CANCELLED})
"""The states in which a flow's job ends its dependents' wait by their failure rules."""


@dataclass(frozen=True, slots=True)
class _Held:
    """What the rules read of a job its caller holds: only the cancel flag is not known for
    sure, so a change is decided for a value of it and guarded by that value."""

    id: str
    cancel_requested: bool = False
    state: JobState = JobState.ACTIVE
    stalls: int = 0


class _Decide(Protocol):
    def __call__(self, held: _Held, /) -> Change: ...


class Holding(Flows):
    """The lease holder's verbs (a part of ``Engine``)."""

    store: Backend
    options: BackendOptions
    _last_ask: ClaimAsk | None
    _last_batch_ask: ClaimAsk | None

    def _now(self) -> float:
        return self.options.clock()

    def renew(self, job_id: str, token: str, lease_seconds: float) -> bool:
        status = self.store.heartbeat(None, [(job_id, token)], lease_seconds)
        return status[0] is not LeaseStatus.LOST

    def heartbeat(
        self, dispatcher: DispatcherInfo, leases: Sequence[tuple[str, str]], lease_seconds: float
    ) -> list[LeaseStatus]:
        return self.store.heartbeat(dispatcher, leases, lease_seconds)

    def set_progress(self, job_id: str, token: str, progress: float, message: str | None) -> bool:
        return self.store.annotate(job_id, token, progress=(progress, message))

    def add_log(self, job_id: str, token: str, message: str) -> bool:
        return self.store.annotate(job_id, token, log=message)

    def complete(
        self,
        job_id: str,
        token: str,
        result: JSON,
        next_spec: WorkSpec | None,
        dependents: Sequence[Dependency] = (),
    ) -> Claim | None:
        """COMPLETED with ``result``, and the next claim for ``next_spec`` in the same step.
        A repeat of the completion returns ``None``; a lost lease raises ``LeaseLostError``.
        A flow's job delivers ``result`` to its ``dependents`` in that step too."""
        change = lifecycle.on_complete(job_id, token, result)
        if dependents:
            changes = [change, *flow_rules.on_completed(job_id, result, dependents)]
            conflicts, claims = self.store.apply(changes, self._next_one(next_spec))
        else:
            conflicts, claims = self.store.apply([change], self._next_one(next_spec))
        if conflicts[0] is not None:
            self._repeated("complete", job_id, conflicts[0], lost_ok=False)
            return None
        return claims[0] if claims else None

    def fail(
        self,
        job_id: str,
        token: str,
        error: JobError,
        retry_at: float | None,
        dependents: Sequence[Dependency] = (),
    ) -> JobState:
        """The failed attempt as ``lifecycle.on_fail`` decides; returns the new state. A
        flow's job that ended then applies its ``dependents``' rules."""
        state = self._end(
            "fail",
            job_id,
            lambda held: lifecycle.on_fail(held, token, error, retry_at, self._now()),
            lost_ok=False,
        )
        assert state is not None  # a lost lease raised
        if dependents and state in FLOW_ENDS:
            self.ended(job_id, dependents)
        return state

    def release(self, job_id: str, token: str) -> bool:
        """Give the job back unfinished (``lifecycle.on_release``); ``False``: lease lost."""
        decide = lambda held: lifecycle.on_release(held, token, self._now())  # noqa: E731
        state = self._end("release", job_id, decide, lost_ok=True)
        if state is JobState.CANCELLED:  # a cancel came first: a flow's dependents follow
            self.ended(job_id)
        return state is not None

    def snooze(self, job_id: str, token: str, delay: float) -> JobState | None:
        """Put the job back to run in ``delay`` seconds, this attempt not counted
        (``lifecycle.on_snooze``); returns the new state, ``None``: lease lost."""
        decide = lambda held: lifecycle.on_snooze(held, token, delay)  # noqa: E731
        state = self._end("snooze", job_id, decide, lost_ok=True)
        if state is JobState.CANCELLED:  # a cancel came first: a flow's dependents follow
            self.ended(job_id)
        return state

    def finish_cancelled(
        self,
        job_id: str,
        token: str,
        error: JobError | None,
        dependents: Sequence[Dependency] = (),
    ) -> bool:
        decide = lambda held: lifecycle.on_cancelled(held, token, error, self._now())  # noqa: E731
        state = self._end("finish_cancelled", job_id, decide, lost_ok=True)
        if dependents and state in FLOW_ENDS:
            self.ended(job_id, dependents)
        return state is not None

    def finish_many(
        self, outcomes: Sequence[Outcome], next_spec: WorkSpec | None, limit: int
    ) -> tuple[list[JobState | None], list[Claim]]:
        """Every outcome, each fenced by its own token (a lost lease yields ``None`` and does
        not stop the others), then up to ``limit`` claims: one step."""
        now = self._now()
        changes = [self._outcome_change(o, False, now) for o in outcomes]
        then = None if next_spec is None or limit <= 0 else self._next(next_spec, limit)
        flow = any(o.dependents for o in outcomes)
        writes = changes
        if flow:  # a flow's completions deliver their results in the same step
            writes = changes + [
                delivery
                for o in outcomes
                if o.dependents and o.error is None
                for delivery in flow_rules.on_completed(o.job_id, o.result, o.dependents)
            ]
        conflicts, claims = self.store.apply(writes, then)
        if flow:
            conflicts = conflicts[: len(changes)]  # a delivery's conflict is no outcome's
        states: list[JobState | None] = []
        for outcome, change, conflict in zip(outcomes, changes, conflicts, strict=True):
            if conflict is None:
                states.append(change.to)
            elif conflict.held and conflict.cancel_requested:  # a cancel raced the outcome
                states.append(self._apply_again(self._outcome_change(outcome, True, now)))
            else:
                call: Call = "complete" if outcome.error is None else "fail"
                states.append(self._repeated(call, outcome.job_id, conflict, lost_ok=True))
        if flow:
            for outcome, state in zip(outcomes, states, strict=True):
                if outcome.dependents and outcome.error is not None and state in FLOW_ENDS:
                    self.ended(outcome.job_id, outcome.dependents)
        return states, claims

    def _outcome_change(self, outcome: Outcome, cancel_requested: bool, now: float) -> Change:
        if outcome.error is None:
            return lifecycle.on_complete(outcome.job_id, outcome.token, outcome.result)
        held = _Held(outcome.job_id, cancel_requested)
        return lifecycle.on_fail(held, outcome.token, outcome.error, outcome.retry_at, now)

    def _apply_again(self, change: Change) -> JobState | None:
        (conflict,), _ = self.store.apply([change])
        return change.to if conflict is None else None

    def _end(
        self,
        call: Call,
        job_id: str,
        decide: _Decide,
        *,
        lost_ok: bool,
    ) -> JobState | None:
        """End a lease with ``call``'s change, decided for "no cancel requested" and decided
        again when a cancel came first. Returns the new state, or what a repeat reports."""
        change = decide(_Held(job_id))
        (conflict,), _ = self.store.apply([change])
        if conflict is not None and conflict.held and conflict.cancel_requested:
            change = decide(_Held(job_id, cancel_requested=True))
            (conflict,), _ = self.store.apply([change])
        if conflict is None:
            return change.to
        return self._repeated(call, job_id, conflict, lost_ok=lost_ok)

    def _repeated(
        self, call: Call, job_id: str, conflict: Conflict, *, lost_ok: bool
    ) -> JobState | None:
        """The state a repeat of ``call`` reports, or ``None`` (or ``LeaseLostError``
        unless ``lost_ok``) when the lease is lost."""
        state = lifecycle.repeat_or_lost(call, conflict.ended_by == call, conflict.state)
        if state is None and not lost_ok:
            raise LeaseLostError(lifecycle.lease_lost_message(job_id))
        return state

    def _next_one(self, spec: WorkSpec | None) -> ClaimAsk | None:
        """The claim a completion makes in its step (the last one made is kept: a slot asks
        with the same spec every time, and this is every job's path)."""
        if spec is None:
            return None
        ask = self._last_ask
        if ask is None or ask.spec is not spec:
            ask = self._last_ask = ClaimAsk(spec, 1, unless_conflict=True)
        return ask

    def _next(self, spec: WorkSpec, limit: int) -> ClaimAsk:
        """The claims a batch of outcomes makes in its step (the last ask kept, as above)."""
        ask = self._last_batch_ask
        if ask is None or ask.spec is not spec or ask.limit != limit:
            ask = self._last_batch_ask = ClaimAsk(spec, limit)
        return ask
