"""Every error jobqueue raises on purpose derives from ``JobQueueError``.

Three families say whose mistake it is: ``ConfigurationError`` (the queue, a worker, a backend
URL or a setting cannot work — fix the setup), ``InvalidJobError`` (a submitted job's input
was refused before anything was stored — fix the job) and ``InvalidArgumentError`` (any
other call was given an argument it cannot take: a job id, a state, a page — fix the call).
``BackendError`` is the store's trouble.

``JobTimeoutError`` and ``StalledJobError`` are never raised to a caller: their names are the
error types recorded on a job (``job.error.type``) whose attempt ran past its timeout, or
whose lease expired too often; compare with ``JobTimeoutError.__name__``.
"""

from __future__ import annotations


class JobQueueError(Exception):
    """Base class of every error raised by jobqueue."""


# -- setup mistakes ---------------------------------------------------------------------------


class ConfigurationError(JobQueueError):
    """The queue, a worker or a backend was set up with values that cannot work."""


class TransactionsUnsupportedError(ConfigurationError):
    """``submit_job(..., connection=...)`` or ``job.transaction()`` on a backend that cannot
    share a transaction with the application's database (Redis, memory): submit after your
    transaction commits instead. PostgreSQL and SQLite support both."""


class InvalidSettingError(ConfigurationError):
    """A queue or dispatcher setting (``lease_seconds``, ``concurrency``, …) is out of range."""


class InvalidURLError(ConfigurationError):
    """A backend URL is malformed or names a parameter its backend does not know."""


class TLSVerificationError(ConfigurationError):
    """The server's TLS certificate failed verification: a setup problem, not an outage."""


class InvalidWorkerError(ConfigurationError):
    """A worker definition is incomplete or contradicts one already registered."""


class UnknownBackendError(ConfigurationError):
    """No installed backend handles the URL scheme asked for."""


class InvalidScheduleError(ConfigurationError):
    """A periodic schedule is malformed: a bad cron expression or interval, an unknown time
    zone, an unknown policy or submit option, or data that is not plain JSON."""


# -- job input mistakes (nothing was stored) --------------------------------------------------


class InvalidJobError(JobQueueError):
    """Job data or a submit option was refused before anything was stored."""


class UnknownWorkerError(InvalidJobError):
    """A job was submitted for a worker name that no handler is registered under."""


class NotSerializableError(InvalidJobError):
    """Job data (or a handler's result) is not plain JSON."""


class PayloadTooLargeError(InvalidJobError):
    """Job data is larger than the queue's ``max_data_bytes``."""


class InvalidOptionError(InvalidJobError):
    """A submit option (``priority``, ``delay``, ``unique_key``, …) has the wrong type or an
    out-of-range value."""


class InvalidJobDataError(InvalidJobError):
    """The worker's ``get_title(data)`` could not handle the job data (a missing key, a wrong
    type): the data is not what that worker expects."""


# -- call mistakes (nothing was done) ---------------------------------------------------------


class InvalidArgumentError(JobQueueError):
    """A call other than a submit got an argument it cannot take: a job id that is not a
    non-empty str, an unknown job state or one the operation does not apply to (``cancel_jobs``
    of completed jobs), a negative ``offset`` or ``limit``, a ``throughput`` period or span, a
    schedule name; or a submit's ``connection=`` that cannot share its transaction with the
    queue (another database, autocommit, a failed transaction). Nothing was stored."""


# -- at run time ------------------------------------------------------------------------------


class ScheduleNotFoundError(JobQueueError):
    """No schedule of that name is declared in this process, nor recorded by the backend."""


class JobNotFoundError(JobQueueError):
    """No job has this id (it never existed, or it was removed or expired by retention)."""


class JobStateError(JobQueueError):
    """The job is not in a state that allows this (retrying a job that did not fail, …)."""


class LeaseLostError(JobQueueError):
    """The caller's lease on a job expired or was taken over; its write was refused (fencing)."""


class BackendError(JobQueueError):
    """The backend could not be reached or refused an operation."""


class BackendUnavailableError(BackendError):
    """The backend's server did not answer in time, or (Redis Cluster) refused the call while
    the slot it needs moves between nodes: retry. A write may or may not have been applied
    (the request can be lost before or after the server acts); submit with a ``unique_key``
    to make a retry safe."""


class BackendFullError(BackendError):
    """The store is out of memory (Redis at ``maxmemory`` with the ``noeviction`` policy) and
    refused new jobs; nothing of the refused submit was stored. Jobs already stored still run,
    renew their leases and finish -- which frees memory as retention removes them."""


class CorruptJobError(BackendError):
    """A stored job record could not be decoded."""


class SchemaVersionError(BackendError):
    """A storage file was written by another (newer or unknown) schema version, or is not ours."""


class JobTimeoutError(JobQueueError):
    """Recorded, not raised: the error type of an attempt whose handler ran longer than its
    ``timeout`` (``job.error.type == JobTimeoutError.__name__``)."""


class StalledJobError(JobQueueError):
    """Recorded, not raised: the error type of a job failed because its lease expired more
    than ``max_stalls`` times (its worker died or hung while running it)."""


class DispatcherCrashedError(JobQueueError):
    """A dispatcher slot kept dying of an unexpected exception (a bug in jobqueue, a plugin
    or a backend, not a handler's error), so the dispatcher stopped; each crash was logged
    with its traceback. ``jobqueue worker`` exits with status 70 for it."""


class ReplicationTimeoutError(BackendUnavailableError):
    """The write was applied on the Redis primary, but fewer replicas than asked for
    (``replicas=N`` in the URL) acknowledged it within ``replica_timeout``: it is not yet
    safe from a failover. Submitted jobs are stored (``job_ids`` names them) and will run
    unless a failover loses them; resubmitting without a ``unique_key`` may store them twice.
    An outcome (complete, fail) sent again is answered with what was stored, so it is safe
    to retry."""

    def __init__(self, message: str, job_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.job_ids = job_ids
