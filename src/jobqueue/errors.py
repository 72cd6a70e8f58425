"""Every error jobqueue raises on purpose derives from ``JobQueueError``."""

from __future__ import annotations


class JobQueueError(Exception):
    """Base class of every error raised by jobqueue."""


class ConfigurationError(JobQueueError):
    """The queue, a worker or a backend was set up with values that cannot work."""


class InvalidWorkerError(ConfigurationError):
    """A worker definition is incomplete or contradicts one already registered."""


class UnknownBackendError(ConfigurationError):
    """No installed backend handles the URL scheme asked for."""


class UnknownWorkerError(JobQueueError):
    """A job was submitted for a worker name that no handler is registered under."""


class InvalidJobError(JobQueueError):
    """Job data or a submit option was refused before anything was stored."""


class NotSerializableError(InvalidJobError):
    """Job data (or a handler's result) is not plain JSON."""


class PayloadTooLargeError(InvalidJobError):
    """Job data is larger than the queue's ``max_data_bytes``."""


class InvalidOptionError(InvalidJobError):
    """A submit or worker option has the wrong type or an out-of-range value."""


class LeaseLostError(JobQueueError):
    """The caller's lease on a job expired or was taken over; its write was refused (fencing)."""


class BackendError(JobQueueError):
    """The backend could not be reached or refused an operation."""


class BackendUnavailableError(BackendError):
    """The backend's server did not answer; nothing was stored. Retry once it is back."""


class CorruptJobError(BackendError):
    """A stored job record could not be decoded."""


class SchemaVersionError(BackendError):
    """A storage file was written by another (newer or unknown) schema version, or is not ours."""


class JobTimeoutError(JobQueueError):
    """A handler ran longer than its ``timeout``."""


class StalledJobError(JobQueueError):
    """A job's lease expired too many times (its worker died or hung while running it)."""
