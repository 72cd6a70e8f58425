"""The ``jobqueue`` command: run a worker, submit jobs, inspect them.

``jobqueue [--url URL] [--app module:attribute ...] [--json] COMMAND ...`` with the commands
``worker``, ``submit``, ``job``, ``jobs`` and ``stats``. Errors jobqueue raises on purpose
(``JobQueueError``) print one ``error: ...`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from jobqueue.errors import ConfigurationError, InvalidJobError, JobQueueError, UnknownWorkerError
from jobqueue.hooks import hookimpl
from jobqueue.job import Job, JobState
from jobqueue.queue import JobQueue
from jobqueue.worker import Worker

logger = logging.getLogger("jobqueue.cli")

LOG_LINES_SHOWN = 10


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already reported
        return exc.code if isinstance(exc.code, int) else 2
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jobqueue", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url",
        help="backend URL (default: the --app queue's, else $JOBQUEUE_URL, else "
        "redis://localhost:6379/0)",
    )
    parser.add_argument(
        "--app",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="a JobQueue, Worker, iterable of Workers, or a callable returning one (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    worker = sub.add_parser("worker", help="process jobs until SIGTERM/SIGINT (or --burst)")
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

    submit = sub.add_parser("submit", help="submit a job and print its id")
    submit.add_argument("name", help="worker name")
    submit.add_argument("data", metavar="JSON", help="job data as JSON ('-' reads stdin)")
    submit.add_argument("--priority", type=int, help="higher runs first (worker default)")
    submit.add_argument("--delay", type=float, help="seconds before the job may run")
    submit.add_argument("--attempts", type=int, help="most attempts (worker default)")
    submit.add_argument("--timeout", type=float, help="seconds one attempt may run")
    submit.add_argument("--unique-key", help="skip if a pending job has this key")
    submit.set_defaults(command=cmd_submit)

    job = sub.add_parser("job", help="show one job (exit status 1 if there is none)")
    job.add_argument("id", help="job id")
    job.set_defaults(command=cmd_job)

    jobs = sub.add_parser("jobs", help="list jobs in one state")
    jobs.add_argument("--state", required=True, choices=[s.value for s in JobState])
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--offset", type=int, default=0)
    jobs.set_defaults(command=cmd_jobs)

    stats = sub.add_parser("stats", help="count jobs by state")
    stats.set_defaults(command=cmd_stats)
    return parser


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
            raise UnknownWorkerError(
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
    shown = ", ".join(names or registered)
    logger.info("worker on %s for %s (concurrency %d)", queue.url, shown, args.concurrency)
    if args.burst:
        processed = queue.work(
            burst=True, concurrency=args.concurrency, prefetch=args.prefetch, names=names
        )
    else:
        processed = queue.run_worker(
            concurrency=args.concurrency, prefetch=args.prefetch, names=names
        )
    logger.info("processed %d job(s)", processed)
    if args.json:
        _print_json({"processed": processed})
    return 0


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
    if args.json:
        _print_json(job.to_dict())
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
    jobs = queue.list_jobs(args.state, offset=args.offset, limit=args.limit)
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
        print(f"(no {args.state} jobs)")
    return 0


def cmd_stats(args: argparse.Namespace, queue: JobQueue) -> int:
    counts = queue.count_by_state()
    by_name = {state.value: counts.get(state, 0) for state in JobState}
    if args.json:
        _print_json(by_name)
        return 0
    rows = [[state, str(count)] for state, count in by_name.items()]
    rows.append(["total", str(sum(by_name.values()))])
    print(_table(["STATE", "JOBS"], rows))
    return 0


# -- opening the queue and loading --app ------------------------------------------------------


def _open_queue(args: argparse.Namespace) -> tuple[JobQueue, bool]:
    """The queue the command works on, and whether the CLI opened it (and so closes it).

    That is the ``--app`` JobQueue itself unless ``--url`` says otherwise, else a new queue
    (at ``--url``, ``$JOBQUEUE_URL`` or the default) holding the workers of every ``--app``
    and of the installed plugins."""
    queues: list[JobQueue] = []
    workers: list[Worker] = []
    for spec in args.app:
        for found in _load_app(spec):
            if isinstance(found, JobQueue):
                queues.append(found)
            else:
                workers.append(found)
    owned = not (args.url is None and len(queues) == 1)
    queue = JobQueue(args.url) if owned else queues.pop()
    for other in queues:
        workers.extend(other.registry)
    for worker in workers:
        queue.add_worker(worker)
    return queue, owned


def _load_app(spec: str) -> list[JobQueue | Worker]:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(f"--app {spec!r} must look like module:attribute")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: let apps in the cwd be found
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"--app {spec!r}: cannot import {module_name!r} ({exc})") from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(
                f"--app {spec!r}: {module_name} has no {attribute!r}"
            ) from None
    if callable(target) and not isinstance(target, (JobQueue, Worker, type)):
        target = target()
    if isinstance(target, (JobQueue, Worker)):
        return [target]
    if isinstance(target, Iterable) and not isinstance(target, (str, bytes)):
        items = list(target)
        if all(isinstance(item, Worker) for item in items):
            return items
    raise ConfigurationError(
        f"--app {spec!r} is {type(target).__name__}; expected a JobQueue, a Worker, an "
        "iterable of Workers, or a callable returning one of those"
    )


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
