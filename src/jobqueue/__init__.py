"""jobqueue: a job queue Python teams trust with their heavy work."""

from jobqueue.aio import AsyncJobQueue
from jobqueue.backend import (
    Backend,
    BackendOptions,
    Claim,
    DispatcherInfo,
    LeaseStatus,
    Retention,
    WorkSpec,
)
from jobqueue.dispatcher import Dispatcher
from jobqueue.errors import (
    BackendError,
    BackendFullError,
    BackendUnavailableError,
    ConfigurationError,
    CorruptJobError,
    InvalidJobDataError,
    InvalidJobError,
    InvalidOptionError,
    InvalidSettingError,
    InvalidURLError,
    InvalidWorkerError,
    JobNotFoundError,
    JobQueueError,
    JobStateError,
    JobTimeoutError,
    LeaseLostError,
    NotSerializableError,
    PayloadTooLargeError,
    SchemaVersionError,
    StalledJobError,
    TLSVerificationError,
    UnknownBackendError,
    UnknownWorkerError,
)
from jobqueue.hooks import hookimpl
from jobqueue.job import Attempt, AttemptOutcome, Backoff, Job, JobError, JobLog, JobState
from jobqueue.queue import JobQueue
from jobqueue.running import RunningJob
from jobqueue.worker import Handler, Worker

__version__ = "0.1.0"

__all__ = [
    "AsyncJobQueue",
    "Attempt",
    "AttemptOutcome",
    "Backend",
    "BackendError",
    "BackendFullError",
    "BackendOptions",
    "BackendUnavailableError",
    "Backoff",
    "Claim",
    "ConfigurationError",
    "CorruptJobError",
    "Dispatcher",
    "DispatcherInfo",
    "Handler",
    "InvalidJobDataError",
    "InvalidJobError",
    "InvalidOptionError",
    "InvalidSettingError",
    "InvalidURLError",
    "InvalidWorkerError",
    "Job",
    "JobError",
    "JobLog",
    "JobNotFoundError",
    "JobQueue",
    "JobQueueError",
    "JobState",
    "JobStateError",
    "JobTimeoutError",
    "LeaseLostError",
    "LeaseStatus",
    "NotSerializableError",
    "PayloadTooLargeError",
    "Retention",
    "RunningJob",
    "SchemaVersionError",
    "StalledJobError",
    "TLSVerificationError",
    "UnknownBackendError",
    "UnknownWorkerError",
    "WorkSpec",
    "Worker",
    "__version__",
    "hookimpl",
]
