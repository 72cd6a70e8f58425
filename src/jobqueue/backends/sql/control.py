"""The control plane's steps (pauses, heartbeats, dispatcher records) inside one write
transaction (``Txn``).

As in ``.transitions``, nothing here commits, and the semantics are those of
``jobqueue.backends.memory``.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobqueue.backend import DispatcherInfo, LeaseStatus
from jobqueue.backends.sql.transitions import (
    Txn,
    holder,
    job_key,
)
from jobqueue.job import dumps_json


def pause(txn: Txn, name: str) -> None:
    # Claims read this table inside their own transaction, so no claim after this commit,
    # in any process, takes a job of ``name``.
    txn.conn.execute(txn.sql.PAUSE, (name,))


def resume(txn: Txn, name: str) -> None:
    txn.conn.execute(txn.sql.RESUME, (name,))
    # Its waiting jobs are claimable again: wake idle dispatchers as a submit would (this
    # process through the condition, others see the commit in the link's data_version).
    txn.work_added = True


def heartbeat(
    txn: Txn,
    info: DispatcherInfo | None,
    leases: Sequence[tuple[str, str]],
    lease_seconds: float,
) -> list[LeaseStatus]:
    """Extend the leases their tokens hold; record ``info`` as alive when given."""
    statuses = [LeaseStatus.LOST] * len(leases)
    deadline = txn.now + lease_seconds
    # In id order, as a batch of outcomes locks its rows: where writers run side by side,
    # two transactions locking the same jobs lock them in the same order (no deadlock).
    for index in sorted(range(len(leases)), key=lambda i: job_key(leases[i][0]) or 0):
        held = holder(txn, *leases[index])
        if held is None:
            continue
        txn.conn.execute(txn.sql.EXTEND, (deadline, held.key))
        statuses[index] = LeaseStatus.CANCEL if held.cancel_requested else LeaseStatus.HELD
    if info is None:
        return statuses
    # The record is replaced whole, as the reference does: the latest heartbeat is the truth.
    txn.conn.execute(
        txn.sql.UPSERT_DISPATCHER,
        (
            info.id,
            info.host,
            info.pid,
            dumps_json(list(info.names)),
            info.concurrency,
            info.started_at,
            txn.now,
            deadline,
            dumps_json([job_id for job_id, _ in leases]),
        ),
    )
    return statuses


def remove_dispatcher(txn: Txn, dispatcher_id: str) -> bool:
    return txn.conn.execute(txn.sql.REMOVE_DISPATCHER, (dispatcher_id,)).rowcount > 0


def forget_dead_dispatchers(txn: Txn) -> None:
    txn.conn.execute(txn.sql.FORGET_DISPATCHERS, (txn.now,))
