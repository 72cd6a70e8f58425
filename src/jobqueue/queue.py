"""JobQueue: the facade applications use — register workers, submit jobs, look them up, work."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import pluggy

from jobqueue.backend import Backend, BackendOptions, Clock, Retention
from jobqueue.dispatcher import Dispatcher
from jobqueue.errors import InvalidOptionError, InvalidWorkerError, UnknownBackendError
from jobqueue.hooks import make_plugin_manager
from jobqueue.job import JSON, Job, JobState
from jobqueue.registry import Registry
from jobqueue.submission import DEFAULT_MAX_DATA_BYTES, SubmitOptions, build_job
from jobqueue.worker import Worker

if TYPE_CHECKING:
    from jobqueue.aio import AsyncJobQueue

logger = logging.getLogger("jobqueue")

DEFAULT_URL = "redis://localhost:6379/0"
F = TypeVar("F", bound=Callable[..., Any])


class JobQueue:
    """One queue: a backend chosen by URL, the registered workers, and dispatchers.

    ``JobQueue("memory://")``, ``JobQueue("sqlite:///jobs.db")``, ``JobQueue("redis://…")``;
    ``JobQueue()`` reads ``JOBQUEUE_URL`` and falls back to ``redis://localhost:6379/0``.
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
        backend: Backend | None = None,
    ) -> None:
        for label, value in (("lease_seconds", lease_seconds), ("grace_seconds", grace_seconds)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InvalidOptionError(f"{label} must be a positive number, got {value!r}")
        self.url = url or os.environ.get("JOBQUEUE_URL") or DEFAULT_URL
        self.lease_seconds = float(lease_seconds)
        self.grace_seconds = float(grace_seconds)
        self.max_data_bytes = max_data_bytes
        self.clock = clock
        self.plugins: pluggy.PluginManager = make_plugin_manager(load_entrypoints=load_entrypoints)
        for plugin in plugins:
            self.plugins.register(plugin)
        self.registry = Registry()
        for batch in self.plugins.hook.jobqueue_register_workers():
            for worker in batch or ():
                self.registry.add(worker)
        options = BackendOptions(
            clock=clock,
            retention=retention or Retention(),
            max_stalls=max_stalls,
            namespace=namespace,
        )
        self.backend: Backend = backend or self._open_backend(self.url, options)

    def _open_backend(self, url: str, options: BackendOptions) -> Backend:
        scheme = urlsplit(url).scheme
        factories: dict[str, Callable[[str, BackendOptions], Backend]] = {}
        for mapping in self.plugins.hook.jobqueue_register_backends():
            factories.update(mapping or {})
        factory = factories.get(scheme)
        if factory is None:
            known = ", ".join(f"{s}://" for s in sorted(factories))
            raise UnknownBackendError(
                f"no backend for URL scheme {scheme!r} in {url!r}; known: {known}. "
                "Install the plugin that provides it or fix the URL"
            )
        return factory(url, options)

    # -- workers ------------------------------------------------------------------------------

    def add_worker(self, worker: Worker | str, handler: Any = None, **options: Any) -> Worker:
        """Register a handler under a name: ``add_worker("name", handler, attempts=3)`` or
        ``add_worker(Worker(...))``. ``handler`` is an object with ``handle(job)`` (and
        optionally ``get_title(data)``) or a plain callable, sync or ``async``."""
        if isinstance(worker, Worker):
            if handler is not None or options:
                raise InvalidWorkerError("pass either a Worker or a name and a handler, not both")
            return self.registry.add(worker)
        if options.pop("exclusive", False):
            options.setdefault("max_active", 1)
        try:
            return self.registry.add(Worker(worker, handler, **options))
        except TypeError as exc:
            raise InvalidWorkerError(f"bad worker options for {worker!r}: {exc}") from None

    def worker(self, name: str, **options: Any) -> Callable[[F], F]:
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
    ) -> Job:
        """Store a job for worker ``name`` and return it (its ``id`` assigned). Bad input
        raises a ``InvalidJobError`` subclass and stores nothing."""
        options = SubmitOptions(priority, delay, run_at, attempts, backoff, timeout, unique_key)
        job = build_job(
            self.registry.get(name),
            data,
            options,
            now=self.clock(),
            max_data_bytes=self.max_data_bytes,
        )
        stored = self.backend.submit(job)
        self._emit_submitted(stored)
        return stored

    def submit_jobs(self, name: str, datas: Iterable[JSON], **options: Any) -> list[Job]:
        """Submit many jobs for one worker in as few backend round trips as possible.
        Every item is validated first; if any is refused, none is stored."""
        worker = self.registry.get(name)
        submit_options = SubmitOptions(**options)
        now = self.clock()
        jobs = [
            build_job(worker, data, submit_options, now=now, max_data_bytes=self.max_data_bytes)
            for data in datas
        ]
        stored = self.backend.submit_many(jobs) if jobs else []
        for job in stored:
            self._emit_submitted(job)
        return stored

    def _emit_submitted(self, job: Job) -> None:
        try:
            self.plugins.hook.jobqueue_job_submitted(job=job)
        except Exception:
            logger.exception("plugin hook jobqueue_job_submitted raised")

    def get_job_by_id(self, job_id: str) -> Job | None:
        """The job as stored now, or ``None`` if there is none with that id."""
        return self.backend.get(_check_id(job_id))

    def wait_for(self, job_id: str, timeout: float = 60.0) -> Job | None:
        """Block until the job completes or fails and return it; ``None`` on timeout."""
        return self.backend.wait_for_finish(_check_id(job_id), timeout)

    def list_jobs(self, state: JobState | str, offset: int = 0, limit: int = 100) -> list[Job]:
        return self.backend.list_jobs(_check_state(state), offset, limit)

    def count_by_state(self) -> dict[JobState, int]:
        return self.backend.count_by_state()

    def remove_job(self, job_id: str) -> bool:
        return self.backend.remove(_check_id(job_id))

    @functools.cached_property
    def aio(self) -> AsyncJobQueue:
        """This queue to ``await`` from asyncio code (see ``jobqueue.aio``); one per queue.
        Close it with ``await queue.aio.close()`` before the loop ends; it leaves this
        queue open."""
        from jobqueue.aio import AsyncJobQueue  # aio builds on this module

        return AsyncJobQueue(queue=self)

    # -- working ------------------------------------------------------------------------------

    def dispatcher(
        self,
        *,
        names: Sequence[str] | None = None,
        concurrency: int = 1,
        prefetch: int = 1,
        idle_timeout: float = 1.0,
    ) -> Dispatcher:
        """A dispatcher for this queue's workers (all of them, or ``names``). ``prefetch=N``
        claims up to N jobs ahead and records outcomes in batches — still one job running at
        a time per slot — for throughput when the backlog is deep."""
        return Dispatcher(
            self.backend,
            self.registry,
            self.plugins.hook,
            names=names,
            concurrency=concurrency,
            prefetch=prefetch,
            lease_seconds=self.lease_seconds,
            grace_seconds=self.grace_seconds,
            idle_timeout=idle_timeout,
            clock=self.clock,
        )

    def work(
        self,
        *,
        burst: bool = True,
        max_jobs: int | None = None,
        concurrency: int = 1,
        prefetch: int = 1,
        names: Sequence[str] | None = None,
    ) -> int:
        """Run a dispatcher in this thread. With ``burst`` (the default) return once nothing
        is ready; returns how many jobs were processed."""
        dispatcher = self.dispatcher(names=names, concurrency=concurrency, prefetch=prefetch)
        return dispatcher.run(burst=burst, max_jobs=max_jobs)

    def run_worker(
        self, *, concurrency: int = 1, prefetch: int = 1, names: Sequence[str] | None = None
    ) -> int:
        """Run a long-lived dispatcher until SIGTERM/SIGINT (graceful, see ``grace_seconds``)."""
        dispatcher = self.dispatcher(names=names, concurrency=concurrency, prefetch=prefetch)
        restore = dispatcher.install_signal_handlers()
        try:
            return dispatcher.run()
        finally:
            restore()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _check_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not job_id:
        raise InvalidOptionError(f"a job id is a non-empty str, got {job_id!r}")
    return job_id


def _check_state(state: object) -> JobState:
    try:
        return JobState(state)
    except ValueError:
        states = ", ".join(s.value for s in JobState)
        raise InvalidOptionError(f"unknown job state {state!r}; use one of {states}") from None
