"""The shared backend contract, unchanged, on the PostgreSQL backend: a schema of its own per
backend, in the session's own database."""

from __future__ import annotations

import pytest

from jobqueue.backend import Backend, BackendOptions
from jobqueue.backends.postgres import PostgresBackend
from jobqueue.testing import BackendContract
from tests.backends.postgres_fixtures import drop_schema, new_schema, postgres_url

__all__ = ["postgres_url"]  # the session fixture, re-exported for pytest

pytestmark = pytest.mark.postgres


class TestPostgresBackend(BackendContract):
    """The machines run at the suite's default sizes (a schema per example)."""

    url: str

    @pytest.fixture(autouse=True)
    def _server(self, postgres_url: str) -> None:
        type(self).url = postgres_url  # the machines make backends outside fixtures too

    def make_backend(self, options: BackendOptions) -> Backend:
        return PostgresBackend(f"{self.url}?schema={new_schema()}", options)

    def open_same_store(self, backend: Backend, options: BackendOptions) -> Backend:
        assert isinstance(backend, PostgresBackend)
        return PostgresBackend(f"{self.url}?schema={backend.schema}", options)

    def dispose_backend(self, backend: Backend) -> None:
        assert isinstance(backend, PostgresBackend)
        backend.close()
        drop_schema(self.url, backend.schema)
