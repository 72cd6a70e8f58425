"""Sharing a transaction with the application's database: what a store offers for it.

* **Transactional submit** (``submit_job(..., connection=conn)``): the jobs are written with
  the caller's own connection, inside the caller's open transaction, so they exist if and only
  if that transaction commits; no dispatcher sees them before, and a rollback leaves nothing
  and wakes nobody.
* **Transactional completion** (``with job.transaction() as conn:`` in a handler): the store
  opens a transaction on its database and hands its connection to the handler; at the block's
  end the job's completion, fenced by the lease token like any completion, is written in the
  same transaction, which then commits -- or, if the lease was lost, rolls back.

Only stores on a database the application can share have it (``TransactionalStore``: the
SQL family, PostgreSQL and SQLite); the others refuse with ``TransactionsUnsupportedError``,
which names the alternative (submit after commit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from jobqueue.changes import Change, Conflict
from jobqueue.errors import TransactionsUnsupportedError
from jobqueue.job import Job

Check = Callable[[Sequence[Conflict | None]], None]
"""Told the guarded writes' answers before the commit; raises to roll everything back."""


@runtime_checkable
class TransactionalStore(Protocol):
    """A store that can write inside a transaction it shares with the application."""

    def insert_in(self, connection: object, jobs: Sequence[Job]) -> list[Job]:
        """Store ``jobs`` with the caller's ``connection``, inside its open transaction;
        nothing is committed. Wakes other dispatchers only once that transaction commits."""
        ...

    async def insert_in_async(self, connection: object, jobs: Sequence[Job]) -> list[Job]:
        """``insert_in`` with an asyncio connection (or a sync one, run off the loop)."""
        ...

    def completing(self, changes: Sequence[Change], check: Check) -> AbstractContextManager[Any]:
        """A transaction on the store's database, its connection given to the caller; at the
        block's end ``changes`` are applied guarded in it, ``check`` judges the answers, and
        the transaction commits. An exception from the block or from ``check`` rolls it all
        back and propagates."""
        ...


def transactional(store: object, backend: str) -> TransactionalStore:
    """``store`` as a ``TransactionalStore``, or ``TransactionsUnsupportedError``."""
    if isinstance(store, TransactionalStore):
        return store
    raise TransactionsUnsupportedError(
        f"the {backend} backend cannot share a transaction with your database: "
        "submit the job after your transaction commits (and complete jobs the usual way, "
        "by returning from the handler); transactional submit and job.transaction() need "
        "the PostgreSQL or SQLite backend"
    )
