"""QueueClient: the queue as a client uses it — register workers, submit jobs, look them up,
steer them, declare schedules. ``JobQueue`` adds what works them (dispatchers, the scheduler)
and the asyncio face; ``AsyncJobQueue`` builds on this class alone."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pluggy
from typing_extensions import Self

from jobqueue import backends, lifecycle
from jobqueue.arguments import check_count, check_id, check_name, check_seconds, check_state
from jobqueue.backend import (
    Backend,
    BackendFactory,
    BackendOptions,
    Clock,
    DispatcherInfo,
    Retention,
    ThroughputBucket,
)
from jobqueue.engine import Engine
from jobqueue.errors import (
    InvalidArgumentError,
    InvalidSettingError,
    InvalidURLError,
    InvalidWorkerError,
    JobNotFoundError,
    ScheduleNotFoundError,
    UnknownBackendError,
)
from jobqueue.flows import Flow
from jobqueue.hooks import emit, make_plugin_manager
from jobqueue.job import JSON, Job, JobState
from jobqueue.limits import MAX_GRACE_SECONDS, MAX_LEASE_SECONDS, validate_seconds
from jobqueue.registry import Registry
from jobqueue.scheduler import DeclaredSchedules, ScheduleInfo, describe, periodic_decorator
from jobqueue.schedules import Schedule
from jobqueue.submission import DEFAULT_MAX_DATA_BYTES, build_job, submit_options
from jobqueue.worker import Worker

logger = logging.getLogger("jobqueue")

DEFAULT_URL = "redis://localhost:6379/0"
LATENCY_SAMPLE = 100
"""``queue_latency`` looks at this many of a name's next jobs to run..."""
LATENCY_SCAN = 2000
"""...among this many waiting jobs, at most, in run order."""
_LATENCY_BATCH = 500

# throughput(): minutes per bucket, default number of buckets, most buckets (what is kept).
_PERIODS = {"minute": (1, 60, 24 * 60), "hour": (60, 24, 24)}
_OUTCOME_NAMES = tuple(outcome.value for outcome in lifecycle.COUNTED_OUTCOMES)
F = TypeVar("F", bound=Callable[..., object])


class QueueClient:
    """One queue as a client sees it: a backend chosen by URL, the registered workers and the
    declared schedules; submit, read, wait for and steer jobs. ``JobQueue`` is this plus the
    dispatchers and the scheduler that work the jobs.

    ``JobQueue("memory://")``, ``JobQueue("sqlite:///jobs.db")``, ``JobQueue("redis://…")``;
    ``JobQueue()`` reads ``JOBQUEUE_URL`` and falls back to ``redis://localhost:6379/0``.
    ``namespace`` (Redis) defaults to ``$JOBQUEUE_NAMESPACE``, else ``jobqueue``. A malformed URL
    or a setting out of range raises a ``ConfigurationError`` here, before any job is sent.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        lease_seconds: float = 30.0,
        grace_seconds: float = 30.0,
        max_stalls: int = 3,
        retention: Retention | None = None,
        namespace: str | None = None,
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
        clock: Clock = time.time,
        plugins: Iterable[object] = (),
        load_entrypoints: bool = True,
        backend: Backend | Engine | None = None,
        replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> None:
        lease_seconds = validate_seconds("lease_seconds", lease_seconds, MAX_LEASE_SECONDS)
        grace_seconds = validate_seconds("grace_seconds", grace_seconds, MAX_GRACE_SECONDS)
        replica_timeout = validate_seconds("replica_timeout", replica_timeout, 3600)
        checked = ("max_stalls", max_stalls), ("max_data_bytes", max_data_bytes)
        for label, value in (*checked, ("replicas", replicas)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidSettingError(f"{label} must be an int >= 0, got {value!r}")
        if url is not None and not isinstance(url, str):
            raise InvalidSettingError(f"the backend URL must be a str, got {url!r}")
        self.url = url or os.environ.get("JOBQUEUE_URL") or DEFAULT_URL
        self.lease_seconds = float(lease_seconds)
        self.grace_seconds = float(grace_seconds)
        self.max_data_bytes = max_data_bytes
        self.clock = clock
        self.plugins: pluggy.PluginManager = make_plugin_manager(
            [backends], load_entrypoints=load_entrypoints
        )
        for plugin in plugins:
            self.plugins.register(plugin)
        self.registry = Registry()
        for batch in self.plugins.hook.jobqueue_register_workers():
            for worker in batch or ():
                self.registry.add(worker)
        self.schedule_book = DeclaredSchedules(self.registry)
        for schedules in self.plugins.hook.jobqueue_register_schedules():
            for schedule in schedules or ():
                self.schedule_book.add(schedule)
        self._backend_options = BackendOptions(
            clock=clock,
            retention=retention or Retention(),
            max_stalls=max_stalls,
            namespace=namespace,
            replicas=replicas,
            replica_timeout=float(replica_timeout),
        )
        # The verbs of the queue's jobs over its store (``self.backend.store``).
        self.backend: Engine = (
            self._open_backend(self.url, self._backend_options)
            if backend is None
            else backend
            if isinstance(backend, Engine)
            else Engine(backend)
        )

    def connect(self, url: str) -> Self:
        """Point this queue at the backend of ``url`` instead, keeping every setting, worker
        and plugin (the CLI's ``--url`` does this to an ``--app`` queue). Returns the queue."""
        backend = self._open_backend(url, self._backend_options)  # a bad URL changes nothing
        self.backend.close()
        self.url, self.backend = url, backend
        return self

    def _open_backend(self, url: str, options: BackendOptions) -> Engine:
        try:
            scheme = urlsplit(url).scheme
        except ValueError as exc:
            raise InvalidURLError(f"bad backend URL ({exc}); check its host part") from None
        factories: dict[str, BackendFactory] = {}
        for mapping in self.plugins.hook.jobqueue_register_backends():
            factories.update(mapping or {})
        factory = factories.get(scheme)
        if factory is None:
            known = ", ".join(f"{s}://" for s in sorted(factories))
            raise UnknownBackendError(
                f"no backend for URL scheme {scheme!r} in {url!r}; known: {known}. "
                "Install the plugin that provides it or fix the URL"
            )
        return Engine(factory(url, options))

    # -- workers ------------------------------------------------------------------------------

    def add_worker(self, worker: Worker | str, handler: Any = None, **options: Any) -> Worker:
        """Register a handler under a name: ``add_worker("name", handler, attempts=3)`` or
        ``add_worker(Worker(...))``. ``handler`` is an object with ``handle(job)`` (and
        optionally ``get_title(data)``) or a plain callable, sync or ``async``."""
        if isinstance(worker, Worker):
            if handler is not None or options:
                raise InvalidWorkerError("pass either a Worker or a name and a handler, not both")
            return self.registry.add(worker)
        known = [f for f in Worker.__dataclass_fields__ if f not in ("name", "handler")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise InvalidWorkerError(
                f"unknown worker option(s) {', '.join(unknown)} for {worker!r}; "
                f"known: {', '.join(known)}"
            )
        return self.registry.add(Worker(worker, handler, **options))

    def worker(self, name: str, **options: object) -> Callable[[F], F]:
        """Decorator form of ``add_worker``."""

        def register(handler: F) -> F:
            self.add_worker(name, handler, **options)
            return handler

        return register

    @property
    def workers(self) -> dict[str, Worker]:
        return {worker.name: worker for worker in self.registry}

    # -- submitting and reading ---------------------------------------------------------------

    def submit_job(
        self,
        name: str,
        data: JSON = None,
        *,
        priority: int | None = None,
        delay: float | timedelta | None = None,
        run_at: datetime | float | None = None,
        attempts: int | None = None,
        backoff: object = None,
        timeout: float | None = None,
        unique_key: str | None = None,
        connection: object = None,
        **unknown: object,
    ) -> Job:
        """Store a job for worker ``name`` and return it (its ``id`` assigned). Bad input
        raises an ``InvalidJobError`` subclass and stores nothing.

        With ``unique_key``, while a waiting, delayed or active job holds that key nothing new
        is stored: that job is returned, with ``job.deduplicated`` set.

        With ``connection`` (PostgreSQL: a psycopg 3 connection or a SQLAlchemy
        Connection/Session; SQLite: an ``sqlite3.Connection`` on the queue's file), the job is
        stored inside that connection's open transaction: it exists if and only if the
        transaction commits, and no dispatcher sees it before. Other backends raise
        ``TransactionsUnsupportedError``: submit after your commit there."""
        options = dict(
            priority=priority,
            delay=delay,
            run_at=run_at,
            attempts=attempts,
            backoff=backoff,
            timeout=timeout,
            unique_key=unique_key,
            **unknown,
        )
        (job,) = self.new_jobs(name, [data], options)
        if connection is not None:
            (stored,) = self.backend.submit_in(connection, [job])
        else:
            stored = self.backend.submit(job)
        emit(self.plugins.hook, "jobqueue_job_submitted", job=stored)
        return stored

    def submit_jobs(
        self, name: str, datas: Iterable[JSON], *, connection: object = None, **options: object
    ) -> list[Job]:
        """Submit many jobs for one worker in as few backend round trips as possible.
        Every item is validated first; if any is refused, none is stored. ``connection``:
        inside that connection's open transaction, as ``submit_job``."""
        jobs = self.new_jobs(name, datas, options)
        if connection is not None:
            stored = self.backend.submit_in(connection, jobs)
        else:
            stored = self.backend.submit_many(jobs) if jobs else []
        for job in stored:
            emit(self.plugins.hook, "jobqueue_job_submitted", job=job)
        return stored

    def submit_flow(self, flow: Flow, *, connection: object = None) -> list[Job]:
        """Store every job of ``flow`` in one atomic step and return them in the order they
        were added (``jobqueue.flows``): a job with dependencies is BLOCKED until they
        complete. Bad input stores nothing. ``connection``: as ``submit_job``."""
        jobs = flow.jobs(self.new_jobs)
        if connection is not None:
            stored = self.backend.submit_in(connection, jobs)
        else:
            stored = self.backend.submit_flow(jobs)
        for job in stored:
            emit(self.plugins.hook, "jobqueue_job_submitted", job=job)
        return stored

    def new_jobs(self, name: str, datas: Iterable[JSON], options: dict[str, object]) -> list[Job]:
        """Unsaved jobs for worker ``name``, every item and option checked (what both
        facades submit); unknown option names are refused naming the known ones."""
        worker = self.registry.get(name)
        chosen = submit_options(options)
        now = self.clock()
        return [
            build_job(worker, data, chosen, now=now, max_data_bytes=self.max_data_bytes)
            for data in datas
        ]

    def get_job_by_id(self, job_id: str) -> Job | None:
        """The job as stored now, or ``None`` if there is none with that id."""
        return self.backend.get(check_id(job_id))

    def wait_for(self, job_id: str, timeout: float = 60.0) -> Job | None:
        """Block until the job completes or fails and return it as it then is; ``None`` if
        ``timeout`` seconds pass first. Raises ``JobNotFoundError`` if there is no job with
        that id (or it is removed while waited for)."""
        job_id = check_id(job_id)
        if self.backend.get(job_id) is None:
            raise JobNotFoundError(f"no job with id {job_id!r}: nothing to wait for")
        finished = self.backend.wait_for_finish(job_id, timeout)
        if finished is None and self.backend.get(job_id) is None:
            raise JobNotFoundError(f"job {job_id!r} was removed while waited for")
        return finished

    def list_jobs(
        self,
        state: JobState | str | None = None,
        offset: int = 0,
        limit: int = 100,
        *,
        name: str | None = None,
    ) -> list[Job]:
        """Jobs in ``state`` (waiting and delayed in the order they will run, active by lease
        deadline, finished ones newest first) — or, without ``state``, the most recently
        touched jobs of every state. ``name`` keeps only that worker's jobs."""
        check_count("offset", offset)
        check_count("limit", limit)
        if name is not None and not isinstance(name, str):
            raise InvalidArgumentError(f"name must be a worker name (str), got {name!r}")
        if state is not None:
            return self._list_matching(check_state(state), name, offset, limit)
        everything = [
            job for each in JobState for job in self._list_matching(each, name, 0, offset + limit)
        ]
        everything.sort(key=_last_touched, reverse=True)
        return everything[offset : offset + limit]

    def flow_jobs(self, flow_id: str) -> list[Job]:
        """The jobs of a flow (``submit_flow``; ``flow_id`` is its first job's id), in the
        order submitted; empty when there is no such flow."""
        return self.backend.flow(check_id(flow_id))

    def cancel_flow(self, flow_id: str) -> int:
        """Cancel every job of a flow not finished yet; returns how many."""
        return self.backend.cancel_flow(check_id(flow_id))

    def retry_flow(self, flow_id: str) -> int:
        """Retry a flow's failed and cancelled jobs (their cancelled dependents come back
        blocked); returns how many were retried."""
        return self.backend.retry_flow(check_id(flow_id))

    def _list_matching(
        self, state: JobState, name: str | None, offset: int, limit: int
    ) -> list[Job]:
        if name is None:
            return self.backend.list_jobs(state, offset, limit)
        matching: list[Job] = []
        page, start = max(limit + offset, 200), 0
        while len(matching) < offset + limit:  # the backends list by state only: filter here
            batch = self.backend.list_jobs(state, start, page)
            matching.extend(job for job in batch if job.name == name)
            if len(batch) < page:
                break
            start += page
        return matching[offset : offset + limit]

    def count_by_state(self) -> dict[JobState, int]:
        """How many jobs are in each state (every state present, zero included)."""
        return self.backend.count_by_state()

    def count_by_name(self) -> dict[str, dict[JobState, int]]:
        """For every worker name that has jobs, how many are in each state (every state
        present, zero included); see ``Reads.count_by_name``."""
        return self.backend.count_by_name()

    def queue_latency(self) -> dict[str, float]:
        """For every worker name with waiting jobs, how many seconds the oldest due one has
        waited (queue latency). Looks at each name's next ``LATENCY_SAMPLE`` jobs to run,
        found among the first ``LATENCY_SCAN`` waiting jobs in run order, so the cost stays
        bounded however many jobs wait; a name with none in that window is left out."""
        now = self.clock()
        oldest: dict[str, float] = {}
        seen: dict[str, int] = {}
        for start in range(0, LATENCY_SCAN, _LATENCY_BATCH):
            batch = self.backend.list_jobs(JobState.WAITING, start, _LATENCY_BATCH)
            for job in batch:
                if job.unreadable:  # its times are unknown; the next claim fails it
                    continue
                if seen.get(job.name, 0) < LATENCY_SAMPLE:
                    seen[job.name] = seen.get(job.name, 0) + 1
                    oldest[job.name] = min(oldest.get(job.name, job.run_at), job.run_at)
            if len(batch) < _LATENCY_BATCH:
                break
        return {name: max(now - due, 0.0) for name, due in sorted(oldest.items())}

    def throughput(self, period: str = "minute", span: int | None = None) -> list[ThroughputBucket]:
        """Finished attempts over time, for charts: per minute over the last hour
        (``period="minute"``, 60 buckets) or per hour over the last day (``period="hour"``,
        24 buckets), oldest first, the current (partial) minute or hour last, zeros included.
        ``span`` asks for another number of buckets: up to 1440 minutes or 24 hours. Each
        bucket counts the attempts that ended in it by outcome -- completed, failed (for
        good), retried, cancelled; see ``Reads.outcome_counts`` -- as the backend counted
        them in the transitions themselves: no job is read. Bad arguments raise
        ``InvalidArgumentError``."""
        if not isinstance(period, str) or period not in _PERIODS:
            raise InvalidArgumentError(f"period must be 'minute' or 'hour', not {period!r}")
        minutes, default, most = _PERIODS[period]
        if span is None:
            span = default
        if isinstance(span, bool) or not isinstance(span, int) or not 1 <= span <= most:
            raise InvalidArgumentError(
                f"span must be a whole number of {period}s from 1 to {most}, not {span!r}"
            )
        last = lifecycle.outcome_minute(self.clock()) // minutes  # the current bucket
        first = last - span + 1
        totals = [dict.fromkeys(_OUTCOME_NAMES, 0) for _ in range(span)]
        for minute, counts in self.backend.outcome_counts(first * minutes).items():
            index = minute // minutes - first
            if 0 <= index < span:  # a minute past the end: the backend's clock is ahead
                for outcome, n in counts.items():
                    if outcome in totals[index]:
                        totals[index][outcome] += n
        return [
            ThroughputBucket((first + i) * minutes * 60, minutes * 60, **counts)
            for i, counts in enumerate(totals)
        ]

    def remove_job(self, job_id: str) -> bool:
        """Delete the job whatever its state; ``False`` if there was none."""
        return self.backend.remove(check_id(job_id))

    # -- steering -----------------------------------------------------------------------------

    def cancel_job(self, job_id: str) -> JobState:
        """Cancel a job and return its state after the call. Waiting or delayed: CANCELLED at
        once. Active: the dispatcher holding it is told within about a second, interrupts the
        handler, and the job ends CANCELLED (not retried); if the handler finishes first its
        result is kept and the job stays COMPLETED. Finished: nothing changes. Raises
        ``JobNotFoundError`` if there is no such job."""
        job_id = check_id(job_id)
        state = self.backend.cancel(job_id)
        if state is None:
            raise JobNotFoundError(f"no job with id {job_id!r}: nothing to cancel")
        if state is JobState.CANCELLED:
            cancelled = self.backend.get(job_id)
            if cancelled is not None:
                emit(self.plugins.hook, "jobqueue_job_cancelled", job=cancelled)
        return state

    def cancel_jobs(self, state: JobState | str = JobState.WAITING, name: str | None = None) -> int:
        """Cancel every waiting job (or every ``state="delayed"``, ``"blocked"`` or
        ``"active"`` one), of worker ``name`` only when given, and return how many. Waiting,
        delayed and blocked jobs end CANCELLED at once (a flow's dependents follow their
        rules), their unique keys freed, as ``cancel_job`` leaves them; active ones
        are asked to stop, as ``cancel_job`` asks one (a job asked before is not counted
        again). Other states raise ``InvalidArgumentError``. Unlike ``cancel_job``, this does
        not fire the ``jobqueue_job_cancelled`` hook: that would read back every job it
        cancelled. Backends may work through a large set in batches, each one atomic."""
        chosen = check_state(state)
        if chosen not in lifecycle.NOT_STARTED and chosen is not JobState.ACTIVE:
            raise InvalidArgumentError(
                f"only waiting, delayed, blocked or active jobs are cancelled, not {chosen}"
            )
        return self.backend.cancel_many(chosen, check_name(name))

    def run_job_now(self, job_id: str) -> Job:
        """Run a delayed job now instead of at its due time: it joins the waiting line at
        once (behind the jobs already waiting at its priority, ``run_at`` now) and idle
        dispatchers wake as for a submit. Returns the job as it now is. Raises
        ``JobNotFoundError``, or ``JobStateError`` for a job that is not delayed."""
        job_id = check_id(job_id)
        job = self.backend.promote(job_id)
        if job is None:
            raise JobNotFoundError(f"no job with id {job_id!r}: nothing to run")
        return job

    def retry_job(self, job_id: str) -> Job:
        """Run a failed or cancelled job again from its first attempt; its earlier attempts
        stay in ``job.history``. Raises ``JobNotFoundError``, or ``JobStateError`` for a job
        in another state."""
        job_id = check_id(job_id)
        job = self.backend.retry(job_id)
        if job is None:
            raise JobNotFoundError(f"no job with id {job_id!r}: nothing to retry")
        return job

    def retry_jobs(self, state: JobState | str = JobState.FAILED, name: str | None = None) -> int:
        """Retry every failed (or ``state="cancelled"``) job, of worker ``name`` only when
        given. Returns how many were retried."""
        chosen = check_state(state)
        if chosen not in (JobState.FAILED, JobState.CANCELLED):
            raise InvalidArgumentError(f"only failed or cancelled jobs are retried, not {chosen}")
        return self.backend.retry_many(chosen, check_name(name))

    def purge_jobs(
        self,
        state: JobState | str,
        *,
        name: str | None = None,
        older_than: float | timedelta | None = None,
    ) -> int:
        """Delete finished jobs in ``state`` (completed, failed or cancelled) — of worker
        ``name``, and finished more than ``older_than`` (seconds or a timedelta) ago, when
        given. Returns how many were deleted."""
        chosen = check_state(state)
        if not chosen.is_finished:
            raise InvalidArgumentError(
                f"only finished jobs (completed, failed, cancelled) are purged, not {chosen}"
            )
        before = None
        if older_than is not None:
            before = self.clock() - check_seconds("older_than", older_than)
        return self.backend.purge(chosen, check_name(name), before)

    def pause(self, name: str) -> None:
        """Stop every dispatcher, in every process, from claiming jobs of worker ``name``
        until ``resume``; running jobs finish, waiting ones wait, submits still work."""
        self.backend.pause(check_name(name) or "")

    def resume(self, name: str) -> None:
        """Let dispatchers claim jobs of worker ``name`` again (idle ones wake at once)."""
        self.backend.resume(check_name(name) or "")

    def paused(self) -> frozenset[str]:
        """The worker names paused now."""
        return self.backend.paused()

    def dispatchers(self) -> list[DispatcherInfo]:
        """The live dispatchers of every process on this backend: id, host, pid, worker
        names, concurrency, when started, last heartbeat, the jobs each holds."""
        return self.backend.dispatchers()

    # -- schedules ------------------------------------------------------------------------------

    def add_schedule(self, schedule: Schedule) -> Schedule:
        """Declare a periodic schedule (``jobqueue.Schedule``) for a registered worker.
        Raises ``InvalidScheduleError`` for an unknown worker, or another schedule of that
        name with a different definition; nothing is stored until a scheduler runs."""
        return self.schedule_book.add(schedule)

    def periodic(
        self, cron: str | None = None, *, every: timedelta | None = None, **fields: object
    ) -> Callable[[F], F]:
        """Decorator placed above ``@queue.worker("name")``: schedules that worker,
        ``@queue.periodic("0 3 * * *", tz="Europe/Paris")`` or ``@queue.periodic(
        every=timedelta(minutes=5))``. Other keywords are ``Schedule`` fields (``name``
        defaults to the worker's name)."""
        return periodic_decorator(self.registry, self.add_schedule, cron, every, fields)

    def schedules(self) -> list[ScheduleInfo]:
        """Every declared schedule, and every one the backend holds records of: next and
        last run, last job and its state, missed and skipped ticks, paused."""
        return describe(self.backend, self.schedule_book, self.clock())

    def pause_schedule(self, name: str) -> None:
        """Submit no job for schedule ``name``'s ticks, in every process, until resumed.
        Raises ``ScheduleNotFoundError`` for a name neither declared here nor recorded."""
        self.backend.pause_schedule(self._known_schedule(name))

    def resume_schedule(self, name: str) -> None:
        """Undo ``pause_schedule``: from its next tick on (paused ticks are not caught up)."""
        self.backend.resume_schedule(self._known_schedule(name))

    def run_schedule_now(self, name: str) -> Job:
        """Submit one job of schedule ``name`` now, outside its ticks (it must be declared
        in this process: its worker and data are)."""
        schedule = self.schedule_book.get(check_name(name) or "")
        if schedule is None:
            raise ScheduleNotFoundError(f"no schedule named {name!r} is declared in this process")
        (job,) = self.submit_jobs(schedule.worker, [schedule.data], **schedule.options)
        return job

    def _known_schedule(self, name: str) -> str:
        checked = check_name(name) or ""
        if self.schedule_book.get(checked) is None and not self.backend.schedule_record(checked):
            raise ScheduleNotFoundError(
                f"no schedule named {name!r}: none is declared in this process or recorded "
                "by the backend"
            )
        return checked

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _last_touched(job: Job) -> float:
    return job.finished_at or job.started_at or job.created_at
