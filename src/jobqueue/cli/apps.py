"""Loading ``--app module:attribute`` and opening the queue a command works on."""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from types import ModuleType

from jobqueue.errors import ConfigurationError, JobQueueError
from jobqueue.queue import JobQueue
from jobqueue.worker import Worker


def open_queue(args: argparse.Namespace) -> tuple[JobQueue, bool]:
    """The queue the command works on, and whether the CLI opened it (and so closes it).

    With an ``--app`` JobQueue that is the app's own queue — its settings, plugins and
    workers — pointed at ``--url`` when one is given. Workers of further ``--app`` specs join
    it. Without one, a new queue (at ``--url``, ``$JOBQUEUE_URL`` or the default) holds the
    ``--app`` workers and those of the installed plugins."""
    queues: list[tuple[str, JobQueue]] = []
    workers: list[Worker] = []
    for spec in args.app:
        for found in _load_app(spec):
            if isinstance(found, JobQueue):
                queues.append((spec, found))
            else:
                workers.append(found)
    if not queues:
        queue = JobQueue(args.url)
        for worker in workers:
            queue.add_worker(worker)
        return queue, True
    (first_spec, queue), others = queues[0], queues[1:]
    for spec, other in others:
        if args.url is None and other.url != queue.url:
            raise ConfigurationError(
                f"--app {first_spec} uses {queue.url} but --app {spec} uses {other.url}; "
                "pass --url to say which backend to work on"
            )
    if args.url is not None and args.url != queue.url:
        queue.connect(args.url)
    for _, other in others:
        workers.extend(other.registry)
    for worker in workers:
        queue.add_worker(worker)
    return queue, False


def _load_app(spec: str) -> list[JobQueue | Worker]:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(f"--app {spec!r} must look like module:attribute")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: let apps in the cwd be found
    module = _import(spec, module_name)
    target: object = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(
                f"--app {spec!r}: {module_name} has no {attribute!r}{_queue_hint(module)}"
            ) from None
    if callable(target) and not isinstance(target, (JobQueue, Worker)):
        target = _call_factory(spec, target, module)
    if isinstance(target, (JobQueue, Worker)):
        return [target]
    if isinstance(target, Iterable) and not isinstance(target, (str, bytes)):
        items = list(target)
        if items and all(isinstance(item, Worker) for item in items):
            return items
    raise ConfigurationError(
        f"--app {spec!r} is a {type(target).__name__}; expected a JobQueue, a Worker, a list "
        f"of Workers, or a function with no arguments returning one{_queue_hint(module)}"
    )


def _import(spec: str, module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ConfigurationError(
                f"--app {spec!r}: no module named {module_name!r} (run from the directory "
                "that holds it, or install its package)"
            ) from None
        raise ConfigurationError(f"--app {spec!r}: importing {module_name} failed: {exc}") from None
    except (Exception, SystemExit) as exc:  # the app's own code failed while importing
        raise ConfigurationError(
            f"--app {spec!r}: importing {module_name} raised {type(exc).__name__}: {exc}"
        ) from None


def _call_factory(spec: str, factory: Callable[[], object], module: ModuleType) -> object:
    """Call an ``--app`` function that builds the queue, if it needs no arguments."""
    try:
        signature = inspect.signature(factory)
        signature.bind()
    except ValueError:  # no signature to read (a builtin): let the call decide
        pass
    except TypeError:
        needed = [
            name
            for name, parameter in signature.parameters.items()
            if parameter.default is parameter.empty
            and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        ]
        looks_like_handler = needed == ["job"] or len(needed) == 1
        hint = (
            " It looks like a job handler: point --app at the JobQueue it is registered on"
            if looks_like_handler
            else ""
        )
        raise ConfigurationError(
            f"--app {spec!r} is a function that needs argument(s) {', '.join(needed)}; --app "
            f"calls only functions with no arguments.{hint}{_queue_hint(module)}"
        ) from None
    try:
        return factory()
    except JobQueueError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"--app {spec!r}: calling it raised {type(exc).__name__}: {exc}"
        ) from None


def _queue_hint(module: ModuleType) -> str:
    """Suggest the module's JobQueue attributes, if it has any."""
    found = [name for name, value in vars(module).items() if isinstance(value, JobQueue)]
    if not found:
        return ""
    return " (did you mean " + " or ".join(f"--app {module.__name__}:{n}" for n in found) + "?)"
