"""An application for the CLI tests: ``--app tests.cli_app:queue`` (or ``:workers``)."""

from __future__ import annotations

from jobqueue import JobQueue, RunningJob, Worker


class Greet:
    """Writes a log line and progress, returns a greeting."""

    def handle(self, job: RunningJob) -> dict[str, str]:
        job.log(f"greeting {job.data['who']}")
        job.progress(50, "half way")
        return {"greeting": f"hello {job.data['who']}"}

    def get_title(self, data: dict[str, str]) -> str:
        return f"Greet {data['who']}"


def explode(job: RunningJob) -> None:
    raise ValueError(f"boom {job.data!r}")


GREET = Greet()


def make_workers() -> list[Worker]:
    return [Worker("greet", GREET), Worker("explode", explode)]


def make_queue() -> JobQueue:
    queue = JobQueue("memory://", load_entrypoints=False)
    for worker in make_workers():
        queue.add_worker(worker)
    return queue


workers = make_workers()
queue = make_queue()


def empty_queue() -> JobQueue:
    """A queue with no workers at all (plugins not loaded)."""
    return JobQueue("memory://", load_entrypoints=False)
