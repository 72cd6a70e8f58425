"""The control-plane transitions (cancel, retry, purge, pause, heartbeats, dispatcher records)
as steps inside one write transaction (``Txn``), and the reads that go with them.

As in ``.transitions``, nothing here commits, and the semantics are those of
``jobqueue.backends.memory``.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobqueue import lifecycle
from jobqueue.backend import DispatcherInfo, LeaseStatus
from jobqueue.backends.sql.transitions import (
    Held,
    Txn,
    delete,
    holder,
    job_key,
    key_holder,
    repeated,
    write,
)
from jobqueue.job import JobError, JobState, dumps_json


def _row_of(txn: Txn, job_id: str, statement: str) -> tuple[int, Sequence[object]] | None:
    """The job's row key and the row ``statement`` reads for it, or ``None``: no such job."""
    key = job_key(job_id)
    if key is None:
        return None
    row = txn.conn.execute(statement, (key,)).fetchone()
    return None if row is None else (key, row)


def cancel(txn: Txn, job_id: str) -> JobState | None:
    """As ``lifecycle.on_cancel`` decides: waiting or delayed: cancelled now (leaving the live
    states frees the unique key: the partial index lists only those); active: flagged for its
    holder; finished: as is."""
    found = _row_of(txn, job_id, txn.sql.CANCEL_STATE)
    if found is None:
        return None
    key, row = found
    job = Held.at_rest(key, JobState(row[0]), bool(row[1]))
    change = lifecycle.on_cancel(job)
    return job.state if change is None else write(txn, job, change)


def finish_cancelled(txn: Txn, job_id: str, token: str, error: JobError | None) -> bool:
    held = holder(txn, job_id, token)
    if held is None:
        return repeated(txn, job_id, token, "finish_cancelled") is not None
    write(txn, held, lifecycle.on_cancelled(held, token, error, txn.now))
    return True


def retry(txn: Txn, job_id: str) -> bool:
    """``lifecycle.on_retry`` written; ``False`` if there is no such job. Raises
    ``JobStateError`` for another state or a unique key another live job holds."""
    found = _row_of(txn, job_id, txn.sql.RETRY_STATE)
    if found is None:
        return False
    key, row = found
    job = Held.at_rest(key, JobState(row[0]))
    change = lifecycle.on_retry(job, txn.now)  # raises if not retriable
    unique_key = None if row[1] is None else str(row[1])
    other = key_holder(txn, key, unique_key)
    if other is not None:
        raise lifecycle.unique_key_taken(job_id, other, str(unique_key))
    write(txn, job, change)
    return True


def retry_many(txn: Txn, state: JobState, name: str | None) -> int:
    if state not in lifecycle.RETRIABLE:
        return 0
    # In finishing order, as the reference: of two jobs with one unique key, the first wins
    # (the key holder is looked up after the earlier ones came back).
    rows = txn.conn.execute(txn.sql.FINISHED_OF, (state.value, name, name)).fetchall()
    retried = 0
    for key, unique_key in rows:
        if key_holder(txn, key, unique_key) is None:
            job = Held.at_rest(key, state)
            write(txn, job, lifecycle.on_retry(job, txn.now))
            retried += 1
    return retried


def promote(txn: Txn, job_id: str) -> bool:
    """A delayed job to waiting now, at the end of its line; ``False`` if there is no such
    job. Raises ``JobStateError`` for a job in another state."""
    found = _row_of(txn, job_id, txn.sql.JOB_STATE)
    if found is None:
        return False
    key, row = found
    job = Held.at_rest(key, JobState(row[0]))
    # A new seq and work_added: idle dispatchers wake.
    write(txn, job, lifecycle.on_promote(job))
    return True


def cancel_many(txn: Txn, state: JobState, name: str | None) -> int:
    """``lifecycle.on_cancel`` for every job in ``state`` (of ``name``, when given), written
    in bulk: waiting or delayed ones cancelled in the order they would have run, active ones
    flagged for their holders. Returns how many changed."""
    params = () if name is None else (name,)
    change = lifecycle.on_cancel(Held.at_rest(0, state))  # what a job in this state becomes
    if change is None:
        return 0
    if change.to is JobState.ACTIVE:
        return txn.conn.execute(txn.sql.request_cancel(name is not None), params).rowcount
    # In the orders of the partial indexes jobqueue_waiting and jobqueue_delayed.
    keys = [
        key for (key,) in txn.conn.execute(txn.sql.cancellable(state, name is not None), params)
    ]
    if keys:
        # What ``finish`` writes for a job without a lease, one statement for the lot; each
        # gets its own seq, so retention removes them in this order. Leaving the live states
        # frees their unique keys (the partial index lists only those).
        first = txn.next_seq(len(keys))
        txn.conn.executemany(
            txn.sql.CANCEL_NOW,
            [(txn.now, first + n, key) for n, key in enumerate(keys)],
        )
        txn.changed = True
    return len(keys)


def purge(txn: Txn, state: JobState, name: str | None, finished_before: float | None) -> int:
    if not state.is_finished:
        return 0
    rows = txn.conn.execute(
        txn.sql.PURGEABLE,
        (state.value, name, name, finished_before, finished_before),
    ).fetchall()
    return delete(txn, [key for (key,) in rows])


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
    statuses = []
    deadline = txn.now + lease_seconds
    for job_id, token in leases:
        held = holder(txn, job_id, token)
        if held is None:
            statuses.append(LeaseStatus.LOST)
            continue
        txn.conn.execute(txn.sql.EXTEND, (deadline, held.key))
        statuses.append(LeaseStatus.CANCEL if held.cancel_requested else LeaseStatus.HELD)
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
