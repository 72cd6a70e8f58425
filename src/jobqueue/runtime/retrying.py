"""What a failed attempt becomes: its error as stored, and whether and when it runs again."""

from __future__ import annotations

from jobqueue.errors import JobTimeoutError, NotSerializableError
from jobqueue.job import Job, JobError
from jobqueue.lifecycle import retry_at
from jobqueue.runtime.interrupt import HandlerTimeout

__all__ = ["describe_failure", "exception_text", "retry_at"]  # retry_at: the rule, lifecycle's


def describe_failure(exc: BaseException, job: Job) -> JobError:
    """The stored error (without traceback) of an attempt that raised ``exc``. The type
    names stored are the error classes' own (``job.error.type == "JobTimeoutError"``)."""
    # Only the watchdog's own exception is a timeout: a TimeoutError the handler raised
    # (an upstream API's) is the handler's error, however close to the deadline.
    if isinstance(exc, HandlerTimeout):
        return JobError(
            JobTimeoutError.__name__,
            f"handler ran longer than its timeout of {job.timeout}s; it was interrupted at "
            "its next Python instruction (a handler blocked in one long C call, such as "
            "time.sleep or a socket read, stops only when that call returns)",
        )
    if isinstance(exc, NotSerializableError):
        return JobError(
            NotSerializableError.__name__, f"handler returned a value that is not JSON: {exc}"
        )
    return JobError(type(exc).__name__, exception_text(exc))


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, even for an exception whose ``__str__`` raises."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose str() raised>"
