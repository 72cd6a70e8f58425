"""A third-party plugin as users would write one: workers, a backend scheme, lifecycle hooks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from jobqueue import Job, JobError, Worker, hookimpl
from jobqueue.backend import Backend, BackendFactory, BackendOptions
from jobqueue.backends.memory import MemoryBackend

EVENTS: list[tuple[str, str]] = []


class Reindex:
    def handle(self, job):  # type: ignore[no-untyped-def]
        return {"reindexed": job.data["index"]}

    def get_title(self, data):  # type: ignore[no-untyped-def]
        return f"Reindex {data['index']}"


def _plugin_backend(url: str, options: BackendOptions) -> Backend:
    return MemoryBackend(options)


@hookimpl
def jobqueue_register_workers() -> Iterable[Worker]:
    return [Worker("plugin-reindex", Reindex(), attempts=2)]


@hookimpl
def jobqueue_register_backends() -> Mapping[str, BackendFactory]:
    return {"plugin-mem": _plugin_backend}


@hookimpl
def jobqueue_job_submitted(job: Job) -> None:
    EVENTS.append(("submitted", job.name))


@hookimpl
def jobqueue_job_completed(job: Job) -> None:
    EVENTS.append(("completed", job.name))


@hookimpl
def jobqueue_job_failed(job: Job, error: JobError, will_retry: bool) -> None:
    EVENTS.append(("failed", job.name))
