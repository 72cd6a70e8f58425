"""The registry: worker name → Worker, filled by ``add_worker`` and plugin hooks."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from jobqueue.errors import InvalidWorkerError, UnknownWorkerError
from jobqueue.worker import Worker


class Registry:
    """Thread-safe map of worker names to workers. Registering the same handler twice under a
    name is a no-op; a different handler under a taken name is refused."""

    def __init__(self) -> None:
        self._workers: dict[str, Worker] = {}
        self._lock = threading.Lock()

    def add(self, worker: Worker) -> Worker:
        if not isinstance(worker, Worker):
            raise InvalidWorkerError(f"expected a jobqueue.Worker, got {worker!r}")
        with self._lock:
            existing = self._workers.get(worker.name)
            if existing is not None:
                if existing.handler is worker.handler or existing == worker:
                    return existing
                raise InvalidWorkerError(
                    f"worker name {worker.name!r} is already registered with another handler "
                    f"({existing.handler!r}); pick another name or remove the duplicate plugin"
                )
            self._workers[worker.name] = worker
            return worker

    def get(self, name: str) -> Worker:
        try:
            return self._workers[name]
        except (KeyError, TypeError):
            known = ", ".join(sorted(self._workers)) or "none"
            raise UnknownWorkerError(
                f"no worker is registered under {name!r} (registered: {known}); "
                "register it with queue.add_worker() or a jobqueue plugin before submitting"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._workers

    def __iter__(self) -> Iterator[Worker]:
        return iter(list(self._workers.values()))

    def __len__(self) -> int:
        return len(self._workers)

    def names(self) -> tuple[str, ...]:
        return tuple(self._workers)
