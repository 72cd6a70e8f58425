"""Prometheus metrics of a queue, for ``/metrics`` scrapes (``pip install 'jobqueue[metrics]'``).

Two kinds, one registry:

* **What the backend holds**, read at scrape time (reads never write, so a scrape costs no
  transition): jobs by worker name and state, paused names, live dispatchers, and the age of
  the oldest waiting job per name.
* **What this process's dispatchers did**, counted by lifecycle hooks: attempts by outcome
  (completed, failed, retried, cancelled), handler durations, queue waits, and the stalled
  jobs this process's maintenance recovered (each recovery counted once, fleet-wide: only
  the process that reports it fires ``jobqueue_job_stalled``). Run the exporter
  in each worker process (``start_metrics_server``, or ``jobqueue worker --metrics-port``) so a
  fleet is scraped process by process; Prometheus sums them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobqueue.hooks import hookimpl
from jobqueue.job import Job, JobError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from jobqueue.queue import JobQueue

logger = logging.getLogger("jobqueue.metrics")

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
"""Seconds: from a no-op handler to a half-hour import."""

WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 3600)
"""Seconds a job waited between becoming due and starting."""


def instrument(queue: JobQueue, registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """Register ``queue``'s metrics in ``registry`` (a new one by default) and return it."""
    registry = registry if registry is not None else CollectorRegistry()
    registry.register(BackendCollector(queue))
    queue.plugins.register(JobMetrics(registry))
    return registry


def start_metrics_server(
    queue: JobQueue,
    port: int,
    addr: str = "127.0.0.1",
    registry: CollectorRegistry | None = None,
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` for ``queue`` on ``addr:port`` from a daemon thread (``port=0``
    picks a free one: ``server.server_port``). Returns the server and its thread; call
    ``server.shutdown()`` to stop it."""
    server, thread = start_http_server(port, addr=addr, registry=instrument(queue, registry))
    logger.info("serving metrics on http://%s:%d/metrics", addr, server.server_port)
    return server, thread


class BackendCollector(Collector):
    """Reads the backend at every scrape: jobs by name and state, paused names, dispatchers,
    the oldest waiting job's age."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "jobqueue_jobs", "Jobs stored, by worker name and state", labels=["name", "state"]
        )
        by_name = self.queue.count_by_name()
        for name, counts in sorted(by_name.items()):
            for state, count in counts.items():
                jobs.add_metric([name, state.value], count)
        yield jobs
        paused = GaugeMetricFamily(
            "jobqueue_paused", "1 for a worker name paused now", labels=["name"]
        )
        for name in sorted(self.queue.paused()):
            paused.add_metric([name], 1)
        yield paused
        live = self.queue.dispatchers()
        yield GaugeMetricFamily(
            "jobqueue_dispatchers", "Live dispatchers (heartbeat within a lease)", value=len(live)
        )
        oldest = GaugeMetricFamily(
            "jobqueue_oldest_waiting_seconds",
            "Age of the oldest job waiting to run, by worker name (queue latency)",
            labels=["name"],
        )
        for name, seconds in self.queue.queue_latency().items():
            oldest.add_metric([name], seconds)
        yield oldest
        missed = CounterMetricFamily(
            "jobqueue_schedule_missed_ticks",
            "Ticks of a periodic schedule that got no job because no scheduler ran in time "
            "(catch-up rules), by schedule",
            labels=["schedule"],
        )
        skipped = CounterMetricFamily(
            "jobqueue_schedule_skipped_ticks",
            "Ticks of a periodic schedule not run because it was paused or its previous job "
            "was still running (overlap rule), by schedule",
            labels=["schedule"],
        )
        for record in self.queue.backend.schedule_records():
            missed.add_metric([record.name], record.missed)
            skipped.add_metric([record.name], record.skipped)
        yield missed
        yield skipped


class JobMetrics:
    """A plugin counting what this process's dispatchers do (lifecycle hooks)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "jobqueue_attempts",
            "Finished attempts in this process, by worker name and outcome",
            ["name", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "jobqueue_job_duration_seconds",
            "How long handlers ran, by worker name",
            ["name"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.wait = Histogram(
            "jobqueue_job_wait_seconds",
            "How long jobs waited between becoming due and starting, by worker name",
            ["name"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.stalls = Counter(
            "jobqueue_stalls",
            "Jobs recovered from an expired lease by this process's maintenance, by worker name",
            ["name"],
            registry=registry,
        )
        self._running: dict[str, float] = {}  # job id -> monotonic start, while it runs here

    @hookimpl
    def jobqueue_job_started(self, job: Job) -> None:
        self._running[job.id] = time.monotonic()
        if job.started_at is not None:
            self.wait.labels(job.name).observe(max(job.started_at - job.run_at, 0.0))

    @hookimpl
    def jobqueue_lease_lost(self, job: Job) -> None:
        self._running.pop(job.id, None)  # its outcome will never be announced here

    @hookimpl
    def jobqueue_job_stalled(self, job: Job) -> None:
        self.stalls.labels(job.name).inc()

    @hookimpl
    def jobqueue_job_completed(self, job: Job) -> None:
        self._finished(job, "completed")

    @hookimpl
    def jobqueue_job_failed(self, job: Job, error: JobError, will_retry: bool) -> None:
        self._finished(job, "retried" if will_retry else "failed")

    @hookimpl
    def jobqueue_job_cancelled(self, job: Job) -> None:
        if job.id in self._running:  # one this process ran (not a cancel while it waited)
            self._finished(job, "cancelled")

    def _finished(self, job: Job, outcome: str) -> None:
        self.attempts.labels(job.name, outcome).inc()
        started = self._running.pop(job.id, None)
        if started is not None:
            self.duration.labels(job.name).observe(time.monotonic() - started)
