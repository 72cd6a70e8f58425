"""The schedule commands: scheduler (run one alone), schedules (list) and schedule
pause/resume/run NAME."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import select
import signal
import socket
from collections.abc import Callable
from types import FrameType

from jobqueue.cli.control import AddCommand
from jobqueue.cli.output import print_json, table, time_text
from jobqueue.errors import ConfigurationError
from jobqueue.queue import JobQueue

logger = logging.getLogger("jobqueue.cli")


def add_schedule_commands(command: AddCommand) -> None:
    scheduler = command(
        "scheduler",
        "submit the jobs of the declared schedules until SIGTERM/SIGINT (any number may run: "
        "each tick gets one job)",
    )
    scheduler.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )
    scheduler.set_defaults(command=cmd_scheduler)
    listing = command("schedules", "list the schedules: next and last run, last job, missed")
    listing.set_defaults(command=cmd_schedules)
    steer = command("schedule", "pause, resume or run now one schedule")
    steer.add_argument("action", choices=["pause", "resume", "run"])
    steer.add_argument("name", help="schedule name")
    steer.set_defaults(command=cmd_schedule)


class _StopSignals:
    """SIGTERM/SIGINT write one byte to a socket the main thread waits on: a signal handler
    only notes the signal, it never takes a lock (the code it interrupts may hold any)."""

    def __init__(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self._writer.setblocking(False)
        self.received: list[int] = []
        self._previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        with contextlib.suppress(OSError):
            self._writer.send(b"x")

    def __enter__(self) -> _StopSignals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def wait(self) -> int:
        """Block until a signal came; return it."""
        while not self.received:
            select.select([self.reader], [], [])
        return self.received[0]

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self.reader.close()
        self._writer.close()


def cmd_scheduler(args: argparse.Namespace, queue: JobQueue) -> int:
    if not len(queue.schedule_book):
        raise ConfigurationError(
            "no schedules are declared; pass --app module:attribute (a queue with "
            "@queue.periodic or add_schedule) or install a plugin that provides some"
        )
    logging.getLogger("jobqueue").setLevel(args.log_level)
    scheduler = queue.scheduler()
    with _StopSignals() as stop:
        thread = scheduler.start_thread()
        names = ", ".join(schedule.name for schedule in queue.schedule_book)
        logger.info("scheduler on %s for %s", queue.url, names)
        received = stop.wait()
        scheduler.stop()
        thread.join()
    # Ctrl-C ends a command with 130 by convention; SIGTERM is the planned stop: 0.
    return 130 if received == signal.SIGINT else 0


def cmd_schedules(args: argparse.Namespace, queue: JobQueue) -> int:
    found = queue.schedules()
    if args.json:
        print_json([info.to_dict() for info in found])
        return 0
    rows = [
        [
            info.name,
            info.worker or "(not declared here)",
            _every(info.definition),
            time_text(info.next_run),
            time_text(info.last_tick),
            f"{info.last_job_id} {info.last_job_state.value}"
            if info.last_job_id and info.last_job_state
            else (info.last_job_id or "-"),
            str(info.missed),
            "paused" if info.paused else "-",
        ]
        for info in found
    ]
    headers = ["NAME", "WORKER", "WHEN", "NEXT", "LAST TICK", "LAST JOB", "MISSED", "PAUSED"]
    print(table(headers, rows) if rows else "no schedules")
    return 0


def _every(definition: str) -> str:
    try:
        fields = json.loads(definition)
    except ValueError:
        return definition
    if fields.get("cron"):
        return f"{fields['cron']} ({fields.get('tz', 'UTC')})"
    return f"every {fields.get('every')} s"


def cmd_schedule(args: argparse.Namespace, queue: JobQueue) -> int:
    if args.action == "pause":
        queue.pause_schedule(args.name)
        done = f"paused schedule {args.name}"
    elif args.action == "resume":
        queue.resume_schedule(args.name)
        done = f"resumed schedule {args.name}"
    else:
        job = queue.run_schedule_now(args.name)
        done = f"submitted job {job.id} of schedule {args.name}"
    if args.json:
        print_json({"schedule": args.name, "action": args.action, "done": done})
    else:
        print(done)
    return 0
