"""The control-plane commands: cancel, retry, purge, pause, resume and workers."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from jobqueue.cli.output import print_json, table, time_text
from jobqueue.errors import ConfigurationError
from jobqueue.job import FINISHED_STATES, JobState
from jobqueue.queue import JobQueue

AddCommand = Callable[[str, str], argparse.ArgumentParser]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def add_control_commands(command: AddCommand) -> None:
    cancel = command("cancel", "cancel a job: at once if it waits, within a second if it runs")
    cancel.add_argument("id", help="job id")
    cancel.set_defaults(command=cmd_cancel)

    retry = command("retry", "run a failed or cancelled job again (or all of them)")
    retry.add_argument("id", nargs="?", help="job id (or --failed / --cancelled)")
    which = retry.add_mutually_exclusive_group()
    which.add_argument("--failed", action="store_true", help="retry every failed job")
    which.add_argument("--cancelled", action="store_true", help="retry every cancelled job")
    retry.add_argument("--name", help="with --failed/--cancelled: only this worker's jobs")
    retry.set_defaults(command=cmd_retry)

    purge = command("purge", "delete finished jobs: purge failed --older-than 7d")
    purge.add_argument("state", choices=sorted(s.value for s in FINISHED_STATES))
    purge.add_argument("--name", help="only jobs of this worker name")
    purge.add_argument(
        "--older-than", metavar="AGE", help="only jobs finished longer ago: 90s, 30m, 12h, 7d, 2w"
    )
    purge.set_defaults(command=cmd_purge)

    pause = command("pause", "stop every dispatcher from claiming jobs of a worker name")
    pause.add_argument("name", help="worker name")
    pause.set_defaults(command=cmd_pause)

    resume = command("resume", "let dispatchers claim jobs of a paused worker name again")
    resume.add_argument("name", help="worker name")
    resume.set_defaults(command=cmd_resume)

    workers = command("workers", "list the live dispatchers and the jobs they hold")
    workers.set_defaults(command=cmd_workers)


def cmd_cancel(args: argparse.Namespace, queue: JobQueue) -> int:
    state = queue.cancel_job(args.id)
    if args.json:
        print_json({"id": args.id, "state": state.value})
    elif state is JobState.CANCELLED:
        print(f"job {args.id} cancelled")
    elif state is JobState.ACTIVE:
        print(f"job {args.id} is running: its dispatcher was asked to stop it")
    else:
        print(f"job {args.id} had already finished ({state.value}): nothing to cancel")
    return 0


def cmd_retry(args: argparse.Namespace, queue: JobQueue) -> int:
    bulk = args.failed or args.cancelled
    if bulk == (args.id is not None):
        raise ConfigurationError("give a job id, or --failed or --cancelled (not both)")
    if args.name is not None and not bulk:
        raise ConfigurationError("--name goes with --failed or --cancelled")
    if not bulk:
        job = queue.retry_job(args.id)
        if args.json:
            print_json(job.to_dict())
        else:
            print(f"job {job.id} is {job.state.value} again")
        return 0
    state = JobState.FAILED if args.failed else JobState.CANCELLED
    count = queue.retry_jobs(state, args.name)
    if args.json:
        print_json({"retried": count})
    else:
        print(f"retried {count} {state.value} job(s)")
    return 0


def cmd_purge(args: argparse.Namespace, queue: JobQueue) -> int:
    older_than = None if args.older_than is None else parse_duration(args.older_than)
    count = queue.purge_jobs(args.state, name=args.name, older_than=older_than)
    if args.json:
        print_json({"purged": count})
    else:
        print(f"purged {count} {args.state} job(s)")
    return 0


def cmd_pause(args: argparse.Namespace, queue: JobQueue) -> int:
    queue.pause(args.name)
    return _show_paused(args, queue, f"paused {args.name}")


def cmd_resume(args: argparse.Namespace, queue: JobQueue) -> int:
    queue.resume(args.name)
    return _show_paused(args, queue, f"resumed {args.name}")


def _show_paused(args: argparse.Namespace, queue: JobQueue, done: str) -> int:
    paused = sorted(queue.paused())
    if args.json:
        print_json({"paused": paused})
    else:
        print(f"{done}; paused now: {', '.join(paused) or 'none'}")
    return 0


def cmd_workers(args: argparse.Namespace, queue: JobQueue) -> int:
    found = queue.dispatchers()
    if args.json:
        print_json(
            [
                {
                    "id": d.id,
                    "host": d.host,
                    "pid": d.pid,
                    "names": list(d.names),
                    "concurrency": d.concurrency,
                    "started_at": d.started_at,
                    "last_seen": d.last_seen,
                    "jobs": list(d.jobs),
                }
                for d in found
            ]
        )
        return 0
    rows = [
        [
            d.id,
            d.host,
            str(d.pid),
            ",".join(d.names),
            str(d.concurrency),
            time_text(d.started_at),
            time_text(d.last_seen),
            ",".join(d.jobs) or "-",
        ]
        for d in found
    ]
    headers = ["ID", "HOST", "PID", "NAMES", "CONCURRENCY", "STARTED", "LAST SEEN", "JOBS"]
    print(table(headers, rows))
    if not found:
        print("(no live dispatchers)")
    return 0


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` as seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ConfigurationError(
            f"--older-than {text!r} is not a duration; use e.g. 90s, 30m, 12h, 7d or 2w"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
