"""Replica acknowledgement (``?replicas=N&replica_timeout=SECONDS``): a submit or an outcome
is answered only once N replicas hold it, so a failover to one of them cannot lose it.

Redis replicates asynchronously: a primary that dies loses what its replicas had not copied
yet -- acknowledged submits and finished jobs (which then run again). With ``replicas=N``
each such call is followed, on the same connection and in the same send, by ``WAIT N
TIMEOUT``: Redis answers it once N replicas have acknowledged everything this connection
wrote, or at the timeout with how many did. Fewer than N raises
:class:`~jobqueue.errors.ReplicationTimeoutError`: the write is on the primary, not yet safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.exceptions

from jobqueue.backends.redis.codec import as_text
from jobqueue.errors import ReplicationTimeoutError

ACKED = frozenset(("submit", "complete", "fail", "finish_many", "finish_cancelled"))
"""The calls that wait for replicas: new jobs and outcomes (what a failover must not lose)."""


def wait_command(replicas: int, timeout: float) -> tuple[Any, ...] | None:
    """The ``WAIT`` sent after an acknowledged call, or ``None`` when none is asked for."""
    if replicas <= 0:
        return None
    return ("WAIT", replicas, max(int(timeout * 1000), 1))


def check(
    acked: Any, replicas: int, timeout: float, script: str, args: Sequence[Any], reply: Any
) -> None:
    """Raise ``ReplicationTimeoutError`` when ``WAIT`` answered fewer than ``replicas``."""
    count = int(acked)
    if count >= replicas:
        return
    ids: tuple[str, ...] = ()
    if script == "submit" and isinstance(reply, list):
        ids = tuple(as_text(item[1]) for item in reply if as_text(item[0]) == "n")
    what = f"{len(ids)} new job(s) {', '.join(ids)}" if ids else f"the {script}"
    if script in ("complete", "fail", "finish_cancelled"):
        what = f"the {script} of job {as_text(args[0])}"
    raise ReplicationTimeoutError(
        f"{what} is stored on the Redis primary, but only {count} of {replicas} replica(s) "
        f"acknowledged it within {timeout:g} s: a failover now could lose it",
        ids,
    )


def read_pair(connection: Any) -> tuple[Any, Any]:
    """The replies to a call and the WAIT sent after it. Both are read whatever the first
    says (a refusal included), so the connection stays in step; then a refusal is raised."""
    replies: list[Any] = []
    for _ in (1, 2):
        try:
            replies.append(connection.read_response())
        except redis.exceptions.ResponseError as exc:
            replies.append(exc)
    for reply in replies:
        if isinstance(reply, redis.exceptions.ResponseError):
            raise reply
    return replies[0], replies[1]
