"""The ``jobqueue`` command: run a worker, submit jobs, inspect them.

``jobqueue COMMAND [--url URL] [--app module:attribute ...] [--json] ...`` with the commands
``worker``, ``submit``, ``job``, ``jobs`` and ``stats``; the global options may also come
before the command. Errors jobqueue raises on purpose (``JobQueueError``) print one
``error: ...`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

from jobqueue import __version__
from jobqueue.errors import ConfigurationError, InvalidJobError, JobQueueError
from jobqueue.hooks import hookimpl
from jobqueue.job import Job, JobState
from jobqueue.queue import JobQueue
from jobqueue.worker import Worker

logger = logging.getLogger("jobqueue.cli")

LOG_LINES_SHOWN = 10


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse already reported
        return exc.code if isinstance(exc.code, int) else 2
    except JobQueueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(args, "log_level", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    command: Callable[[argparse.Namespace, JobQueue], int] = args.command
    try:
        queue, owned = _open_queue(args)
        try:
            return command(args, queue)
        finally:
            if owned:
                queue.close()
    except JobQueueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


DESCRIPTION = "jobqueue: run workers, submit jobs and look at them."
EPILOG = """\
Global options (--url, --app, --json) go before or after the command:
  jobqueue worker --app myapp.jobs:queue --url redis://localhost:6379/0 --burst
  jobqueue --url sqlite:///jobs.db stats --json
Exit status: 0 done, 1 no such job (job), 2 a usage, setup or input error
(one 'error: ...' line), 130 a worker stopped by Ctrl-C.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobqueue",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jobqueue {__version__}")
    _add_global_options(parser, "")
    # The same options after the command land in their own fields, merged in main().
    after = argparse.ArgumentParser(add_help=False)
    _add_global_options(after, "sub_")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[after])

    worker = command(
        "worker", "process jobs until SIGTERM/SIGINT (or, with --burst, none is ready)"
    )
    worker.add_argument("--burst", action="store_true", help="return once no job is ready")
    worker.add_argument("--concurrency", type=int, default=1, help="jobs run at once (1)")
    worker.add_argument(
        "--prefetch",
        type=int,
        default=1,
        help="jobs claimed ahead per slot, outcomes recorded in batches (1: off)",
    )
    worker.add_argument("--names", help="comma-separated worker names (default: all)")
    worker.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )
    worker.set_defaults(command=cmd_worker)

    submit = command("submit", "submit a job and print its id")
    submit.add_argument("name", help="worker name")
    submit.add_argument("data", metavar="JSON", help="job data as JSON ('-' reads stdin)")
    submit.add_argument("--priority", type=int, help="higher runs first (worker default)")
    submit.add_argument("--delay", type=float, help="seconds before the job may run")
    submit.add_argument("--attempts", type=int, help="most attempts (worker default)")
    submit.add_argument("--timeout", type=float, help="seconds one attempt may run")
    submit.add_argument(
        "--unique-key", help="if a pending job has this key, return it instead of a new one"
    )
    submit.set_defaults(command=cmd_submit)

    job = command("job", "show one job (exit status 1 if there is none)")
    job.add_argument("id", help="job id")
    job.set_defaults(command=cmd_job)

    jobs = command("jobs", "list jobs: the most recent of every state, or one state")
    jobs.add_argument("--state", choices=[s.value for s in JobState], help="only this state")
    jobs.add_argument("--name", help="only jobs of this worker name")
    jobs.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    jobs.add_argument("--offset", type=int, default=0, help="skip this many first (0)")
    jobs.set_defaults(command=cmd_jobs)

    stats = command("stats", "count jobs by state")
    stats.set_defaults(command=cmd_stats)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse a command line, the global options merged from before and after the command."""
    return _merge_global_options(build_parser().parse_args(argv))


def _add_global_options(parser: argparse.ArgumentParser, prefix: str) -> None:
    parser.add_argument(
        "--url",
        dest=f"{prefix}url",
        help="backend URL (default: the --app queue's, else $JOBQUEUE_URL, else "
        "redis://localhost:6379/0)",
    )
    parser.add_argument(
        "--app",
        dest=f"{prefix}app",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="a JobQueue, a Worker, a list of Workers, or a function with no arguments "
        "returning one (repeatable)",
    )
    parser.add_argument(
        "--json", dest=f"{prefix}json", action="store_true", help="machine-readable JSON output"
    )


def _merge_global_options(args: argparse.Namespace) -> argparse.Namespace:
    if args.url and args.sub_url and args.url != args.sub_url:
        raise ConfigurationError(
            f"--url is given twice ({args.url} and {args.sub_url}); give one backend URL"
        )
    args.url = args.url or args.sub_url
    args.app = [*args.app, *args.sub_app]
    args.json = args.json or args.sub_json
    return args


# -- commands ---------------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace, queue: JobQueue) -> int:
    names = _split_names(args.names)
    registered = queue.registry.names()
    if not registered:
        raise ConfigurationError(
            "no workers are registered; pass --app module:attribute or install a plugin "
            "that provides some"
        )
    for name in names or ():
        if name not in queue.registry:
            raise ConfigurationError(
                f"no worker is registered under {name!r} (registered: "
                f"{', '.join(sorted(registered))}); fix --names or load it with --app"
            )
    if args.concurrency < 1:
        raise ConfigurationError(f"--concurrency must be >= 1, got {args.concurrency}")
    if not 1 <= args.prefetch <= 1000:
        raise ConfigurationError(f"--prefetch must be from 1 to 1000, got {args.prefetch}")
    logging.getLogger("jobqueue").setLevel(args.log_level)
    if not queue.plugins.is_registered(_LIFECYCLE_LOGGER):
        queue.plugins.register(_LIFECYCLE_LOGGER)
    dispatcher = queue.dispatcher(names=names, concurrency=args.concurrency, prefetch=args.prefetch)
    # Handlers first, then the "worker on" line: a supervisor that waits for it may signal.
    restore = _nothing if args.burst else dispatcher.install_signal_handlers()
    try:
        shown = ", ".join(names or registered)
        logger.info("worker on %s for %s (concurrency %d)", queue.url, shown, args.concurrency)
        dispatcher.run(burst=args.burst)
    finally:
        restore()
    outcomes = dispatcher.outcomes
    finished = outcomes["completed"] + outcomes["failed"]
    logger.info(
        "processed %d job(s) in %d attempt(s): %d completed, %d failed, %d to retry, %d lost",
        finished,
        dispatcher.processed,
        outcomes["completed"],
        outcomes["failed"],
        outcomes["retrying"],
        outcomes["lost"],
    )
    if args.json:
        _print_json({"jobs": finished, "attempts": dispatcher.processed, **outcomes})
    # Ctrl-C ends a command with 130 by convention; SIGTERM is the planned stop: 0.
    return 130 if dispatcher.stop_signal == signal.SIGINT else 0


def cmd_submit(args: argparse.Namespace, queue: JobQueue) -> int:
    text = sys.stdin.read() if args.data == "-" else args.data
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidJobError(
            f"job data is not valid JSON ({exc}); quote it for the shell, e.g. '{{\"user\": 1}}'"
        ) from None
    job = queue.submit_job(
        args.name,
        data,
        priority=args.priority,
        delay=args.delay,
        attempts=args.attempts,
        timeout=args.timeout,
        unique_key=args.unique_key,
    )
    if job.deduplicated:
        print(
            f"note: job {job.id} ({job.state.value}) already holds unique key "
            f"{args.unique_key!r}; it was returned and nothing new was stored",
            file=sys.stderr,
        )
    if args.json:
        _print_json({**job.to_dict(), "deduplicated": job.deduplicated})
    else:
        print(job.id)
    return 0


def cmd_job(args: argparse.Namespace, queue: JobQueue) -> int:
    job = queue.get_job_by_id(args.id)
    if job is None:
        if args.json:
            _print_json(None)
        print(f"no job with id {args.id!r}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(job.to_dict())
    else:
        print(format_job(job))
    return 0


def cmd_jobs(args: argparse.Namespace, queue: JobQueue) -> int:
    if args.limit < 0 or args.offset < 0:
        raise ConfigurationError("--limit and --offset must be >= 0")
    jobs = queue.list_jobs(args.state, offset=args.offset, limit=args.limit, name=args.name)
    if args.json:
        _print_json([job.to_dict() for job in jobs])
        return 0
    rows = [
        [
            job.id,
            job.name,
            job.state.value,
            str(job.priority),
            f"{job.attempts_made}/{job.attempts}",
            _time(job.created_at),
            job.title or "",
        ]
        for job in jobs
    ]
    print(_table(["ID", "NAME", "STATE", "PRIORITY", "ATTEMPTS", "CREATED", "TITLE"], rows))
    if not jobs:
        which = " ".join(filter(None, [args.state, args.name and f"{args.name!r}"]))
        print(f"(no {which + ' ' if which else ''}jobs)")
    return 0


def cmd_stats(args: argparse.Namespace, queue: JobQueue) -> int:
    counts = queue.count_by_state()
    by_state = {state.value: counts.get(state, 0) for state in JobState}
    by_state["total"] = sum(by_state.values())
    if args.json:
        _print_json(by_state)
        return 0
    print(_table(["STATE", "JOBS"], [[state, str(count)] for state, count in by_state.items()]))
    return 0


# -- opening the queue and loading --app ------------------------------------------------------


def _open_queue(args: argparse.Namespace) -> tuple[JobQueue, bool]:
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
    target: Any = module
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


def _call_factory(spec: str, factory: Callable[..., Any], module: ModuleType) -> Any:
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


def _nothing() -> None:
    pass


def _split_names(names: str | None) -> list[str] | None:
    if names is None:
        return None
    return [name.strip() for name in names.split(",") if name.strip()] or None


class _LifecycleLogger:
    """Logs each job's start and completion at INFO (the dispatcher logs failures)."""

    @hookimpl
    def jobqueue_job_started(self, job: Job) -> None:
        logger.info("started %s %s (attempt %d)", job.name, job.id, job.attempts_made)

    @hookimpl
    def jobqueue_job_completed(self, job: Job) -> None:
        logger.info("completed %s %s", job.name, job.id)


_LIFECYCLE_LOGGER = _LifecycleLogger()


# -- output -----------------------------------------------------------------------------------


def format_job(job: Job) -> str:
    """A job's details as a person reads them."""
    lines = [
        ("id", job.id),
        ("name", job.name),
        ("title", job.title or "-"),
        ("state", job.state.value),
        ("priority", str(job.priority)),
        ("attempts", f"{job.attempts_made} of {job.attempts} (stalls: {job.stalls})"),
        (
            "progress",
            f"{job.progress:g}%" + (f" {job.progress_message}" if job.progress_message else ""),
        ),
        ("created", _time(job.created_at)),
        ("runs at", _time(job.run_at)),
        ("started", _time(job.started_at)),
        ("finished", _time(job.finished_at)),
        ("data", json.dumps(job.data, ensure_ascii=False)),
        ("result", json.dumps(job.result, ensure_ascii=False)),
        ("error", str(job.error) if job.error else "-"),
    ]
    text = "\n".join(f"{label + ':':<10} {value}" for label, value in lines)
    if job.error and job.error.traceback:
        text += "\ntraceback:\n" + _indent(job.error.traceback.rstrip())
    if job.logs:
        shown = job.logs[-LOG_LINES_SHOWN:]
        text += f"\nlogs (last {len(shown)} of {len(job.logs)}):\n"
        text += "\n".join(f"  {_time(entry.at)}  {entry.message}" for entry in shown)
    return text


def _time(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))
