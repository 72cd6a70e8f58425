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

import redis.exceptions

from jobqueue.backends.redis.changeset import changed_ids
from jobqueue.backends.redis.codec import Arg, Command, Reply, as_text
from jobqueue.backends.redis.connection import Connection
from jobqueue.errors import ReplicationTimeoutError

ACKED = frozenset(("submit", "apply"))
"""The calls that wait for replicas: new jobs and outcomes (what a failover must not lose)."""


def acked(script: str, args: Sequence[Arg]) -> bool:
    """Whether this call waits for replicas: a submit, or an apply that writes changes. An
    apply that only claims does not (as claims never did): a claim lost in a failover only
    runs its job again, and a short ``replica_timeout`` must not refuse claims."""
    return script in ACKED and (script != "apply" or bool(changed_ids(args)))


def wait_command(replicas: int, timeout: float) -> Command | None:
    """The ``WAIT`` sent after an acknowledged call, or ``None`` when none is asked for."""
    if replicas <= 0:
        return None
    return ("WAIT", replicas, max(int(timeout * 1000), 1))


def check(
    acked: Reply, replicas: int, timeout: float, script: str, args: Sequence[Arg], reply: Reply
) -> None:
    """Raise ``ReplicationTimeoutError`` when ``WAIT`` answered fewer than ``replicas``."""
    if not isinstance(acked, (int, str, bytes)):  # WAIT answers an integer
        raise TypeError(f"WAIT answered {acked!r}")
    count = int(acked)
    if count >= replicas:
        return
    ids: tuple[str, ...] = ()
    if script == "submit" and isinstance(reply, list):
        ids = tuple(
            as_text(item[1]) for item in reply if isinstance(item, list) and as_text(item[0]) == "n"
        )
    what = f"{len(ids)} new job(s) {', '.join(ids)}" if ids else f"the {script}"
    if script == "apply":
        what = f"the apply of job {', '.join(changed_ids(args))}"
    raise ReplicationTimeoutError(
        f"{what} is stored on the Redis primary, but only {count} of {replicas} replica(s) "
        f"acknowledged it within {timeout:g} s: a failover now could lose it",
        ids,
    )


def read_pair(connection: Connection) -> tuple[Reply, Reply]:
    """The replies to a call and the WAIT sent after it. Both are read whatever the first
    says (a refusal included), so the connection stays in step; then the first refusal is
    raised."""
    replies: list[Reply] = []
    refusal: redis.exceptions.ResponseError | None = None
    for _ in (1, 2):
        try:
            replies.append(connection.read_response())
        except redis.exceptions.ResponseError as exc:
            replies.append(None)
            refusal = refusal or exc
    if refusal is not None:
        raise refusal
    return replies[0], replies[1]
