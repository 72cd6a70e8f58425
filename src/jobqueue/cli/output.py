"""What the commands print: a job's details, tables, JSON, and the worker's job log lines."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from jobqueue.hooks import hookimpl
from jobqueue.job import Job

logger = logging.getLogger("jobqueue.cli")

LOG_LINES_SHOWN = 10


class LifecycleLogger:
    """Logs each job's start and completion at INFO (the dispatcher logs failures)."""

    @hookimpl
    def jobqueue_job_started(self, job: Job) -> None:
        logger.info("started %s %s (attempt %d)", job.name, job.id, job.attempts_made)

    @hookimpl
    def jobqueue_job_completed(self, job: Job) -> None:
        logger.info("completed %s %s", job.name, job.id)


LIFECYCLE_LOGGER = LifecycleLogger()


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
        ("created", time_text(job.created_at)),
        ("runs at", time_text(job.run_at)),
        ("started", time_text(job.started_at)),
        ("finished", time_text(job.finished_at)),
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
        text += "\n".join(f"  {time_text(entry.at)}  {entry.message}" for entry in shown)
    return text


def time_text(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    try:
        return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, ValueError, OSError, TypeError):
        # No date (a foreign writer's or an older version's absurd time): show the number.
        return f"{timestamp!r} (not a date)"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))
