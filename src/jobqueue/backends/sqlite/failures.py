"""What an ``sqlite3`` error means for the caller: a full disk, a busy or unreachable file, or
a failure of the operation itself.

A full disk shows up two ways. A write that needs room fails with ``SQLITE_FULL`` ("database or
disk is full"). But a WAL file is read through its ``-shm`` index, which SQLite creates and
sizes (32 KiB) when the first connection opens the file; on a full disk that fails with
``SQLITE_IOERR_SHMSIZE``, a plain "disk I/O error" -- for reads as well as writes, so a
process started on a full disk could not even look at its jobs. The error does not carry the
``errno``; the free space of the file's directory tells the two apart (``disk_is_full``), and
reads then go through a read-only view of the index (``connections.ConnectionPool``).
"""

from __future__ import annotations

import os
import sqlite3

from jobqueue.backends.sqlite.rows import is_busy
from jobqueue.errors import BackendError, BackendFullError, BackendUnavailableError

FULL_BELOW = 1 << 20
"""Free bytes under which an I/O error is taken for a full disk: SQLite needs at most tens of
KiB to open a file (its index) or write a transaction of ordinary jobs, so with a MiB free an
I/O error is something else."""

SQLITE_FULL = 13


def is_io_error(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if isinstance(name, str):
        return name.startswith("SQLITE_IOERR")
    return "disk i/o error" in str(exc).lower()


def is_full(exc: sqlite3.Error) -> bool:
    """``SQLITE_FULL`` itself."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int):
        return code & 0xFF == SQLITE_FULL
    return "database or disk is full" in str(exc).lower()


def disk_is_full(path: str) -> bool:
    """Whether the disk holding ``path`` has (almost) no room left."""
    try:
        stats = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except (OSError, AttributeError):  # no statvfs (Windows) or the directory is gone
        return False
    return stats.f_bavail * stats.f_frsize < FULL_BELOW


def means_full_disk(exc: sqlite3.Error, path: str) -> bool:
    return is_full(exc) or (path != ":memory:" and is_io_error(exc) and disk_is_full(path))


def translate(exc: sqlite3.Error, path: str) -> BackendError:
    if means_full_disk(exc, path):
        return BackendFullError(
            f"SQLite database {path!r} is full ({exc}); nothing of this call was stored. "
            "Jobs already stored can still be read; free space on its disk to go on"
        )
    if is_busy(exc):
        return BackendUnavailableError(
            f"SQLite database {path!r} is busy or unreachable ({exc}); nothing was changed, "
            "retry (or raise busy_timeout in the URL if many processes share the file)"
        )
    return BackendError(f"SQLite operation on {path!r} failed: {exc}")
