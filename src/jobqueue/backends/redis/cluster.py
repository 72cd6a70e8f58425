"""Redis Cluster resharding: which refusals mean "the namespace's slot is moving", and the key
that makes Redis refuse a call before its script runs while it moves.

Every key of a namespace shares one hash tag, so the namespace lives in one slot, and
resharding moves that slot's keys from one node to another (``CLUSTER SETSLOT ... MIGRATING``
/ ``IMPORTING``, then ``MIGRATE``, a batch of keys at a time). A script touching a key that
has already left gets "Script attempted to access a non local key in a cluster node", raised
at that command: whatever the script wrote before stays. So every call declares, beside the
id counter, :data:`GUARD`, a key that never exists: while the slot migrates, the source node
answers a command with a missing declared key by ``ASK`` (or ``TRYAGAIN``) and the target
node answers ``TRYAGAIN`` to a multi-key command that lacks one -- the script does not run
on either, so no call is applied half. Once the slot has moved, ``MOVED`` sends the client to
the new owner. All of these are retryable: the backend reports them as
``BackendUnavailableError``.
"""

from __future__ import annotations

import redis

from jobqueue.errors import BackendUnavailableError

GUARD = "slot-guard"
"""The name (after the namespace's prefix) of the key every call declares and none writes."""

# Redirections and cluster states (redis-py's classes) that pass once the slot has moved or
# the cluster has healed. SlotNotCoveredError is no RedisError: listed so it is caught too.
REFUSALS: tuple[type[Exception], ...] = (
    redis.exceptions.AskError,  # MovedError too (a subclass)
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterError,  # ClusterDownError, MasterDownError, "TTL exhausted"
    redis.exceptions.SlotNotCoveredError,
)

# The same refusals raised inside a script: the text Redis gives them there.
_SCRIPT_TEXTS = ("non local key", "cluster is down")
# ... or their error codes, where a client did not parse them into the classes above.
_CODES = ("MOVED ", "ASK ", "TRYAGAIN ", "CLUSTERDOWN ", "MASTERDOWN ")


def is_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis Cluster refusing a call while a slot moves or the cluster is
    down (retryable), rather than refusing the call itself."""
    if isinstance(exc, REFUSALS):
        return True
    if not isinstance(exc, redis.exceptions.ResponseError):
        return False
    text = str(exc)
    return text.startswith(_CODES) or any(part in text for part in _SCRIPT_TEXTS)


def cluster_refused(exc: BaseException) -> BackendUnavailableError:
    """The error a Redis Cluster refusal (:func:`is_refusal`) is reported as."""
    return BackendUnavailableError(
        "Redis Cluster refused the call while the namespace's slot moves to another node or "
        f"the cluster is down ({type(exc).__name__}: {exc}); retry shortly. A write may or "
        "may not have been applied (a unique_key makes a resubmit safe)"
    )
