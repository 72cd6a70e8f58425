"""The core: every verb of a job's life, written once over any store.

``Engine`` is what the queue, the dispatcher and the dashboard call (``complete``, ``fail``,
``cancel``, ``retry``, ``maintain``…). Each verb reads what its rule needs, lets
``jobqueue.lifecycle`` decide the ``Change`` and hands it to the store's one guarded write
(``Backend.apply``); a store decides nothing. The hot path keeps its shape: a completion and
the next claim are one ``apply`` (one round trip), and a failure is decided for "no cancel
requested", so only a cancel racing it costs a second call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from jobqueue import lifecycle
from jobqueue.backend import Backend, HandoffBackend
from jobqueue.changes import Change, ClaimAsk, Conflict, Selector
from jobqueue.errors import LeaseLostError
from jobqueue.job import FINISHED_STATES, JSON, Job, JobError, JobState
from jobqueue.values import (
    Claim,
    DispatcherInfo,
    LeaseStatus,
    Outcome,
    ScheduleRecord,
    TickClaim,
    TickResult,
    WorkSpec,
)

logger = logging.getLogger("jobqueue.engine")

PAGE = 500
"""Jobs read and written per step by the bulk verbs and stall recovery."""

_CONFLICT_RETRIES = 5
"""How often a control-plane verb reads again when the job moved between its read and its
write (a race with a dispatcher): each round is a fresh decision."""

Call = Literal["complete", "fail", "release", "finish_cancelled"]


@dataclass(frozen=True, slots=True)
class _Held:
    """What the rules read of a job its caller holds: only the cancel flag is not known for
    sure, so a change is decided for a value of it and guarded by that value."""

    id: str
    cancel_requested: bool = False
    state: JobState = JobState.ACTIVE
    stalls: int = 0


class Engine:
    """The verbs of a job's life over ``store``."""

    def __init__(self, store: Backend) -> None:
        self.store = store
        self.options = store.options
        self.handoff = store if isinstance(store, HandoffBackend) else None
        self._last_ask: ClaimAsk | None = None

    def _now(self) -> float:
        return self.options.clock()

    def _next_one(self, spec: WorkSpec | None) -> ClaimAsk | None:
        """The claim a completion makes in its step (the last one made is kept: a slot asks
        with the same spec every time, and this is every job's path)."""
        if spec is None:
            return None
        ask = self._last_ask
        if ask is None or ask.spec is not spec:
            ask = self._last_ask = ClaimAsk(spec, 1, unless_conflict=True)
        return ask

    # -- submitting and claiming ----------------------------------------------------------

    def submit(self, job: Job) -> Job:
        return self.store.insert([job])[0]

    def submit_many(self, jobs: Sequence[Job]) -> list[Job]:
        return self.store.insert(jobs) if jobs else []

    def claim(self, spec: WorkSpec) -> Claim | None:
        claims = self.store.claim_many(spec, 1)
        return claims[0] if claims else None

    def claim_many(self, spec: WorkSpec, limit: int) -> list[Claim]:
        return self.store.claim_many(spec, limit) if limit > 0 else []

    def wait_for_claim(self, spec: WorkSpec, timeout: float) -> Claim | bool:
        """The store's hand-off when it has one, else a wait followed by a claim."""
        if self.handoff is not None:
            return self.handoff.wait_for_claim(spec, timeout)
        if not self.store.wait_for_work(spec.names, timeout):
            return False
        return self.claim(spec) or True

    # -- the holder of a lease ------------------------------------------------------------

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
        self, job_id: str, token: str, result: JSON, next_spec: WorkSpec | None
    ) -> Claim | None:
        """COMPLETED with ``result``, and the next claim for ``next_spec`` in the same step.
        A repeat of the completion returns ``None``; a lost lease raises ``LeaseLostError``."""
        change = lifecycle.on_complete(job_id, token, result)
        conflicts, claims = self.store.apply([change], self._next_one(next_spec))
        if conflicts[0] is not None:
            self._repeated("complete", job_id, conflicts[0], lost_ok=False)
            return None
        return claims[0] if claims else None

    def fail(self, job_id: str, token: str, error: JobError, retry_at: float | None) -> JobState:
        """The failed attempt as ``lifecycle.on_fail`` decides; returns the new state."""
        state = self._end(
            "fail",
            job_id,
            lambda held: lifecycle.on_fail(held, token, error, retry_at, self._now()),
            lost_ok=False,
        )
        assert state is not None  # a lost lease raised
        return state

    def release(self, job_id: str, token: str) -> bool:
        """Give the job back unfinished (``lifecycle.on_release``); ``False``: lease lost."""
        decide = lambda held: lifecycle.on_release(held, token, self._now())  # noqa: E731
        return self._end("release", job_id, decide, lost_ok=True) is not None

    def finish_cancelled(self, job_id: str, token: str, error: JobError | None) -> bool:
        decide = lambda held: lifecycle.on_cancelled(held, token, error, self._now())  # noqa: E731
        return self._end("finish_cancelled", job_id, decide, lost_ok=True) is not None

    def finish_many(
        self, outcomes: Sequence[Outcome], next_spec: WorkSpec | None, limit: int
    ) -> tuple[list[JobState | None], list[Claim]]:
        """Every outcome, each fenced by its own token (a lost lease yields ``None`` and does
        not stop the others), then up to ``limit`` claims: one step."""
        now = self._now()
        changes = [self._outcome_change(o, False, now) for o in outcomes]
        then = None if next_spec is None or limit <= 0 else ClaimAsk(next_spec, limit)
        conflicts, claims = self.store.apply(changes, then)
        states: list[JobState | None] = []
        for outcome, change, conflict in zip(outcomes, changes, conflicts, strict=True):
            if conflict is None:
                states.append(change.to)
            elif conflict.held and conflict.cancel_requested:  # a cancel raced the outcome
                states.append(self._apply_again(self._outcome_change(outcome, True, now)))
            else:
                call: Call = "complete" if outcome.error is None else "fail"
                states.append(self._repeated(call, outcome.job_id, conflict, lost_ok=True))
        return states, claims

    def _outcome_change(self, outcome: Outcome, cancel_requested: bool, now: float) -> Change:
        held = _Held(outcome.job_id, cancel_requested)
        if outcome.error is None:
            return lifecycle.on_complete(outcome.job_id, outcome.token, outcome.result)
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

    # -- the control plane ----------------------------------------------------------------

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
            (conflict,), _ = self.store.apply([lifecycle.on_retry(job, self._now())])
            if conflict is None:
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
        now = self._now()
        return self._each(Selector(state, name), lambda job: lifecycle.on_retry(job, now))

    def cancel_many(self, state: JobState, name: str | None = None) -> int:
        """``cancel`` every job in ``state`` (of ``name``), in the order they would have run;
        returns how many were cancelled or asked to stop."""
        if state not in (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE):
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
            for _, change in decided:
                if change is None or next(outcome) is not None:
                    offset += 1
                else:
                    written += 1
                    offset += change.to is selector.state
        return written

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

    # -- schedules ------------------------------------------------------------------------

    def claim_tick(self, claim: TickClaim) -> TickResult:
        return self.store.claim_tick(claim)

    def pause_schedule(self, name: str) -> None:
        self.store.set_paused("schedule", name, True)

    def resume_schedule(self, name: str) -> None:
        self.store.set_paused("schedule", name, False)

    def remove_schedule(self, name: str) -> bool:
        return self.store.forget("schedule", name)

    def schedule_records(self) -> list[ScheduleRecord]:
        return self.store.schedule_records()

    def schedule_record(self, name: str) -> ScheduleRecord | None:
        records = self.store.schedule_records(name)
        return records[0] if records else None

    # -- reads ----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)

    def list_jobs(self, state: JobState, offset: int = 0, limit: int = 100) -> list[Job]:
        return self.store.scan(Selector(state), offset, limit)

    def count_by_name(self) -> dict[str, dict[JobState, int]]:
        return self.store.counts()

    def count_by_state(self) -> dict[JobState, int]:
        totals = dict.fromkeys(JobState, 0)
        for by_state in self.store.counts().values():
            for state, n in by_state.items():
                totals[state] += n
        return totals

    def paused(self) -> frozenset[str]:
        return self.store.paused()

    def dispatchers(self) -> list[DispatcherInfo]:
        return self.store.dispatchers()

    def outcome_counts(self, since_minute: int) -> dict[int, dict[str, int]]:
        return self.store.outcome_counts(since_minute)

    # -- maintenance ----------------------------------------------------------------------

    def maintain(self) -> list[Job]:
        """Promote due jobs, apply retention, forget dead dispatchers (the store's
        ``housekeep``), then recover expired leases; returns the recovered jobs."""
        self.store.housekeep()
        return self.recover_expired()

    def recover_expired(self) -> list[Job]:
        """Each expired lease ended as ``lifecycle.on_stall`` decides (a stall; failed past
        ``max_stalls``; cancelled after a cancel request). Returns the recovered jobs as
        they now are, in recovery order."""
        recovered: list[Job] = []
        while expired := self.store.expired(PAGE):
            now = self._now()
            changes = [
                lifecycle.on_stall(c.job, self.options.max_stalls, now, c.token) for c in expired
            ]
            conflicts, _ = self.store.apply(changes)
            written = [c for c, conflict in zip(changes, conflicts, strict=True) if not conflict]
            for change in written:
                _log_stall(change)
                job = self.store.get(change.job_id)
                if job is not None:
                    recovered.append(job)
            if len(expired) < PAGE or not written:
                break
        return recovered

    # -- waits ----------------------------------------------------------------------------

    def wait_for_work(self, names: Iterable[str], timeout: float) -> bool:
        return self.store.wait_for_work(names, timeout)

    def wait_for_finish(self, job_id: str, timeout: float) -> Job | None:
        return self.store.wait_for_finish(job_id, timeout)

    def close(self) -> None:
        self.store.close()


class _Decide(Protocol):
    def __call__(self, held: _Held, /) -> Change: ...


class _Rule(Protocol):
    def __call__(self, job: Job, /) -> Change | None: ...


def _log_stall(change: Change) -> None:
    stalls = change.set.get("stalls")
    if change.to is JobState.WAITING:
        logger.info("job %s: lease expired, back to waiting (stall %s)", change.job_id, stalls)
    elif change.to is JobState.FAILED:
        logger.warning("job %s stalled %s times: failing it", change.job_id, stalls)
    else:
        logger.info("job %s: lease expired after a cancel request: cancelled", change.job_id)
