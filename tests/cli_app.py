"""An application for the CLI tests: ``--app tests.cli_app:queue`` (or ``:workers``)."""

from __future__ import annotations

from jobqueue import Job, JobQueue, Retention, RunningJob, Worker, hookimpl


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


def queue_for(url: str) -> JobQueue:
    """A factory that needs an argument: ``--app`` cannot call it."""
    return JobQueue(url, load_entrypoints=False)


def broken_factory() -> JobQueue:
    raise RuntimeError("no config")


# A queue as an application would keep it: its own settings and plugins, no entry points.
class Recorder:
    """A plugin of the app queue's own, recording which jobs completed."""

    def __init__(self) -> None:
        self.completed: list[str] = []

    @hookimpl
    def jobqueue_job_completed(self, job: Job) -> None:
        self.completed.append(job.id)


RECORDER = Recorder()


def make_configured_queue(url: str = "memory://") -> JobQueue:
    configured = JobQueue(
        url,
        lease_seconds=7.0,
        grace_seconds=3.0,
        retention=Retention(completed_count=5),
        plugins=[RECORDER],
        load_entrypoints=False,
    )
    configured.add_worker("greet", GREET)
    return configured


configured = make_configured_queue()
other_backend = JobQueue("sqlite:///:memory:", load_entrypoints=False)
with_plugins = JobQueue("memory://")  # entry points loaded: the installed test plugin's workers
