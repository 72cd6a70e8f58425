"""The shared backend contract, unchanged, on the SQLite backend: file-backed and in memory."""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from collections.abc import Iterator

import pytest

from jobqueue.backend import Backend, BackendOptions
from jobqueue.backends.sqlite import SQLiteBackend
from jobqueue.testing import BackendContract

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
        assert isinstance(backend, SQLiteBackend)
        return SQLiteBackend(backend.path, options)  # its own connections to the same file

    def dispose_backend(self, backend: Backend) -> None:
        backend.close()
        assert isinstance(backend, SQLiteBackend)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(backend.path + suffix)


class TestSQLiteMemoryBackend(BackendContract):
    state_machine_examples = 20

    def make_backend(self, options: BackendOptions) -> Backend:
        return SQLiteBackend.from_url("sqlite:///:memory:", options)
