"""The scheduler: turns periodic schedules into jobs, one per tick, however many run.

Every scheduler process computes the same ticks (``jobqueue.schedules``: cron in a time zone,
or intervals anchored on the UNIX epoch) and asks the backend to claim each one. The claim
is a single atomic step in the backend (``Transitions.claim_tick``): it succeeds only for a
tick newer than the newest one claimed so far for that schedule — a high-water mark — and in
the same step decides the overlap rule and submits the job. So two schedulers racing for a
tick submit one job, a scheduler that lags or restarts cannot run a tick again, and no
leader election is needed. What happens to ticks missed while no scheduler ran is the
schedule's ``catch_up`` rule, applied by ``schedules.plan`` from the high-water mark.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

import pluggy

from jobqueue.backend import ScheduleRecord, TickClaim, TickOutcome, TickResult
from jobqueue.engine import Engine
from jobqueue.errors import BackendError, InvalidScheduleError, JobQueueError
from jobqueue.hooks import emit
from jobqueue.job import JSON, Job, JobState
from jobqueue.registry import Registry
from jobqueue.schedules import Schedule, plan

logger = logging.getLogger("jobqueue.scheduler")

F = TypeVar("F", bound=Callable[..., object])

MAX_IDLE = 1.0
"""A scheduler looks again at least this often (seconds), whatever its next tick: a schedule
resumed elsewhere, or a clock jump, is noticed within that time."""

ERROR_BACKOFF = 1.0
"""After a backend error, wait this long before the next pass."""


class Submitter(Protocol):
    """What a scheduler needs of its queue (a ``JobQueue`` is one): where to claim ticks,
    how to build a tick's job as a submit would, whom to tell, and the time."""

    backend: Engine
    plugins: pluggy.PluginManager

    def clock(self) -> float: ...

    def new_jobs(
        self, name: str, datas: Iterable[JSON], options: dict[str, object]
    ) -> list[Job]: ...


class DeclaredSchedules:
    """The schedules declared in one process, checked as they are added."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._schedules: dict[str, Schedule] = {}
        self._lock = threading.Lock()

    def add(self, schedule: Schedule) -> Schedule:
        if not isinstance(schedule, Schedule):
            raise InvalidScheduleError(f"add_schedule takes a Schedule, got {schedule!r}")
        if schedule.worker not in self._registry:
            known = ", ".join(sorted(worker.name for worker in self._registry)) or "none"
            raise InvalidScheduleError(
                f"schedule {schedule.name!r} is for worker {schedule.worker!r}, which is not "
                f"registered (registered: {known}); add the worker first"
            )
        with self._lock:
            existing = self._schedules.get(schedule.name)
            if existing is not None and existing.definition() != schedule.definition():
                raise InvalidScheduleError(
                    f"two schedules are named {schedule.name!r} with different definitions "
                    f"({existing.definition()} and {schedule.definition()}); give each its own "
                    "name"
                )
            self._schedules[schedule.name] = schedule
        return schedule

    def get(self, name: str) -> Schedule | None:
        return self._schedules.get(name)

    def __iter__(self) -> Iterator[Schedule]:
        return iter(sorted(self._schedules.values(), key=lambda schedule: schedule.name))

    def __len__(self) -> int:
        return len(self._schedules)


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A schedule as ``JobQueue.schedules`` shows it: its declaration and what the backend
    recorded of it."""

    name: str
    worker: str | None
    """``None`` for a schedule the backend knows of that this process does not declare."""
    definition: str
    next_run: float | None
    last_tick: float | None
    last_job_id: str | None
    last_job_state: JobState | None
    missed: int
    skipped: int
    paused: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "worker": self.worker,
            "definition": self.definition,
            "next_run": self.next_run,
            "last_tick": self.last_tick,
            "last_job_id": self.last_job_id,
            "last_job_state": self.last_job_state.value if self.last_job_state else None,
            "missed": self.missed,
            "skipped": self.skipped,
            "paused": self.paused,
        }


def describe(backend: Engine, book: DeclaredSchedules, now: float) -> list[ScheduleInfo]:
    """Every declared schedule, and every one the backend has records of, by name."""
    records = {record.name: record for record in backend.schedule_records()}
    infos = []
    for name in sorted(set(records) | {schedule.name for schedule in book}):
        schedule, record = book.get(name), records.get(name)
        last_tick = record.last_tick if record else None
        last_job = None
        if record is not None and record.last_job_id is not None:
            last_job = backend.get(record.last_job_id)
        next_run = None
        if schedule is not None:
            next_run = schedule.next_tick(max(now, last_tick or now))
        infos.append(
            ScheduleInfo(
                name=name,
                worker=schedule.worker if schedule else None,
                definition=schedule.definition()
                if schedule
                else record.definition
                if record
                else "",
                next_run=next_run,
                last_tick=last_tick,
                last_job_id=record.last_job_id if record else None,
                last_job_state=last_job.state if last_job else None,
                missed=record.missed if record else 0,
                skipped=record.skipped if record else 0,
                paused=record.paused if record else False,
            )
        )
    return infos


def periodic_decorator(
    registry: Registry,
    add_schedule: Callable[[Schedule], Schedule],
    cron: str | None,
    every: object,
    fields: dict[str, object],
) -> Callable[[F], F]:
    """``JobQueue.periodic``: schedule the worker whose handler the decorated function is
    (so it goes above ``@queue.worker``, which registers it first)."""

    def register(handler: F) -> F:
        workers = [worker for worker in registry if worker.handler is handler]
        if len(workers) != 1:
            where = "no worker" if not workers else f"{len(workers)} workers"
            raise InvalidScheduleError(
                f"@queue.periodic found {where} with handler {handler!r}: place it above "
                "@queue.worker(...), or use queue.add_schedule(Schedule(worker=...))"
            )
        worker = workers[0]
        fields.setdefault("name", worker.name)
        add_schedule(Schedule(worker=worker.name, cron=cron, every=every, **fields))  # type: ignore[arg-type]
        return handler

    return register


class Scheduler:
    """Submits the jobs of ``queue``'s declared schedules as their ticks come.

    ``run_pending(now)`` does one pass (tests drive it with their own clock); ``run()``
    loops until ``stop()``, waking at the next tick. Backend trouble is logged and retried:
    a scheduler never dies of it.
    """

    def __init__(
        self,
        queue: Submitter,
        book: DeclaredSchedules,
        *,
        clock: Callable[[], float] | None = None,
        on_submitted: Callable[[TickResult], None] | None = None,
    ) -> None:
        self.queue = queue
        self.book = book
        self.clock = clock or queue.clock
        self.on_submitted = on_submitted
        self._stopping = threading.Event()

    def run_pending(self, now: float | None = None) -> list[TickResult]:
        """Claim what is due now for every schedule; returns the claims' results."""
        now = self.clock() if now is None else now
        results: list[TickResult] = []
        for schedule in self.book:
            results.extend(self._run_schedule(schedule, now))
        return results

    def _run_schedule(self, schedule: Schedule, now: float) -> list[TickResult]:
        backend = self.queue.backend
        record: ScheduleRecord | None = backend.schedule_record(schedule.name)
        todo = plan(schedule, record.last_tick if record else None, now)
        definition = schedule.definition()
        if todo.baseline is not None:  # first sight: from now on, not from before it existed
            return [backend.claim_tick(TickClaim(schedule.name, definition, todo.baseline, None))]
        results: list[TickResult] = []
        for planned in todo.claims():
            job = None
            if planned.submit:
                (job,) = self.queue.new_jobs(
                    schedule.worker, [schedule.data], dict(schedule.options)
                )
            claim = TickClaim(
                schedule.name,
                definition,
                planned.tick,
                job,
                missed=planned.missed,
                overlap=schedule.overlap,
            )
            result = backend.claim_tick(claim)
            results.append(result)
            if result.outcome is TickOutcome.ALREADY_CLAIMED:
                # Another scheduler got there first (and counted the missed ticks with its
                # claim); it claims the rest too, in order.
                break
            if result.outcome is TickOutcome.SUBMITTED and result.job is not None:
                emit(self.queue.plugins.hook, "jobqueue_job_submitted", job=result.job)
                logger.info(
                    "schedule %s: tick %s submitted job %s",
                    schedule.name,
                    time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(planned.tick)),
                    result.job.id,
                )
                if self.on_submitted is not None:
                    self.on_submitted(result)
        return results

    def seconds_to_next(self, now: float) -> float:
        """How long until the next tick of any schedule (at most ``MAX_IDLE``)."""
        soonest = min((schedule.next_tick(now) for schedule in self.book), default=now + MAX_IDLE)
        return max(min(soonest - now, MAX_IDLE), 0.0)

    def run(self) -> None:
        """Run passes until ``stop()``: at every tick, and at least every ``MAX_IDLE``."""
        if not len(self.book):
            logger.info("no schedules declared: the scheduler has nothing to do")
        logger.info("scheduler started: %d schedule(s)", len(self.book))
        while not self._stopping.is_set():
            try:
                self.run_pending()
                wait = self.seconds_to_next(self.clock())
            except (BackendError, JobQueueError) as exc:
                logger.warning("scheduler pass failed, retrying in %.0fs: %s", ERROR_BACKOFF, exc)
                wait = ERROR_BACKOFF
            except Exception:  # never die of a surprise either: log it and go on
                logger.exception("scheduler pass failed unexpectedly")
                wait = ERROR_BACKOFF
            self._stopping.wait(wait)
        logger.info("scheduler stopped")

    def stop(self) -> None:
        """Stop ``run`` after its current pass. Safe from any thread (not from a signal
        handler: see ``jobqueue.cli`` for how the command does it)."""
        self._stopping.set()

    def start_thread(self) -> threading.Thread:
        """Run in a daemon thread (beside a dispatcher); ``stop()`` then join it."""
        thread = threading.Thread(target=self.run, name="jobqueue-scheduler", daemon=True)
        thread.start()
        return thread
