"""jobqueue: a job queue Python teams trust with their heavy work."""

from jobqueue.aio import AsyncJobQueue
from jobqueue.backend import (
    Backend,
    BackendOptions,
    Claim,
    DispatcherInfo,
    LeaseStatus,
    Retention,
    ThroughputBucket,
    WorkSpec,
)
from jobqueue.client import QueueClient
from jobqueue.dependency import Dependency
from jobqueue.errors import (
    BackendError,
    BackendFullError,
    BackendUnavailableError,
    ConfigurationError,
    CorruptJobError,
    DispatcherCrashedError,
    InvalidArgumentError,
    InvalidJobDataError,
    InvalidJobError,
    InvalidOptionError,
    InvalidScheduleError,
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
    ScheduleNotFoundError,
    SchemaVersionError,
    StalledJobError,
    TLSVerificationError,
    TransactionsUnsupportedError,
    UnknownBackendError,
    UnknownWorkerError,
)
from jobqueue.flows import Flow, FlowStep
from jobqueue.hooks import hookimpl
from jobqueue.job import (
    Attempt,
    AttemptOutcome,
    Backoff,
    Job,
    JobError,
    JobLog,
    JobState,
)
from jobqueue.queue import JobQueue
from jobqueue.runtime.dispatcher import Dispatcher
from jobqueue.runtime.interrupt import Snooze
from jobqueue.runtime.running import RunningJob
from jobqueue.scheduler import ScheduleInfo
from jobqueue.schedules import Schedule
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
    "Dependency",
    "Dispatcher",
    "DispatcherCrashedError",
    "DispatcherInfo",
    "Flow",
    "FlowStep",
    "Handler",
    "InvalidArgumentError",
    "InvalidJobDataError",
    "InvalidJobError",
    "InvalidOptionError",
    "InvalidScheduleError",
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
    "QueueClient",
    "Retention",
    "RunningJob",
    "Schedule",
    "ScheduleInfo",
    "ScheduleNotFoundError",
    "SchemaVersionError",
    "Snooze",
    "StalledJobError",
    "TLSVerificationError",
    "ThroughputBucket",
    "TransactionsUnsupportedError",
    "UnknownBackendError",
    "UnknownWorkerError",
    "WorkSpec",
    "Worker",
    "__version__",
    "hookimpl",
]
