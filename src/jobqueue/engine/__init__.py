"""The core: every verb of a job's life, written once over any store.

``Engine`` is what the queue, the dispatcher and the dashboard call (``complete``, ``fail``,
``cancel``, ``retry``, ``maintain``…). Each verb reads what its rule needs, lets
``jobqueue.lifecycle`` decide the ``Change`` and hands it to the store's one guarded write
(``Backend.apply``); a store decides nothing. The hot path keeps its shape: a completion and
the next claim are one ``apply`` (one round trip), and a failure is decided for "no cancel
requested", so only a cancel racing it costs a second call.

The verbs are in parts, one idea each: ``holding`` (the holder of a lease: renewals, the
calls that end an attempt), ``steering`` (the control plane), ``recovery`` (maintenance);
submitting, claiming, schedules, reads and waits pass through here, and so do the
transactions shared with the application (``jobqueue.transactions``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from jobqueue import lifecycle
from jobqueue.backend import Backend, HandoffBackend
from jobqueue.changes import ClaimAsk, Conflict, Selector
from jobqueue.engine.flows import Flows
from jobqueue.engine.holding import Holding
from jobqueue.engine.recovery import Recovery
from jobqueue.engine.steering import PAGE, Steering
from jobqueue.errors import LeaseLostError
from jobqueue.job import JSON, Job, JobState
from jobqueue.transactions import TransactionalStore, transactional
from jobqueue.values import (
    Claim,
    DispatcherInfo,
    ScheduleRecord,
    TickClaim,
    TickResult,
    WorkSpec,
    totals_by_state,
)

__all__ = ["PAGE", "Engine"]


class Engine(Holding, Steering, Recovery, Flows):
    """The verbs of a job's life over ``store``."""

    def __init__(self, store: Backend) -> None:
        self.store = store
        self.options = store.options
        self.handoff = store if isinstance(store, HandoffBackend) else None
        self._last_ask: ClaimAsk | None = None
        self._last_batch_ask: ClaimAsk | None = None
        self._sweep_offset = 0

    # -- submitting and claiming ----------------------------------------------------------

    def submit(self, job: Job) -> Job:
        return self.store.insert([job])[0]

    def submit_many(self, jobs: Sequence[Job]) -> list[Job]:
        return self.store.insert(jobs) if jobs else []

    def submit_in(self, connection: object, jobs: Sequence[Job]) -> list[Job]:
        """Store ``jobs`` inside the caller's open transaction on ``connection``
        (``jobqueue.transactions``); ``TransactionsUnsupportedError`` where there is none."""
        return self.transactional().insert_in(connection, jobs) if jobs else []

    async def submit_in_async(self, connection: object, jobs: Sequence[Job]) -> list[Job]:
        store = self.transactional()
        return await store.insert_in_async(connection, jobs) if jobs else []

    def complete_in_transaction(
        self, job_id: str, token: str, result: JSON
    ) -> AbstractContextManager[Any]:
        """A transaction on the store's database for the handler's own writes; at its end
        the job is COMPLETED with ``result`` in the same transaction, fenced like
        ``complete``: a lost lease rolls everything back and raises ``LeaseLostError``."""
        change = lifecycle.on_complete(job_id, token, result)

        def check(answers: Sequence[Conflict | None]) -> None:
            if answers[0] is not None:  # not even a repeat: this token completes once
                raise LeaseLostError(lifecycle.lease_lost_message(job_id))

        return self.transactional().completing([change], check)

    def transactional(self) -> TransactionalStore:
        name = type(self.store).__name__.removesuffix("Backend").lower() or "this"
        return transactional(self.store, name)

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
        return totals_by_state(self.store.counts())

    def paused(self) -> frozenset[str]:
        return self.store.paused()

    def dispatchers(self) -> list[DispatcherInfo]:
        return self.store.dispatchers()

    def outcome_counts(self, since_minute: int) -> dict[int, dict[str, int]]:
        return self.store.outcome_counts(since_minute)

    # -- waits ----------------------------------------------------------------------------

    def wait_for_work(self, names: Iterable[str], timeout: float) -> bool:
        return self.store.wait_for_work(names, timeout)

    def wait_for_finish(self, job_id: str, timeout: float) -> Job | None:
        return self.store.wait_for_finish(job_id, timeout)

    def close(self) -> None:
        self.store.close()
