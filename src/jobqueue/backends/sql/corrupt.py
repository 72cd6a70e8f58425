"""Records the claim cannot hand out: a row that does not decode, or whose sort keys are not
integers (text and blobs sort before every number in SQLite, so such a row would be the head
of its name for good). They are failed as corrupt, as ``lifecycle.on_corrupt`` decides, with
the reason in the same words as ``CorruptJobError``: never hand a dispatcher what it cannot
decode, and never crash it; the claim goes on to the next job.
"""

from __future__ import annotations

from jobqueue import lifecycle
from jobqueue.backends.sql.transitions import Held, Txn, write
from jobqueue.job import JobError, JobState


def sql_type(value: object) -> str:
    """The storage type of a value read back, in SQLite's words (``typeof``)."""
    if value is None:
        return "null"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "text"
    return "blob"


def describe(column: str, value: object, expected: str) -> str:
    """``column 'priority' holds text 'high', not integer`` (the value cut short)."""
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"column {column!r} holds {sql_type(value)} {shown}, not {expected}"


def sort_key_problem(priority: object, seq: object) -> str | None:
    """Why a waiting row's ``priority``/``seq`` cannot be ordered (``None`` when they can)."""
    for column, value in (("priority", priority), ("seq", seq)):
        if type(value) is not int:
            return describe(column, value, "integer")
    return None


def corrupt_error(key: int, reason: str) -> JobError:
    """The error of a job failed as corrupt (``lifecycle.corrupt_error``)."""
    return lifecycle.corrupt_error(str(key), reason)


def fail_corrupt(txn: Txn, key: int, reason: str) -> None:
    """Fail a job the claim cannot hand out, as ``lifecycle.on_corrupt`` decides."""
    txn.log.error("failing job %s: its stored record cannot be decoded: %s", key, reason)
    job = Held.at_rest(key, JobState.ACTIVE)
    write(txn, job, lifecycle.on_corrupt(str(key), reason))


def waiting_head(txn: Txn, name: str) -> tuple[int, int, int] | None:
    """``(priority, seq, id)`` of the waiting job of ``name`` a claim takes next; a row whose
    sort keys are not integers is failed as corrupt on the way (in SQLite, since migration 9,
    only a file written with its CHECKs switched off can hold one)."""
    while True:
        row = txn.conn.execute(txn.sql.WAITING_HEAD, (name,)).fetchone()
        problem = None if row is None else sort_key_problem(row[0], row[1])
        if problem is None:
            return None if row is None else (row[0], row[1], row[2])
        fail_corrupt(txn, row[2], problem)


def waiting_heads(txn: Txn, name: str, count: int) -> list[tuple[int, int, int]]:
    """The first ``count`` waiting jobs of ``name`` as ``waiting_head`` reads one (in run
    order, corrupt sort keys failed on the way): a batch claim's heads in one read."""
    while True:
        rows = txn.conn.execute(txn.sql.WAITING_HEADS, (name, count)).fetchall()
        corrupt = [
            (row[2], problem) for row in rows if (problem := sort_key_problem(row[0], row[1]))
        ]
        if not corrupt:
            return [(row[0], row[1], row[2]) for row in rows]
        for key, problem in corrupt:
            fail_corrupt(txn, key, problem)
