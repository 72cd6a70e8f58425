"""Flows (``queue.submit_flow``) in the SQL family: a batch whose jobs name each other, and a
dependency's outcome handed to a dependent (``Change.deliver``), as steps inside one write
transaction (``Txn``).

A job of no flow never comes here: its insert and its moves leave the flow columns out (they
stay NULL), so flows cost the hot paths nothing. Nothing here decides a rule either: the core
builds both directions of every edge and decides every move; the store translates a batch's
``"@k"`` references into the ids its jobs get, and moves a dependent out of BLOCKED only when
every dependency has delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from jobqueue import lifecycle
from jobqueue.backends.sql import reads
from jobqueue.backends.sql.rows import (
    SQLValue,
    batch_position,
    edges_json,
    loads_column,
    outcomes_json,
)
from jobqueue.backends.sql.transitions import Held, Txn, job_key, write
from jobqueue.changes import Change, Conflict, Delivery
from jobqueue.dependency import Dependency
from jobqueue.errors import CorruptJobError
from jobqueue.job import JSON, Job, JobState


def has_flow(jobs: Sequence[Job]) -> bool:
    """Whether an ``insert`` of ``jobs`` is a flow's (``store_flow``, not the bulk paths).
    On every submit: a plain loop (no generator, no call a job)."""
    for job in jobs:
        if job.flow_id is not None or job.depends_on or job.dependents or job.dependency_outcomes:
            return True
    return False


def store_flow(txn: Txn, jobs: Sequence[Job], rows: Sequence[tuple[SQLValue, ...]]) -> list[Job]:
    """``transitions.store_jobs`` for a batch with jobs of a flow, in the caller's one
    transaction: first every job's id (a job whose unique key a live job, or an earlier job
    of the batch, holds gets that job's), then each ``"@k"`` replaced by the k-th job's id,
    then the rows; a job with ``depends_on`` is stored BLOCKED."""
    # Per job: the live job already holding its key, the place in the batch of the earlier
    # job that takes it, or None: stored here, with a new id.
    held: list[Job | int | None] = []
    batch_ids: list[str] = []
    keys: dict[str, int] = {}  # unique keys taken by jobs of this batch: their places
    for place, job in enumerate(jobs):
        holder: Job | int | None = None
        if job.unique_key is not None:
            holder = keys.get(job.unique_key)
            if holder is None:
                existing = txn.conn.execute(txn.sql.LIVE_WITH_KEY, (job.unique_key,)).fetchone()
                if existing is not None:
                    holder = reads.load_job(txn, existing)
                else:
                    keys[job.unique_key] = place
        held.append(holder)
        if holder is None:
            batch_ids.append(str(txn.next_job_id()))
        else:
            batch_ids.append(batch_ids[holder] if isinstance(holder, int) else holder.id)
    pending: list[tuple[SQLValue, ...]] = []
    logs: list[tuple[int, float, str]] = []
    answer: list[Job] = []
    for job, row, job_id, holder in zip(jobs, rows, batch_ids, held, strict=True):
        if holder is not None:
            found = answer[holder] if isinstance(holder, int) else holder
            answer.append(replace(found, deduplicated=True))
            continue
        resolved = resolve(job, batch_ids)
        state = (
            JobState.BLOCKED if resolved.depends_on else lifecycle.due_state(job.run_at, txn.now)
        )
        key = int(job_id)
        pending.append(
            (key, row[1], state.value, row[3], txn.next_seq(), *row[5:], *flow_columns(resolved))
        )
        logs.extend((key, log.at, log.message) for log in job.logs)
        answer.append(replace(resolved, id=job_id, state=state, logs=list(job.logs)))
    if pending:
        txn.conn.executemany(txn.sql.INSERT_FLOW_JOB, pending)
    if logs:
        txn.conn.executemany(txn.sql.INSERT_LOG, logs)
    txn.work_added = True
    return answer


def resolve(job: Job, batch_ids: Sequence[str]) -> Job:
    """``job`` with every ``"@k"`` of its flow id and edges replaced by ``batch_ids[k]``."""

    def resolved(reference: str) -> str:
        position = batch_position(reference)
        return reference if position is None else batch_ids[position]

    def edges(found: Sequence[Dependency]) -> tuple[Dependency, ...]:
        return tuple(edge._replace(job_id=resolved(edge.job_id)) for edge in found)

    return replace(
        job,
        flow_id=None if job.flow_id is None else resolved(job.flow_id),
        depends_on=edges(job.depends_on),
        dependents=edges(job.dependents),
    )


def flow_columns(job: Job) -> tuple[SQLValue, ...]:
    """``job``'s values of ``rows.FLOW_COLUMNS``, in order."""
    return (
        job.flow_id,
        edges_json(job.depends_on),
        edges_json(job.dependents),
        outcomes_json(job.dependency_outcomes),
    )


def deliver(
    txn: Txn, row: Held, change: Change, delivery: Delivery, result: str | None
) -> Conflict | None:
    """Write ``change``, whose own guard holds, with its delivery (``Delivery``): ``None``
    when written (also when its job stays BLOCKED), else the conflict of a giving job that
    is gone or not in ``delivery.states``. The caller sent the batch's earlier moves first:
    a giver completed earlier in the same ``apply`` is seen completed."""
    giver = job_key(delivery.from_id)
    found = None if giver is None else txn.conn.execute(txn.sql.JOB_STATE, (giver,)).fetchone()
    if found is None or found[0] not in {state.value for state in delivery.states}:
        return Conflict(row.state, cancel_requested=row.cancel_requested)
    run_at, depends_on, stored = txn.conn.execute(txn.sql.DELIVERY_ROW, (row.key,)).fetchone()
    outcomes = _outcomes(row.key, stored)
    outcomes[delivery.from_id] = dict(delivery.outcome)
    encoded = outcomes_json(outcomes)
    if change.to is JobState.WAITING:
        needed = {edge[0] for edge in _edges(row.key, depends_on)}
        if not needed.issubset(outcomes):
            txn.flush_moves()
            txn.conn.execute(txn.sql.SET_OUTCOMES, (encoded, row.key))
            return None  # still waiting for another dependency: it stays BLOCKED
        # Every dependency delivered: waiting, or delayed until its run_at, as insert decides.
        change = change._replace(to=lifecycle.due_state(run_at, txn.now))
    write(txn, row, change, result)
    txn.conn.execute(txn.sql.SET_OUTCOMES, (encoded, row.key))
    return None


def _outcomes(key: int, text: object) -> dict[str, JSON]:
    if text is None:
        return {}
    raw = loads_column(text, "dependency_outcomes")
    if not isinstance(raw, dict):
        raise CorruptJobError(f"job {key}: column 'dependency_outcomes' is not a JSON object")
    return raw


def _edges(key: int, text: object) -> list[list[JSON]]:
    if text is None:
        return []
    raw = loads_column(text, "depends_on")
    if not isinstance(raw, list) or not all(isinstance(e, list) and e for e in raw):
        raise CorruptJobError(f"job {key}: column 'depends_on' is not a list of edges")
    return raw
