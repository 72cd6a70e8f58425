"""The caller's connection for a transactional submit: the driver's own connection, found
behind SQLAlchemy's objects.

Accepted as given: a driver connection (psycopg 3 ``Connection``/``AsyncConnection``, an
``sqlite3.Connection``). From SQLAlchemy 2 (imported only when such an object is passed):
a ``Connection`` or ``AsyncConnection`` inside a transaction (``with engine.begin() as
conn``), a ``Session`` or ``AsyncSession`` (its connection, which it begins if needed; the
session's ``commit`` commits the jobs). The driver connection is then in the same
transaction as the caller's statements: SQLAlchemy issues no ``BEGIN`` of its own, the
driver does, on the first statement of either.
"""

from __future__ import annotations

from jobqueue.errors import InvalidArgumentError


def _from_sqlalchemy(connection: object) -> bool:
    return type(connection).__module__.split(".", 1)[0] == "sqlalchemy"


def _not_in_transaction() -> InvalidArgumentError:
    return InvalidArgumentError(
        "the SQLAlchemy connection is not in a transaction: pass the connection of "
        "`with engine.begin() as conn:` (or a Session), so the job commits with your rows"
    )


def driver_connection(connection: object) -> object:
    """The driver connection of ``connection`` (itself unless it is SQLAlchemy's)."""
    if not _from_sqlalchemy(connection):
        return connection
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
    from sqlalchemy.orm import Session

    if isinstance(connection, (AsyncConnection, AsyncSession)):
        raise InvalidArgumentError(
            f"an asyncio SQLAlchemy {type(connection).__name__}: submit through "
            "AsyncJobQueue (await queue.submit_job(..., connection=...))"
        )
    if isinstance(connection, Session):
        connection = connection.connection()  # begins the session's transaction if needed
    if not isinstance(connection, Connection):
        raise InvalidArgumentError(f"cannot submit with a {type(connection).__name__}")
    if not connection.in_transaction():
        raise _not_in_transaction()
    return connection.connection.driver_connection


async def driver_connection_async(connection: object) -> object:
    """As ``driver_connection``, for asyncio SQLAlchemy objects too."""
    if not _from_sqlalchemy(connection):
        return connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    if isinstance(connection, AsyncSession):
        connection = await connection.connection()
    if not isinstance(connection, AsyncConnection):
        return driver_connection(connection)
    if not connection.in_transaction():
        raise _not_in_transaction()
    raw = await connection.get_raw_connection()
    return raw.driver_connection
