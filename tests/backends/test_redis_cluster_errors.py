"""Redis Cluster refusals are retryable: how translate_errors reports each (no cluster needed;
test_redis_cluster.py moves a real slot and sees the same)."""

from __future__ import annotations

import pytest
import redis

from jobqueue.backends.redis.connection import translate_errors
from jobqueue.errors import BackendError, BackendUnavailableError

# The texts a real migrating cluster gave (Redis 7.0), and redis-py's parsed classes.
REFUSALS = [
    redis.exceptions.ResponseError(
        "Script attempted to access a non local key in a cluster node script: f3f7..., on "
        "@user_script:345."
    ),
    redis.exceptions.ResponseError(
        "Script attempted to execute a command while the cluster is down script: f3f7..."
    ),
    redis.exceptions.ResponseError("ERR Script attempted to access a non local key"),
    redis.exceptions.MovedError("13513 127.0.0.1:34989"),
    redis.exceptions.AskError("13513 127.0.0.1:34989"),
    redis.exceptions.TryAgainError("Multiple keys request during rehashing of slot"),
    redis.exceptions.ClusterDownError("The cluster is down"),
    redis.exceptions.MasterDownError("Link with MASTER is down"),
    redis.exceptions.ClusterError("TTL exhausted."),
    redis.exceptions.SlotNotCoveredError("Command # 1 (EVALSHA) slot 13513 is not covered"),
    redis.exceptions.ResponseError("MOVED 13513 127.0.0.1:34989"),
    redis.exceptions.ResponseError("TRYAGAIN Multiple keys request during rehashing of slot"),
    redis.exceptions.ResponseError("CLUSTERDOWN Hash slot not served"),
]


@pytest.mark.parametrize("exc", REFUSALS, ids=lambda exc: f"{type(exc).__name__}:{exc}"[:40])
def test_a_cluster_refusal_is_retryable(exc: Exception) -> None:
    with pytest.raises(BackendUnavailableError, match="slot moves") as raised, translate_errors():
        raise exc
    assert raised.value.__cause__ is exc
    assert "may or may not have been applied" in str(raised.value)


@pytest.mark.parametrize(
    "exc",
    [
        redis.exceptions.ResponseError("ERR unknown command 'FCALL'"),
        redis.exceptions.ResponseError("WRONGTYPE Operation against a key"),
        redis.exceptions.ClusterCrossSlotError("Keys in request don't hash to the same slot"),
        redis.exceptions.ResponseError("ERR task 'ASK me' failed"),
    ],
)
def test_other_refusals_stay_plain_backend_errors(exc: Exception) -> None:
    with pytest.raises(BackendError) as raised, translate_errors():
        raise exc
    assert not isinstance(raised.value, BackendUnavailableError)
