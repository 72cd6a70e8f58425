"""Parsing the command line, and the worker, submit, job, jobs and stats commands.

``jobqueue COMMAND [--url URL] [--app module:attribute ...] [--json] ...``; the global options
may also come before the command. Errors jobqueue raises on purpose (``JobQueueError``) print
one ``error: ...`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

from jobqueue import __version__
from jobqueue.cli.apps import open_queue
from jobqueue.cli.control import add_control_commands
from jobqueue.cli.dashboard import add_dashboard_command
from jobqueue.cli.metrics import add_metrics_command, start_metrics
from jobqueue.cli.output import LIFECYCLE_LOGGER, format_job, print_json, table, time_text
from jobqueue.cli.schedules import add_schedule_commands
from jobqueue.errors import (
    ConfigurationError,
    DispatcherCrashedError,
    InvalidJobError,
    JobQueueError,
    NotSerializableError,
)
from jobqueue.job import MAX_JSON_DEPTH, JobState, text_nests_deeper
from jobqueue.queue import JobQueue
from jobqueue.runtime.shutdown import enable_faulthandler

logger = logging.getLogger("jobqueue.cli")


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
        queue, owned = open_queue(args)
        try:
            status = command(args, queue)
            sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
            return status
        finally:
            if owned:
                queue.close()
    except JobQueueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """The reader of our output went away (``jobqueue jobs | head -1``): stop quietly, as
    ``yes | head -1`` does, with the status of a process ended by SIGPIPE. Output still
    buffered would fail again at exit, so stdout goes to /dev/null first."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141  # 128 + SIGPIPE


DESCRIPTION = "jobqueue: run workers, submit jobs and look at them."
EPILOG = """\
Global options (--url, --app, --json) go before or after the command:
  jobqueue worker --app myapp.jobs:queue --url redis://localhost:6379/0 --burst
  jobqueue --url sqlite:///jobs.db stats --json
Exit status: 0 done, 1 no such job (job), 2 a usage, setup or input error
(one 'error: ...' line), 130 a worker stopped by Ctrl-C, 141 the output's reader
went away (a closed pipe, e.g. '| head -1'; nothing printed); a worker also exits
70 when its slots kept crashing, and N when a handler raised SystemExit(N).
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
        default="auto",
        metavar="N|auto",
        help="jobs claimed ahead per slot, outcomes recorded in batches (auto: adaptive, "
        "short jobs from a deep backlog only; 1: off)",
    )
    worker.add_argument("--names", help="comma-separated worker names (default: all)")
    worker.add_argument(
        "--no-scheduler",
        action="store_true",
        help="do not run the scheduler of the declared schedules beside the dispatcher",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="also serve Prometheus metrics on 127.0.0.1:PORT/metrics (needs jobqueue[metrics])",
    )
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
    jobs.add_argument(
        "--flow", metavar="ID", help="the jobs of this flow (its first job's id) and their edges"
    )
    jobs.set_defaults(command=cmd_jobs)

    stats = command("stats", "count jobs by state")
    stats.add_argument(
        "--by-name", action="store_true", help="count by worker name too (one row per name)"
    )
    stats.set_defaults(command=cmd_stats)
    add_control_commands(command)
    add_metrics_command(command)
    add_dashboard_command(command)
    add_schedule_commands(command)
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
    prefetch = _prefetch(args.prefetch)
    enable_faulthandler()  # a handler that segfaults leaves its traceback on stderr
    logging.getLogger("jobqueue").setLevel(args.log_level)
    if not queue.plugins.is_registered(LIFECYCLE_LOGGER):
        queue.plugins.register(LIFECYCLE_LOGGER)
    if args.metrics_port is not None:
        start_metrics(queue, "127.0.0.1", args.metrics_port)
    dispatcher = queue.dispatcher(names=names, concurrency=args.concurrency, prefetch=prefetch)
    # Handlers first, then the "worker on" line: a supervisor that waits for it may signal.
    restore = _nothing if args.burst else dispatcher.install_signal_handlers()
    # The scheduler runs beside a long-lived worker (any number may: one job per tick).
    ticking = None
    if not args.burst and not args.no_scheduler and len(queue.schedule_book):
        ticking = queue.scheduler()
    thread = ticking.start_thread() if ticking else None
    try:
        shown = ", ".join(names or registered)
        logger.info("worker on %s for %s (concurrency %d)", queue.url, shown, args.concurrency)
        dispatcher.run(burst=args.burst)
    except DispatcherCrashedError as exc:  # logged with tracebacks; one line for the operator
        print(f"error: {exc}", file=sys.stderr)
    except (SystemExit, KeyboardInterrupt):  # a handler's, or a third Ctrl-C with --burst
        pass  # exit_status below turns it into the status
    finally:
        restore()
        if ticking is not None and thread is not None:
            ticking.stop()
            thread.join()
    outcomes = dispatcher.outcomes
    finished = outcomes["completed"] + outcomes["failed"] + outcomes["cancelled"]
    logger.info(
        "processed %d job(s) in %d attempt(s): %d completed, %d failed, %d cancelled, "
        "%d to retry, %d snoozed, %d lost",
        finished,
        dispatcher.processed,
        outcomes["completed"],
        outcomes["failed"],
        outcomes["cancelled"],
        outcomes["retrying"],
        outcomes["snoozed"],
        outcomes["lost"],
    )
    if args.json:
        print_json({"jobs": finished, "attempts": dispatcher.processed, **outcomes})
    # 0 only for a requested stop: SIGTERM, --burst done, a handler's SystemExit(0).
    return dispatcher.exit_status()


def cmd_submit(args: argparse.Namespace, queue: JobQueue) -> int:
    text = sys.stdin.read() if args.data == "-" else args.data
    if text_nests_deeper(text, MAX_JSON_DEPTH):  # before json.loads recurses into it
        raise NotSerializableError(
            f"job data nests lists and objects more than {MAX_JSON_DEPTH} levels deep (or is "
            "not JSON); flatten it"
        )
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
        print_json({**job.to_dict(), "deduplicated": job.deduplicated})
    else:
        print(job.id)
    return 0


def cmd_job(args: argparse.Namespace, queue: JobQueue) -> int:
    job = queue.get_job_by_id(args.id)
    if job is None:
        if args.json:
            print_json(None)
        print(f"no job with id {args.id!r}", file=sys.stderr)
        return 1
    if args.json:
        print_json(job.to_dict())
    else:
        print(format_job(job))
    return 0


def cmd_jobs(args: argparse.Namespace, queue: JobQueue) -> int:
    if args.limit < 0 or args.offset < 0:
        raise ConfigurationError("--limit and --offset must be >= 0")
    if args.flow is not None:
        return _flow(args, queue)
    jobs = queue.list_jobs(args.state, offset=args.offset, limit=args.limit, name=args.name)
    if args.json:
        print_json([job.to_dict() for job in jobs])
        return 0
    rows = [
        [
            job.id,
            job.name,
            job.state.value,
            str(job.priority),
            f"{job.attempts_made}/{job.attempts}",
            time_text(job.created_at),
            job.title or "",
        ]
        for job in jobs
    ]
    print(table(["ID", "NAME", "STATE", "PRIORITY", "ATTEMPTS", "CREATED", "TITLE"], rows))
    if not jobs:
        which = " ".join(filter(None, [args.state, args.name and f"{args.name!r}"]))
        print(f"(no {which + ' ' if which else ''}jobs)")
    return 0


def _flow(args: argparse.Namespace, queue: JobQueue) -> int:
    """A flow's jobs, each with what it waits for: the dependencies that have not delivered
    an outcome yet (for a blocked job, the path that blocks it)."""
    jobs = queue.flow_jobs(args.flow)
    if not jobs:
        raise ConfigurationError(f"no flow with id {args.flow!r} (a flow's id is its first job's)")
    if args.json:
        print_json([job.to_dict() for job in jobs])
        return 0
    state = {job.id: job.state.value for job in jobs}
    rows = [
        [
            job.id,
            job.name,
            job.state.value,
            " ".join(f"{e.job_id}:{state.get(e.job_id, '?')}" for e in job.depends_on) or "-",
            " ".join(e.job_id for e in job.depends_on if e.job_id not in job.dependency_outcomes)
            if job.state is JobState.BLOCKED
            else "",
        ]
        for job in jobs
    ]
    print(table(["ID", "NAME", "STATE", "DEPENDS ON", "WAITS FOR"], rows))
    return 0


def cmd_stats(args: argparse.Namespace, queue: JobQueue) -> int:
    if args.by_name:
        return _stats_by_name(args, queue)
    counts = queue.count_by_state()
    by_state = {state.value: counts.get(state, 0) for state in JobState}
    by_state["total"] = sum(by_state.values())
    if args.json:
        print_json(by_state)
        return 0
    print(table(["STATE", "JOBS"], [[state, str(count)] for state, count in by_state.items()]))
    return 0


def _stats_by_name(args: argparse.Namespace, queue: JobQueue) -> int:
    by_name = {
        name: {state.value: counts.get(state, 0) for state in JobState}
        for name, counts in sorted(queue.count_by_name().items())
    }
    if args.json:
        print_json(by_name)
        return 0
    states = [state.value for state in JobState]
    rows = [
        [name, *(str(counts[state]) for state in states), str(sum(counts.values()))]
        for name, counts in by_name.items()
    ]
    print(table(["NAME", *(state.upper() for state in states), "TOTAL"], rows))
    if not rows:
        print("(no jobs)")
    return 0


def _nothing() -> None:
    pass


def _split_names(names: str | None) -> list[str] | None:
    if names is None:
        return None
    return [name.strip() for name in names.split(",") if name.strip()] or None


def _prefetch(value: str) -> int | None:
    """``--prefetch``: ``auto`` (adaptive, the API's ``None``) or a fixed depth."""
    if value.strip().lower() == "auto":
        return None
    try:
        depth = int(value)
    except ValueError:
        depth = 0
    if not 1 <= depth <= 1000:
        raise ConfigurationError(f"--prefetch must be auto or from 1 to 1000, got {value}")
    return depth
