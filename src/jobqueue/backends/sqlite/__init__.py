"""Embedded SQLite backend: durable jobs in one file, no server (``sqlite:///jobs.db``)."""

from jobqueue.backends.sqlite.backend import SQLiteBackend
from jobqueue.backends.sqlite.dialect import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "SQLiteBackend"]
