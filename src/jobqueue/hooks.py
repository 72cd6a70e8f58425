"""pluggy hook specifications: how plugins add workers, backends and lifecycle listeners.

A plugin is any module or object with functions decorated by ``hookimpl``, registered
through the ``jobqueue`` entry-point group (or passed to ``JobQueue(plugins=[...])``)::

    # pyproject.toml of a plugin distribution
    [project.entry-points.jobqueue]
    contacts = "contacts_plugin.jobs"
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from jobqueue.aio_backend import AsyncBackend
    from jobqueue.backend import BackendFactory
    from jobqueue.engine import Engine
    from jobqueue.job import JSON, Job, JobError
    from jobqueue.schedules import Schedule
    from jobqueue.worker import Worker

PROJECT = "jobqueue"
ENTRY_POINT_GROUP = "jobqueue"

logger = logging.getLogger("jobqueue.hooks")

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Decorate plugin functions with this to implement a jobqueue hook."""


@hookspec
def jobqueue_register_workers() -> Iterable[Worker]:  # type: ignore[empty-body]
    """Return the workers this plugin provides."""


@hookspec
def jobqueue_register_schedules() -> Iterable[Schedule]:  # type: ignore[empty-body]
    """Return the periodic schedules this plugin provides (``jobqueue.Schedule``), for
    workers registered by then (a plugin's own, from ``jobqueue_register_workers``)."""


@hookspec
def jobqueue_register_backends() -> Mapping[str, BackendFactory]:  # type: ignore[empty-body]
    """Return a mapping of URL scheme (``"redis"``) to a factory ``(url, options) -> Backend``."""


@hookspec(firstresult=True)
def jobqueue_async_backend(backend: Engine) -> AsyncBackend | None:
    """Return the native asyncio twin of the queue's ``backend`` (its store is
    ``backend.store``): an object with the ``jobqueue.aio_backend.AsyncBackend`` methods,
    speaking to the same store, or ``None``
    when this plugin has none for it: ``AsyncJobQueue`` then runs the sync backend in worker
    threads. The first answer that is not ``None`` is used."""


@hookspec
def jobqueue_job_submitted(job: Job) -> None:
    """A job was stored (called in the submitting process)."""


@hookspec
def jobqueue_job_started(job: Job) -> None:
    """A dispatcher claimed the job and is about to run its handler."""


@hookspec(firstresult=True)
def jobqueue_run_job(job: Job) -> JSON:
    """Wraps each call of a job's handler, in the thread that runs it: implement it as a
    wrapper (``@hookimpl(wrapper=True)``, a generator that yields once and returns what the
    yield gave, or ``hookwrapper=True``) to time or trace a run. The yield raises the
    handler's exception, if it raised. The dispatcher supplies the one plain implementation,
    the handler itself: a plugin's plain implementation would replace the handler."""


@hookspec
def jobqueue_job_completed(job: Job) -> None:
    """The handler returned and its outcome was stored; ``job.result`` holds its return value
    and ``job.finished_at`` when it finished (this process's clock)."""


@hookspec
def jobqueue_job_failed(job: Job, error: JobError, will_retry: bool) -> None:
    """The handler raised (or timed out); ``will_retry`` tells whether another attempt follows."""


@hookspec
def jobqueue_lease_lost(job: Job) -> None:
    """This dispatcher found that it no longer holds the lease of a job it claimed (it
    expired, or an operator cancelled or removed the job): another dispatcher may run it,
    and this attempt's outcome is discarded. Fired once per lost lease, in the dispatcher
    that held it, by whichever tells first: a heartbeat whose renewal is refused, or an
    outcome (complete, fail, release, a batched finish, a cancel's finish) that is refused
    or given up once the lease ran out. ``job`` is as the dispatcher claimed it."""


@hookspec
def jobqueue_job_stalled(job: Job) -> None:
    """A job stalled: its lease expired (its dispatcher died, hung or was cut off from the
    backend) and the backend recovered it -- back to waiting with a stall counted, failed
    as stalled too often, or cancelled after a cancel request.

    Fired once per recovery, in the dispatcher whose maintenance reports it (``maintain``
    returns the jobs recovered by it and by the backend's claims since): the process that
    recovered the lease (memory, SQLite), or on Redis one live dispatcher of the namespace.
    ``job`` is as it is when reported (``job.stalls`` counts this stall). The dispatcher
    that lost the lease fires ``jobqueue_lease_lost`` instead, when it finds out."""


@hookspec
def jobqueue_job_cancelled(job: Job) -> None:
    """The job ended CANCELLED: at once when it was waiting or delayed (in the process that
    cancelled it), or once its handler stopped when it was running (in the dispatcher's)."""


def emit(hooks: pluggy.HookRelay, hook_name: str, /, **kwargs: object) -> None:
    """Call lifecycle hook ``hook_name`` (``plugins.hook``, ``"jobqueue_job_submitted"``,
    ``job=job``): the one emitter, for the facades, the scheduler and the dispatcher alike.
    A plugin's exception is logged, never fatal. Nobody listening costs nothing: pluggy's
    call machinery is skipped."""
    hook: pluggy.HookCaller = getattr(hooks, hook_name)
    if not hook.get_hookimpls():
        return
    try:
        hook(**kwargs)
    except Exception:
        logger.exception("plugin hook %s raised", hook_name)


def make_plugin_manager(
    builtins: Iterable[object] = (), *, load_entrypoints: bool = True
) -> pluggy.PluginManager:
    """A plugin manager with our hook specs, the ``builtins`` (the caller's own plugins, such
    as ``jobqueue.backends``: handed in, so this module names no part of the library) and,
    unless told not to, every plugin installed under the ``jobqueue`` entry-point group."""
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(sys.modules[__name__])
    for plugin in builtins:
        manager.register(plugin, name=getattr(plugin, "__name__", None))
    if load_entrypoints:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return manager
