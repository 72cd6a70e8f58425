"""The shared backend contract, unchanged, on the SQLite backend: file-backed and in memory."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from jobqueue.backend import Backend, BackendOptions
from jobqueue.backends.sqlite import SQLiteBackend
from jobqueue.engine import Engine
from jobqueue.testing import BackendContract
from jobqueue.testing.contract.apply import ApplyContract

_numbers = itertools.count()


class TestSQLiteFileBackend(BackendContract):
    """Every backend on a new file (the state machine makes one per example)."""

    state_machine_examples = 20

    @pytest.fixture(autouse=True)
    def _directory(self) -> Iterator[None]:
        with tempfile.TemporaryDirectory(prefix="jobqueue-sqlite-") as directory:
            self.directory = directory
            yield

    def make_backend(self, options: BackendOptions) -> Backend:
        directory = getattr(self, "directory", None) or tempfile.mkdtemp(prefix="jobqueue-sm-")
        path = os.path.join(directory, f"jobs-{next(_numbers)}.db")
        return SQLiteBackend.from_url(f"sqlite:///{path}", options)

    def open_same_store(self, backend: Backend, options: BackendOptions) -> Backend:
        # Its own connections to the same file (the contract puts an Engine over it).
        return SQLiteBackend(_sqlite(backend).path, options)

    def dispose_backend(self, backend: Backend) -> None:
        backend.close()
        path = _sqlite(backend).path
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path + suffix)


def _sqlite(backend: object) -> SQLiteBackend:
    """The SQLite store under what the contract holds (an ``Engine`` over it)."""
    store = backend.store if isinstance(backend, Engine) else backend
    assert isinstance(store, SQLiteBackend)
    return store


class TestSQLiteStore(ApplyContract):
    """The storage seam on the raw SQLite store (no ``Engine``)."""

    def make_backend(self, options: BackendOptions) -> Backend:
        directory = tempfile.mkdtemp(prefix="jobqueue-seam-")
        return SQLiteBackend(os.path.join(directory, "jobs.db"), options)

    def dispose_backend(self, backend: Backend) -> None:
        backend.close()
        shutil.rmtree(os.path.dirname(_sqlite(backend).path), ignore_errors=True)


class TestSQLiteMemoryBackend(BackendContract):
    state_machine_examples = 20

    def make_backend(self, options: BackendOptions) -> Backend:
        return SQLiteBackend.from_url("sqlite:///:memory:", options)
