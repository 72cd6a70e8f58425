"""Real-PostgreSQL fixtures for the PostgreSQL backend's tests.

``JOBQUEUE_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
names the server and the database to connect to for creating the session's own database,
``jobqueue_test_<random>``, which every test uses (a schema per backend) and which is dropped
at the end of the session. No other database is touched. When no server answers the tests are
skipped -- or fail under ``CI=true``, so CI can never skip them silently.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: real-PostgreSQL tests must run, not be skipped)")
    pytest.skip(reason)


def new_schema() -> str:
    return "test_" + secrets.token_hex(6)


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of this session's own database (created here, dropped after)."""
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed: pip install 'jobqueue[postgres]'")
    admin_url = os.environ.get("JOBQUEUE_TEST_POSTGRES_URL", DEFAULT_URL)
    database = f"jobqueue_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        unavailable(f"no PostgreSQL at {admin_url}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield with_database(admin_url, database)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            # FORCE: the backends' LISTEN threads stop on their own, a moment after close().
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def schema(postgres_url: str) -> Iterator[str]:
    """A new schema of the test database, dropped after the test."""
    name = new_schema()
    yield name
    drop_schema(postgres_url, name)
