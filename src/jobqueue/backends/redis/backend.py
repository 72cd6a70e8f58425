"""Redis backend: every state change is one Lua call -- on Redis 7 a function of the library
``scripts.load_library`` builds (``FCALL``, loaded once per server), else a script called by SHA.

Layout (``P`` = ``jq:{namespace}:``; the braces are a Redis Cluster hash tag, so every key of
a namespace lives on one shard and the scripts run unchanged on a cluster):

=================  ==========================================================================
``P j:ID``         hash, one per job (short field names, see ``_lib.lua``)
``P l:ID``         list of log lines (only for jobs that log)
``P r:NAME:PRIO``  list of waiting job ids per worker name and priority, in enqueue order
``P R:NAME``       zset of the priority levels of NAME that have waiting jobs
``P d``            zset of delayed jobs by run_at
``P a``            zset of active jobs by lease deadline
``P c`` / ``P f``  zsets of completed / failed jobs by finishing order (retention)
``P x``            zset of cancelled jobs by finishing order (retention)
``P paused``       set of paused worker names (claims skip them; submits wake nobody)
``P dispatchers``  zset of dispatcher ids by record expiry (last heartbeat + lease)
``P dispatcher:ID`` hash: ``i`` the dispatcher's record JSON, ``l`` its last heartbeat
``P u``            hash unique key -> live job id;  ``P ac``  hash name -> active count
``P w:NAME``       idle waiters' tokens per worker name (see ``signal`` in ``_lib.lua``)
``P W``            hash token -> an idle waiter's record;  ``P h:TOKEN``  its inbox (BLPOP)
``P x:ID``         finish wake-ups (``wait_for_finish``)
``P id`` / ``P q`` counters (job ids, enqueue sequence);  ``P N``  set of worker names
``P n:NAME``       hash state letter -> jobs of NAME in that state (no field at zero)
``P nc``           set when the namespace's first job was stored: all its jobs are in ``n:``
``P o:MINUTE``     hash outcome letter -> attempts that ended in that minute (expires)
``P schedules``    set of periodic schedules' names (``claim_tick``, see ``claim_tick.lua``)
``P S:NAME``       hash: one schedule's record (high-water mark, last job, counters)
``P T:NAME``       list of one schedule's recent ticks, newest first (LTRIM-bounded)
``P stalled``      list of ids recovered from expired leases, until ``maintain`` reports them
=================  ==========================================================================

Waiting jobs sit in lists, not one sorted set, because a list entry costs a few bytes where a
sorted-set entry costs ~100: claiming pops the head of the highest non-empty priority level;
only removing a waiting job scans its list. Priorities lie in ``[-1_000_000, 1_000_000]``.
``P i:LANE`` (string, 120 s TTL) remembers which ids a lane's last submit call stored (see
below): one key per lane in use, not one per call.

Clock. Lease deadlines, due times, retention ages and finish times are measured on the Redis
server's clock (``TIME`` inside the scripts), so dispatchers on hosts whose clocks disagree
still agree on whose lease is live: a host running 60 s ahead cannot take a live lease. The
client sends durations instead of instants -- a lease length (claims, renewals, heartbeats),
a retry's delay, a submit's delay (``run_at`` minus the client's now), a retention age or
purge's ``finished_before`` as its age -- and the script adds them to the server's now. A
delay therefore lands where it was meant even from a skewed client; only instants that are
pure records (``created_at``, a log line's time) carry the client's clock. The returned
``Claim.lease_expires_at`` is the client's estimate (its own now plus the lease), which is
what its dispatcher compares with its own clock.
Tests move time by injecting ``BackendOptions.clock``: with any clock but ``time.time`` (or
``server_clock=False``) the client's clock is passed to the scripts as "now" instead, exactly
as before. ``server_clock=True`` forces the server's clock whatever ``options.clock`` says.

maxmemory. Every script but submit carries ``#!lua flags=allow-oom`` (its function the same
flag; the read-only ones ``no-writes`` too): a full server (policy
``noeviction``) refuses new jobs with :class:`~jobqueue.errors.BackendFullError` and stores
nothing, while running jobs still renew, report progress, log and finish. A policy that can
evict keys (``allkeys-*``, ``volatile-*``: job keys would vanish, and the finish wake-ups and
submit idempotency keys have TTLs) is warned about once, at first use.

Lost replies. A command whose reply is lost (the connection dropped after sending) may have
been applied. It is sent once more, marked as a repeat (header ``ARGV[8]``), and every
transition answers a repeat with what its first run did: complete, fail, release and
finish_cancelled look at the token the finished lease leaves in the job hash (field ``k``,
with ``K`` naming which call ended it);
heartbeat, renew, cancel, pause and resume (of names and of schedules) change nothing more
when run twice; idle (an idle waiter's look) claims what its first run claimed, and its
registration made twice is withdrawn whole; unidle looks up the job a lost first run took
from the inbox by the waiter's token; remove_schedule's second run finds nothing and says
so; a retry (or promote) finding the job back in line reports it done (retry_many,
cancel_many and purge go on with the next batch, only the first run's count is lost); a
claim hands out the job its token already holds; submit finds its call's number in its
lane's idempotency key (checked on every submit, so redis-py's own unmarked resends -- Redis
Cluster, asyncio -- cannot store twice either). A lane (``Lanes``) is a sequence of submit
calls never two in flight at once: each call (each batch of up to 500 jobs of a
``submit_many``) takes the next number of a lane it holds for its duration, taken from a
per-backend pool and given back, so threads and concurrent asyncio tasks never share one;
``P i:LANE`` keeps the lane's last number and what that call stored, and a copy of an older
call stores nothing; claim_tick finds its call's id in the schedule's record with the high-
water mark at its tick, and answers what its first run did (the job it stored included),
marked or not.
Only ``log`` (a line would be added twice) and ``watch`` (a waiter counted twice) are never
resent; their error goes to the caller. A deliberate (unmarked) second call with a finished
lease's token takes the same path, as the backend contract requires: it reports the stored
outcome, except that a repeated ``complete`` makes no claim (only a marked resend gets the
claim its first run made); a different call with that token is refused.

Redis Cluster: pass ``?cluster=true`` in the URL (``redis://host:7000/?cluster=true``) or hand
a ``redis.cluster.RedisCluster`` client to :class:`RedisBackend` directly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis
import redis.cluster
import redis.exceptions

from jobqueue import policy as rules
from jobqueue.backend import (
    BackendOptions,
    Claim,
    DispatcherInfo,
    LeaseStatus,
    Outcome,
    WorkSpec,
)
from jobqueue.backends.redis import replication, sentinel
from jobqueue.backends.redis.cluster import GUARD, cluster_refused, is_refusal
from jobqueue.backends.redis.cluster import REFUSALS as CLUSTER_REFUSALS
from jobqueue.backends.redis.codec import (
    STATE_CODES,
    STATES,
    as_text,
    decode_job,
    encode_new_job,
    exact_number,
    state_refusal,
    unreadable_row,
)
from jobqueue.backends.redis.eviction import cannot_check, pop_check_eviction, warn_if_evicting
from jobqueue.backends.redis.foreign import decode_claim
from jobqueue.backends.redis.operations import OperatorCalls
from jobqueue.backends.redis.schedules import ScheduleCalls
from jobqueue.backends.redis.scripts import load_library, load_scripts
from jobqueue.backends.redis.url import SentinelSpec, parse_redis_url, safe_url
from jobqueue.errors import (
    BackendError,
    BackendFullError,
    BackendUnavailableError,
    ConfigurationError,
    CorruptJobError,
    InvalidURLError,
    JobStateError,
    LeaseLostError,
    TLSVerificationError,
)
from jobqueue.job import (
    JSON,
    MAX_HISTORY,
    MAX_LOG_MESSAGE,
    MAX_LOGS,
    Job,
    JobError,
    JobState,
    dumps_json,
)

_pack_command: Callable[[tuple[Any, ...]], bytes] | None
try:  # the optional C packer (the hiredis extra): redis-py's own wrapper costs ~4 us a call
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover - hiredis is installed for the tests
    _pack_command = None

log = logging.getLogger("jobqueue.backends.redis")

DEFAULT_NAMESPACE = "jobqueue"
# Sends of one call at most: a first call to a server without Functions or shebangs (Redis 6)
# goes as FCALL (unknown), EVALSHA (NOSCRIPT; the load refuses the shebang), EVALSHA again
# (NOSCRIPT) and then runs.
CALL_ATTEMPTS = 4
_SUBMIT_BATCH = 500  # jobs per submit script call: keeps each call short for the server
_MAX_BLOCK = 20.0  # longest single blocking call; must stay below the socket timeout
_SOCKET_TIMEOUT = 30.0
_MAX_BATCH = 1000  # claims per finish_many call
# Scripts never sent twice: a repeat of these would apply twice (a log line, a waiter count).
_NOT_REPEATABLE = frozenset({"log", "watch"})

RedisClient = Any  # redis.Redis or redis.cluster.RedisCluster (their stubs share no base)


class RedisBackend(OperatorCalls, ScheduleCalls):
    """The Backend protocol on Redis (``redis://``, ``rediss://``); the operator's calls
    (``promote``, ``cancel_many``, ``outcome_counts``) come from ``.operations``, the
    periodic schedules' (``claim_tick`` and the schedule reads) from ``.schedules``."""

    def __init__(
        self,
        client: RedisClient,
        options: BackendOptions | None = None,
        *,
        namespace: str | None = None,
        server_clock: bool | None = None,
    ) -> None:
        self.options = options or BackendOptions()
        self.server_clock = (
            self.options.clock is time.time if server_clock is None else server_clock
        )
        """Whether "now" is the Redis server's clock (see the module docstring)."""
        ns = (
            namespace
            or self.options.namespace
            or os.environ.get("JOBQUEUE_NAMESPACE")
            or DEFAULT_NAMESPACE
        )
        if not ns or any(c in ns for c in "{}"):
            raise ConfigurationError(f"Redis namespace must be non-empty without braces: {ns!r}")
        self.namespace = ns
        self._client = client
        self.url: str | None = None
        """The URL this backend was opened from (``from_url``), for opening sibling clients
        such as the asyncio one; ``None`` when a client was handed in."""
        self._prefix = f"jq:{{{ns}}}:"
        # KEYS: the id counter routes each script to the right shard; the guard, which never
        # exists, makes Redis Cluster refuse a call while the slot migrates (see cluster.py).
        self._route = (self._prefix + "id", self._prefix + GUARD)
        self._block_slice = block_slice(client)
        self._connections = threading.local() if isinstance(client, redis.Redis) else None
        self._primary_watch = sentinel.watch_for(client)
        if self._primary_watch is not None:
            self._block_slice = min(self._block_slice, sentinel.BLOCK_SLICE)
        self._scripts = load_scripts()
        self._sha = {name: script.sha for name, script in self._scripts.items()}
        self._library = load_library()
        self.functions = not isinstance(client, redis.cluster.RedisCluster)
        """Whether calls go to the Redis Function library (``FCALL``) rather than scripts
        (``EVALSHA``): until the server shows it has no Functions (Redis < 7) or refuses the
        library. A cluster client keeps scripts: redis-py would ask a node for the keys of
        every FCALL (``COMMAND GETKEYS``), a round trip more per call."""
        self.policy_checked = False
        """Whether the server's eviction policy was looked at (once, at first use)."""
        self.check_eviction = True
        """Whether to look at it: ``?check_eviction=false`` spares an ACL user the denied
        ``CONFIG GET`` (and the ACL LOG entry it leaves); see ``eviction.py``."""
        policy = self.options.retention
        self._counts = (
            -1 if policy.completed_count is None else policy.completed_count,
            -1 if policy.failed_count is None else policy.failed_count,
        )
        # The scripts that read the policy tail (see _lib.lua) get it; others are spared it.
        self._tail_scripts = frozenset(
            name for name, script in self._scripts.items() if script.tail
        )
        self._stall_text = _stall_error_template()
        # The header after "now", and the policy tail: fixed for the backend's life (the
        # options are frozen), so built once rather than per call.
        self._header_policy = (
            self.options.max_stalls,
            "" if policy.completed_seconds is None else exact_number(policy.completed_seconds),
            self._counts[0],
            "" if policy.failed_seconds is None else exact_number(policy.failed_seconds),
            self._counts[1],
        )
        self._tail = self._policy_tail()
        self.lanes = Lanes()
        """The submit calls' idempotency lanes (shared with the asyncio twin)."""
        self.replicas = 0
        """How many replicas must acknowledge each submit and outcome (``replication``)."""
        self.replica_timeout = 1.0
        self.wait_command: tuple[Any, ...] | None = None
        if self.options.replicas:
            self.require_replicas(self.options.replicas, self.options.replica_timeout)

    @property
    def client(self) -> RedisClient:
        """The redis-py client (``Redis`` or ``RedisCluster``) this backend talks through."""
        return self._client

    @classmethod
    def from_url(cls, url: str, options: BackendOptions) -> RedisBackend:
        """``redis://[:password@]host[:port][/db][?namespace=NS&cluster=true]``, ``rediss://``
        for TLS. redis-py's own query parameters (``socket_timeout``, ``ssl_cert_reqs``,
        ``ssl_ca_certs``, …) are passed on; anything else is refused (``InvalidURLError``)."""
        target = parse_url(url, options)
        client: RedisClient
        try:
            if target.cluster:
                client = redis.cluster.RedisCluster.from_url(target.url, **target.settings)
            elif target.sentinel is not None:
                client = sentinel.open_client(target.sentinel, target.url, target.settings)
            else:
                client = redis.Redis.from_url(target.url, **target.settings)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise BackendUnavailableError(f"cannot reach Redis at {safe_url(url)}: {exc}") from exc
        except (ValueError, TypeError, redis.exceptions.RedisError) as exc:
            raise InvalidURLError(f"bad Redis URL {safe_url(url)}: {exc}") from exc
        backend = cls(client, options, namespace=target.namespace)
        backend.url = url
        _, backend.check_eviction = pop_check_eviction(url)
        if target.replicas:  # the URL's say wins over the options'
            backend.require_replicas(target.replicas, target.replica_timeout)
        return backend

    def require_replicas(self, replicas: int, timeout: float) -> None:
        """Make submits and outcomes wait until ``replicas`` replicas hold them, for at most
        ``timeout`` seconds (``ReplicationTimeoutError`` then); 0 turns it off."""
        if replicas and self._connections is None:
            raise ConfigurationError("replica acknowledgement needs a plain (non-cluster) client")
        self.replicas, self.replica_timeout = replicas, timeout
        self.wait_command = replication.wait_command(replicas, timeout)

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, job: Job) -> Job:
        return self.submit_many([job])[0]

    def submit_many(self, jobs: Sequence[Job]) -> list[Job]:
        out: list[Job] = []
        lane = self.lanes.take()
        try:
            calls = submit_batches(jobs, self.time_arg, lane)
            if self._connections is None or len(jobs) <= _SUBMIT_BATCH or self.replicas:
                for batch, args in calls:
                    out += submitted_jobs(batch, self._run("submit", args))
            else:
                out = self._submit_overlapped(calls)
        finally:
            self.lanes.give(lane)
        return out

    def _submit_overlapped(self, calls: Iterator[tuple[Sequence[Job], list[Any]]]) -> list[Job]:
        """The batches of a large submit on this thread's connection, each one's arguments
        built and packed while Redis stores the one before, and the next sent before this
        one's reply is turned into jobs. Calls of one lane are still never in flight at
        once: a batch is sent only once the previous reply was read. Anything unusual about
        a batch (a dropped connection, the library missing, a refusal) sends it again the
        ordinary way (``_run``), which its lane number makes safe: a batch stored already is
        answered from the lane's record."""
        if not self.policy_checked:
            self.check_memory_policy()
        connection = self._held_connection()
        out: list[Job] = []
        pending: tuple[Sequence[Job], list[Any]] | None = None  # sent, reply not read yet
        for batch, args in calls:
            packed = _packed(self.script_command("submit", args))
            reply = self._overlapped_reply(connection, pending) if pending else None
            sent = packed is not None and _send_packed(connection, packed)
            if pending is not None:
                out += submitted_jobs(pending[0], reply)
            if sent:
                pending = batch, args
            else:  # not sent (no hiredis, or the connection dropped): the ordinary way
                pending = None
                out += submitted_jobs(batch, self._run("submit", args))
        if pending is not None:
            out += submitted_jobs(pending[0], self._overlapped_reply(connection, pending))
        return out

    def _overlapped_reply(self, connection: Any, sent: tuple[Sequence[Job], list[Any]]) -> Any:
        """The reply to a batch ``_submit_overlapped`` sent, or the batch sent again the
        ordinary way when reading it failed."""
        try:
            return connection.read_response()
        except redis.exceptions.ResponseError:
            pass  # read whole: the connection is fine; _run reloads the library or raises
        except redis.exceptions.ConnectionError:
            connection.disconnect()
        except BaseException:  # half a reply may be unread: never reuse the socket
            connection.disconnect()
            raise
        return self._run("submit", sent[1])

    # -- reading ------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        reply = self._run("get", [job_id])
        return None if reply is None else decode_job(reply)

    def list_jobs(self, state: JobState, offset: int = 0, limit: int = 100) -> list[Job]:
        rows = self._run("list", list_args(state, offset, limit))
        return listed_jobs(rows, self.namespace)

    def count_by_state(self) -> dict[JobState, int]:
        return counted_jobs(self._run("count", []))

    def count_by_name(self) -> dict[str, dict[JobState, int]]:
        return counted_by_name(self._run("count_by_name", []))

    # -- claiming and lease holders -----------------------------------------------------------

    def claim(self, spec: WorkSpec) -> Claim | None:
        token, deadline = _token(), self.options.clock() + spec.lease_seconds
        reply = self._run("claim", [token, _lease_arg(spec), *_spec_args(spec)])
        return self._claimed(reply, token, deadline, spec)

    def complete(
        self, job_id: str, token: str, result: JSON, next_spec: WorkSpec | None
    ) -> Claim | None:
        result_text = dumps_json(result)
        args: list[Any] = [job_id, token, result_text]
        next_token, deadline = _token(), 0.0
        if next_spec is None:
            args.append("0")
        else:
            deadline = self.options.clock() + next_spec.lease_seconds
            args += ["1", next_token, _lease_arg(next_spec), *_spec_args(next_spec)]
        reply = self._run("complete", args)
        if as_text(reply[0]) == "lost":
            raise _lease_lost(job_id)
        if next_spec is None or len(reply) < 2:
            return None
        return self._claimed(reply[1], next_token, deadline, next_spec)

    def fail(self, job_id: str, token: str, error: JobError, retry_at: float | None) -> JobState:
        retry = "" if retry_at is None else self.time_arg(retry_at)
        args = [job_id, token, dumps_json(error.to_dict()), retry]
        state = as_text(self._run("fail", args))
        if state == "lost":
            raise _lease_lost(job_id)
        return STATES[state]

    def release(self, job_id: str, token: str) -> bool:
        return bool(self._run("release", [job_id, token]))

    def renew(self, job_id: str, token: str, lease_seconds: float) -> bool:
        return bool(self._run("renew", [job_id, token, "+" + exact_number(lease_seconds)]))

    def set_progress(self, job_id: str, token: str, progress: float, message: str | None) -> bool:
        text = "" if message is None else "=" + message[:MAX_LOG_MESSAGE]
        return bool(self._run("progress", [job_id, token, exact_number(progress), text]))

    def add_log(self, job_id: str, token: str, message: str) -> bool:
        # The line's time is a record of when the client logged it: the client's clock.
        entry = dumps_json([self.options.clock(), message[:MAX_LOG_MESSAGE]])
        return bool(self._run("log", [job_id, token, entry, MAX_LOGS]))

    # -- batches (the optional BatchBackend protocol, used by the dispatcher's prefetch) -------

    def claim_many(self, spec: WorkSpec, limit: int) -> list[Claim]:
        return self.finish_many([], spec, limit)[1]

    def finish_many(
        self, outcomes: Sequence[Outcome], next_spec: WorkSpec | None, limit: int
    ) -> tuple[list[JobState | None], list[Claim]]:
        args: list[Any] = [len(outcomes)]
        for outcome in outcomes:
            if outcome.error is None:
                kind, payload, retry = "c", dumps_json(outcome.result), ""
            else:
                kind, payload = "f", dumps_json(outcome.error.to_dict())
                retry = "" if outcome.retry_at is None else self.time_arg(outcome.retry_at)
            args += [outcome.job_id, outcome.token, kind, payload, retry]
        count = 0 if next_spec is None else max(min(limit, _MAX_BATCH), 0)
        tokens = [_token() for _ in range(count)]
        lease = next_spec.lease_seconds if next_spec is not None else 0.0
        deadline = self.options.clock() + lease
        args += [count, *tokens, "+" + exact_number(lease)]
        args += _spec_args(next_spec) if next_spec is not None else ["", 0]
        if not outcomes and not count:
            return [], []
        reply_states, reply_claims = self._run("finish_many", args)
        states = [None if as_text(s) == "lost" else STATES[as_text(s)] for s in reply_states]
        claims: list[Claim] = []
        for token, reply in zip(tokens, reply_claims, strict=False):
            try:
                claims.append(Claim(decode_claim(reply), token, deadline))
            except CorruptJobError as exc:  # fail it; the dispatcher simply gets one fewer
                self._fail_corrupt(as_text(reply[0]), token, exc)
        return states, claims

    def _fail_corrupt(self, job_id: str, token: str, exc: CorruptJobError) -> None:
        log.error("failing corrupt job %s in namespace %s: %s", job_id, self.namespace, exc)
        error = JobError("CorruptJobError", f"job {job_id} cannot be decoded: {exc}")
        with contextlib.suppress(LeaseLostError):
            self.fail(job_id, token, error, None)

    def _claimed(self, reply: Any, token: str, deadline: float, spec: WorkSpec) -> Claim | None:
        # A malformed record is failed with a clear error, then the next job is claimed:
        # one bad hash never stops the queue.
        while reply is not None:
            try:
                return Claim(decode_claim(reply), token, deadline)
            except CorruptJobError as exc:
                self._fail_corrupt(as_text(reply[0]), token, exc)
            token, deadline = _token(), self.options.clock() + spec.lease_seconds
            reply = self._run("claim", [token, _lease_arg(spec), *_spec_args(spec)])
        return None

    # -- the control plane --------------------------------------------------------------------

    def heartbeat(
        self,
        dispatcher: DispatcherInfo,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
    ) -> list[LeaseStatus]:
        # The lease length, not a deadline: the script adds it to its own now (see Clock).
        args: list[Any] = [dispatcher.id, _dispatcher_record(dispatcher, leases)]
        args += ["+" + exact_number(lease_seconds), len(leases)]
        for job_id, token in leases:
            args += [job_id, token]
        return [LeaseStatus(as_text(s)) for s in self._run("heartbeat", args)]

    def remove_dispatcher(self, dispatcher_id: str) -> None:
        self._run("remove_dispatcher", [dispatcher_id])

    def dispatchers(self) -> list[DispatcherInfo]:
        return live_dispatchers(self._run("dispatchers", []))

    def cancel(self, job_id: str) -> JobState | None:
        state = as_text(self._run("cancel", [job_id]))
        if not state:
            return None
        if state not in STATES:
            raise CorruptJobError(f"stored job {job_id} is malformed: unknown state {state!r}")
        return STATES[state]

    def finish_cancelled(self, job_id: str, token: str, error: JobError | None) -> bool:
        text = "" if error is None else dumps_json(error.to_dict())
        return bool(self._run("finish_cancelled", [job_id, token, text]))

    def retry(self, job_id: str) -> Job | None:
        reply = self._run("retry", [job_id])
        outcome = as_text(reply[0])
        if outcome == "gone":
            return None
        if outcome == "state":
            raise state_refusal(job_id, reply[1], "only failed or cancelled jobs are retried")
        if outcome == "unique":
            raise JobStateError(
                f"job {job_id} cannot be retried: job {as_text(reply[1])} holds its unique key"
            )
        return decode_job(reply[1])

    def retry_many(self, state: JobState, name: str | None = None) -> int:
        if state not in (JobState.FAILED, JobState.CANCELLED):
            return 0
        return self._batched("retry_many", [STATE_CODES[state], _optional(name)])

    def purge(
        self, state: JobState, name: str | None = None, finished_before: float | None = None
    ) -> int:
        if not state.is_finished:
            return 0
        before = "" if finished_before is None else self.cutoff_arg(finished_before)
        return self._batched("purge", [STATE_CODES[state], _optional(name), before])

    def _batched(self, script: str, args: list[Any]) -> int:
        """Run a script that works through a finished set one batch per call, each call
        starting past the entries the earlier ones left in place. Returns how many it did."""
        done = offset = 0
        while True:
            count, left, scanned = self._run(script, [*args, offset])
            done, offset = done + int(count), offset + int(left)
            if int(scanned) < _MAX_BATCH:  # the scripts' batch size: a short one is the last
                return done

    def pause(self, name: str) -> None:
        self._run("pause", [name])

    def resume(self, name: str) -> None:
        self._run("resume", [name])

    def paused(self) -> frozenset[str]:
        return frozenset(as_text(n) for n in self._run("paused", []))

    # -- maintenance --------------------------------------------------------------------------

    def maintain(self) -> list[Job]:
        return self._recovering("maintain")

    def recover_expired(self) -> list[Job]:
        return self._recovering("recover")

    def _recovering(self, script: str) -> list[Job]:
        """Run ``script`` until no batch is full; the recovered jobs it reports (the
        namespace's list of recoveries not reported yet, see ``take_recovered``)."""
        recovered: list[Job] = []
        while True:
            _, more, jobs = self._run(script, [])
            recovered += listed_jobs(jobs, self.namespace)
            if not int(more):
                return recovered

    def remove(self, job_id: str) -> bool:
        return bool(self._run("remove", [job_id]))

    # -- waiting ------------------------------------------------------------------------------

    def wait_for_work(self, names: Iterable[str], timeout: float) -> bool:
        wanted = list(dict.fromkeys(names))
        args = ["", len(wanted), *(item for name in wanted for item in (name, -1))]
        kind, _ = self._idle_wait(_token(), "", args, timeout)
        return kind != "timeout"

    def wait_for_claim(self, spec: WorkSpec, timeout: float) -> Claim | bool:
        """Claim a ready job, or wait idle for at most ``timeout`` seconds to be handed one:
        whatever makes a job of these names ready (a submit, a retry, a promotion, a
        recovery, a resume) claims it under this waiter's token and lease and pushes it to
        the waiter's inbox, so it starts with no claim round trip (``signal`` in _lib.lua).
        Returns the Claim; ``True`` when woken for work to claim itself (a name capped by
        max_active) or when ready work is there that it may not claim; ``False`` after the
        wait."""
        token = _token()
        lease = _lease_arg(spec)
        deadline = self.options.clock() + spec.lease_seconds
        kind, payload = self._idle_wait(token, lease, _spec_args(spec), timeout)
        if kind == "claimed":
            return self._claimed(payload, token, deadline, spec) or True
        if kind != "handed":
            return kind != "timeout"
        # Its lease began at the hand-off, within this wait: now plus the lease is the
        # client's estimate, late by the message's trip at most.
        deadline = self.options.clock() + spec.lease_seconds
        try:
            reply = json.loads(payload)
            if isinstance(reply[2], dict):  # cjson writes an empty Lua table as {}
                reply[2] = []
            return Claim(decode_claim(reply), token, deadline)
        except (ValueError, TypeError, IndexError, KeyError, CorruptJobError) as exc:
            job_id = as_text(reply[0]) if isinstance(reply, list) and reply else "?"
            self._fail_corrupt(job_id, token, CorruptJobError(f"handed job: {exc}"))
            return True

    def _idle_wait(
        self, token: str, lease: str, spec_args: list[Any], timeout: float
    ) -> tuple[str, Any]:
        """idle.lua, then a block on the waiter's inbox, then unidle.lua if nothing came.
        Returns ``("claimed", job reply)`` (claimed at once, with a lease), ``("ready",
        None)``, ``("woken", None)``, ``("handed", JSON)`` or ``("timeout", None)``."""
        wait = max(float(timeout), 0.0)
        reply = self._run("idle", [token, lease, exact_number(wait), *spec_args])
        kind = as_text(reply[0])
        if kind == "c":
            return "claimed", reply[1]
        if kind == "r":
            return "ready", None
        due_in = as_text(reply[1])
        if due_in:
            # Wake when the next delayed job comes due or the next lease expires.
            wait = min(wait, max(float(due_in), 0.0))
        try:
            popped = self._block([self._prefix + "h:" + token], wait) if wait > 0 else None
            message = popped[1] if popped is not None else self._run("unidle", [token, ""])
        except BackendError:
            # A block whose reply was lost may have carried a handed job: the job its
            # token holds is looked up (a claim repeat's rescue, see unidle.lua).
            with contextlib.suppress(BackendError):
                message = self._run("unidle", [token, "1"])
                if message is not None:
                    return _message(message)
            raise
        return ("timeout", None) if message is None else _message(message)

    def wait_for_finish(self, job_id: str, timeout: float) -> Job | None:
        until = time.monotonic() + max(timeout, 0.0)
        state, job = self._watch(job_id, 1)
        if state != "wait":
            return job
        try:
            while True:
                left = until - time.monotonic()
                if left <= 0:
                    break
                if self._block([self.done_key(job_id)], left) is not None:
                    found = self.get(job_id)
                    if found is None or found.state.is_finished:
                        return found
        finally:
            with contextlib.suppress(BackendError):
                state, job = self._watch(job_id, -1)
        return job if state == "done" else None

    def _watch(self, job_id: str, change: int) -> tuple[str, Job | None]:
        reply = self._run("watch", [job_id, change])
        state = as_text(reply[0])
        return state, decode_job(reply[1]) if state == "done" else None

    def _block(self, keys: list[str], timeout: float) -> Any:
        """BLPOP for at most ``timeout`` seconds, in slices the socket timeout allows."""
        until = time.monotonic() + timeout
        while True:
            left = until - time.monotonic()
            if left <= 0.0005:
                return None
            # Redis reads the timeout as seconds with decimals; 0 would block forever.
            seconds = max(round(min(left, self._block_slice), 3), 0.001)
            with translate_errors():
                if self._connections is None:
                    popped = self._client.blpop(keys, timeout=seconds)
                else:  # on the thread's own connection, as _execute: the wake-up path is hot
                    connection = self._held_connection()
                    try:
                        connection.send_command("BLPOP", *keys, seconds)
                        popped = connection.read_response()
                    except BaseException:  # half a reply may be unread: never reuse it
                        connection.disconnect()
                        raise
            if popped is not None:
                return popped

    def close(self) -> None:
        with contextlib.suppress(redis.exceptions.RedisError):
            self._client.close()
        sentinel.close_sentinels(self._client)

    # -- plumbing -----------------------------------------------------------------------------

    def _run(self, script: str, args: Sequence[Any]) -> Any:
        """FCALL the script's function (or EVALSHA the script); when the server lacks it (a
        restarted, failed-over or flushed server, or the first call) load it and call again."""
        if not self.policy_checked:
            self.check_memory_policy()
        with translate_errors():
            for attempt in range(1, CALL_ATTEMPTS + 1):
                try:
                    return self._execute(script, args)
                except redis.exceptions.NoScriptError:
                    if attempt == CALL_ATTEMPTS:
                        raise
                    try:
                        self._client.script_load(self._scripts[script].source)
                    except redis.exceptions.ResponseError as exc:
                        if not self.adopt_plain_scripts(exc):
                            raise
                except redis.exceptions.ResponseError as exc:  # nothing ran if it is the shebang
                    if attempt == CALL_ATTEMPTS:
                        raise
                    if self.library_missing(exc):
                        if self.functions:
                            try:
                                self._client.execute_command(
                                    "FUNCTION", "LOAD", self.library_source
                                )
                            except redis.exceptions.ResponseError as refused:
                                self.library_refused(refused)
                    elif self.adopt_plain_scripts(exc):
                        self._client.script_load(self._scripts[script].source)
                    else:
                        raise
            raise AssertionError("unreachable")

    def script_command(
        self, script: str, args: Sequence[Any], *, repeat: bool = False
    ) -> tuple[Any, ...]:
        """The FCALL (or EVALSHA) command for ``script``: the ARGV header ``_lib.lua``
        describes, then ``args``; ``repeat`` marks a resend of a command whose reply was lost.
        Shared with the asyncio backend, which sends the very same commands."""
        return (
            *(
                ("FCALL", self._library.functions[script])
                if self.functions
                else ("EVALSHA", self._sha[script])
            ),
            len(self._route),
            *self._route,
            self._prefix,
            "" if self.server_clock else exact_number(self.options.clock()),
            *self._header_policy,
            "1" if repeat else "",
            *args,
            *(self._tail if script in self._tail_scripts else ()),
        )

    def _policy_tail(self) -> tuple[Any, ...]:
        """What ``_lib.lua`` calls the policy tail: the history bound, the cancelled
        retention age and count (an age, like the header's, so the script measures it on
        its own now), the stall error text around its count, and the minutes of outcome
        counts kept."""
        retention = self.options.retention
        seconds, count = retention.cancelled_seconds, retention.cancelled_count
        return (
            MAX_HISTORY,
            "" if seconds is None else exact_number(seconds),
            -1 if count is None else count,
            *self._stall_text,
            rules.OUTCOME_MINUTES_KEPT,
        )

    def time_arg(self, when: float) -> str:
        """An instant for a script: on the server's clock, as the delay from the client's now
        (``+seconds``, added to the server's now), so a skewed client's delay lands right."""
        if not self.server_clock:
            return exact_number(when)
        return "+" + exact_number(max(when - self.options.clock(), 0.0))

    def cutoff_arg(self, when: float) -> str:
        """A cut-off instant for a script (purge's ``finished_before``): as ``time_arg``, but
        a time in the past stays in the past -- ``+`` and a negative offset, i.e. its age on
        the client's clock measured back from the server's now, as retention ages are."""
        if not self.server_clock:
            return exact_number(when)
        return "+" + exact_number(when - self.options.clock())

    def script_source(self, script: str) -> str:
        """The Lua source behind ``script_command(script, …)``, to load on NOSCRIPT."""
        return self._scripts[script].source

    @property
    def library_source(self) -> str:
        """The Redis Function library's source, to ``FUNCTION LOAD`` when a call misses it."""
        return self._library.source

    def library_missing(self, exc: redis.exceptions.ResponseError) -> bool:
        """After FCALL failed with ``exc``: whether the server lacks the library, so that
        loading it (if ``functions`` is still on) and calling again is the cure. A server
        without Functions (no FCALL command) turns ``functions`` off: the call goes again as
        EVALSHA; so does one whose ACL denies this user FCALL (allowing EVALSHA, say)."""
        if not self.functions:
            return False
        text = str(exc)
        if "Function not found" in text:
            return True
        lowered = text.lower()
        refused = "unknown command" in lowered or isinstance(
            exc, redis.exceptions.NoPermissionError
        )
        if refused and "fcall" in lowered:
            self.library_refused(exc)
            return True
        return False

    def library_refused(self, exc: redis.exceptions.ResponseError) -> None:
        """After FUNCTION LOAD failed with ``exc``: a library of that name already there is
        this code (its name carries the hash of its source), loaded by another client; any
        other refusal (no Functions, an ACL without FUNCTION) turns to scripts for good."""
        if "already exists" in str(exc):
            return
        if self.functions:
            log.debug("Redis refused the function library (%s); using scripts", exc)
        self.functions = False

    def adopt_plain_scripts(self, exc: redis.exceptions.ResponseError) -> bool:
        """After SCRIPT LOAD or EVALSHA failed with ``exc``: if the server cannot read the
        shebang line (Redis 6 refuses the load, fakeredis the call), switch to the scripts
        without it and say so (True). Threads whose first calls raced find the switch made
        by another: True too, so that they call again with the plain scripts."""
        if "near '#'" not in str(exc):
            return False
        if not self._scripts["get"].source.startswith("#!"):
            return True
        log.debug("Redis does not read script shebangs (%s); using plain scripts", exc)
        self._scripts = load_scripts(shebang=False)
        self._sha = {name: script.sha for name, script in self._scripts.items()}
        return True

    def check_memory_policy(self) -> None:
        """Warn (once) when the server's ``maxmemory-policy`` may evict this queue's keys."""
        self.policy_checked = True
        if not self.check_eviction:
            return
        try:
            reply = self._client.config_get("maxmemory-policy")
        except redis.exceptions.RedisError as exc:  # e.g. an ACL user without CONFIG
            cannot_check(exc)
            return
        warn_if_evicting(reply)

    def done_key(self, job_id: str) -> str:
        """The list a finishing job pushes to when someone waits for it (``watch.lua``)."""
        return f"{self._prefix}x:{job_id}"

    def _held_connection(self) -> Any:
        """This thread's own connection of a plain ``redis.Redis`` client's pool."""
        assert self._connections is not None
        held = getattr(self._connections, "held", None)
        if held is None or held.pid != os.getpid():  # a forked child never shares a socket
            held = self._connections.held = _HeldConnection(self._client.connection_pool)
        if self._primary_watch is not None:
            self._primary_watch.check(held.connection)
        if getattr(held.connection, "_sock", True) is None:
            # Dropped earlier: connect through connect(), not the lazy connect of a send,
            # which would go back to the old address -- a Sentinel pool's connect() asks
            # the sentinels where the primary is now.
            held.connection.connect()
        return held.connection

    def _execute(self, script: str, args: Sequence[Any]) -> Any:
        """Send one script call and read its reply. On a plain ``redis.Redis`` each thread
        keeps one connection of the client's pool and talks on it directly, skipping
        redis-py's per-command pool checkout, retry and metrics wrapping (a third of a round
        trip's client time). A dropped connection is reconnected once: a command that never
        left is sent again; one whose reply was lost is sent again marked as a repeat, which
        the scripts answer with what the first run did (never applying it twice), unless
        the script cannot tell (``_NOT_REPEATABLE``)."""
        command = self.script_command(script, args)
        if self._connections is None:
            return self._client.execute_command(*command)
        wait = self.wait_command if script in replication.ACKED else None
        for attempt in (1, 2):
            sent = False
            connection = self._held_connection()
            try:
                packed = _packed(command)
                if wait is not None:  # the call and its WAIT in one send (see replication)
                    connection.send_packed_command(connection.pack_commands([command, wait]))
                elif packed is None:
                    connection.send_command(*command)
                else:
                    connection.send_packed_command([packed])  # a list of byte strings
                sent = True
                if wait is None:
                    return connection.read_response()
                reply, acked = replication.read_pair(connection)
            except redis.exceptions.ReadOnlyError:
                # A demoted primary (a plain URL's; Sentinel's connections report it as a
                # ConnectionError): nothing was written; a new connection may find the
                # promoted one behind a proxy or a moved DNS name.
                connection.disconnect()
                raise
            except redis.exceptions.ResponseError:
                raise  # the reply was read whole: the connection is fine
            except redis.exceptions.ConnectionError:
                connection.disconnect()
                if attempt == 2 or (sent and script in _NOT_REPEATABLE):
                    raise
                if sent:
                    command = self.script_command(script, args, repeat=True)
            except BaseException:  # half a reply may be unread: never reuse the socket
                connection.disconnect()
                raise
            else:
                replication.check(acked, self.replicas, self.replica_timeout, script, args, reply)
                return reply
        raise AssertionError("unreachable")


def _send_packed(connection: Any, packed: bytes) -> bool:
    """Send a packed command; ``False`` (the connection closed) if the connection dropped."""
    try:
        connection.send_packed_command([packed])
        return True
    except redis.exceptions.ConnectionError:
        connection.disconnect()
        return False
    except BaseException:  # part of it may have left: never reuse the socket
        connection.disconnect()
        raise


def _packed(command: tuple[Any, ...]) -> bytes | None:
    """The command in the Redis protocol, packed by hiredis directly (``None`` without it, or
    for an argument it cannot pack: ``send_command`` packs those)."""
    if _pack_command is None:
        return None
    try:
        return _pack_command(command)
    except TypeError:
        return None


class _HeldConnection:
    """The pooled connection one thread talks on. It goes back to the pool when its thread
    ends (the thread-local holding it is dropped): dispatchers start threads for every run,
    and connections kept by dead threads would exhaust the pool."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.pid = os.getpid()
        self.connection = pool.get_connection()

    def __del__(self) -> None:
        if self.pid == os.getpid():
            with contextlib.suppress(Exception):  # at interpreter exit the pool may be gone
                self.pool.release(self.connection)


# -- script arguments and replies, shared with the asyncio backend ----------------------------


class Lane:
    """One sequence of submit calls, never two in flight at once (see the module docstring):
    its random id names its idempotency key, ``calls`` numbers its calls."""

    __slots__ = ("calls", "id", "pid")

    def __init__(self) -> None:
        self.id = secrets.token_hex(8)
        self.calls = 0
        self.pid = os.getpid()


class Lanes:
    """A pool of lanes: a submit takes one for its duration and gives it back, so a lane is
    never used by two calls at once (threads, asyncio tasks) and Redis keeps one key per
    lane in use rather than one per call. A forked child starts a pool of its own: it must
    never number calls in a lane its parent still uses."""

    def __init__(self) -> None:
        self._free: list[Lane] = []
        self._pid = os.getpid()

    def take(self) -> Lane:
        pid = os.getpid()
        if pid != self._pid:
            self._free, self._pid = [], pid
        try:
            return self._free.pop()  # atomic: threads never get the same lane
        except IndexError:
            return Lane()

    def give(self, lane: Lane) -> None:
        if lane.pid == self._pid:
            self._free.append(lane)


def submit_batches(
    jobs: Sequence[Job], time_arg: Callable[[float], str], lane: Lane
) -> Iterator[tuple[Sequence[Job], list[Any]]]:
    """The submit script's calls: each batch of jobs with its arguments, ``time_arg`` turning
    each ``run_at`` into the script's time argument. Every job is encoded before the first
    batch is handed out, so bad data is refused before anything is stored. Each batch is a
    call of ``lane`` (held by the caller until the last batch is answered), numbered as it
    is handed out: sent again after a lost reply, it returns the ids the first send stored."""
    encoded = [encode_new_job(job) for job in jobs]
    for start in range(0, len(jobs), _SUBMIT_BATCH):
        lane.calls += 1
        args: list[Any] = [lane.id, lane.calls, len(encoded[start : start + _SUBMIT_BATCH])]
        for job, fields in zip(
            jobs[start : start + _SUBMIT_BATCH], encoded[start : start + _SUBMIT_BATCH], strict=True
        ):
            fields[3] = time_arg(job.run_at)
            args.extend(fields)
        yield jobs[start : start + _SUBMIT_BATCH], args


def submitted_jobs(jobs: Sequence[Job], replies: Any) -> list[Job]:
    """The stored jobs (or, for a unique key already held, the live job holding it). A job
    ``build_job`` made for this submit (it carries ``_submit_json``) is nobody else's: it is
    filled in and returned itself; any other is copied, the caller's left as it was."""
    out: list[Job] = []
    for job, reply in zip(jobs, replies, strict=True):
        if as_text(reply[0]) == "n":
            state = STATES[as_text(reply[2])]
            if getattr(job, "_submit_json", None) is None:
                out.append(replace(job, id=as_text(reply[1]), state=state, logs=list(job.logs)))
            else:
                del job._submit_json  # stored: the job returned carries no submit state
                job.id, job.state = as_text(reply[1]), state
                out.append(job)
        else:
            out.append(replace(decode_job(reply[1:]), deduplicated=True))
    return out


def list_args(state: JobState, offset: int, limit: int) -> list[Any]:
    return [STATE_CODES[state], max(offset, 0), max(limit, 0)]


def listed_jobs(rows: Any, namespace: str) -> list[Job]:
    jobs = []
    for row in rows:
        try:
            jobs.append(decode_job(row))
        except CorruptJobError as exc:  # a listing shows it, marked; get() raises
            log.warning("listing a corrupt job in namespace %s: %s", namespace, exc)
            jobs.append(unreadable_row(row, str(exc)))
    return jobs


def counted_jobs(counts: Any) -> dict[JobState, int]:
    return {state: int(n) for state, n in zip(STATE_CODES, counts, strict=True)}


def counted_by_name(reply: Any) -> dict[str, dict[JobState, int]]:
    """count_by_name.lua's flat reply (name, then its state letter/count pairs) as a mapping
    with every state present; a letter that is no state (foreign data) is left out."""
    counts: dict[str, dict[JobState, int]] = {}
    for i in range(0, len(reply), 2):
        by_state = dict.fromkeys(JobState, 0)
        pairs = reply[i + 1]
        for k in range(0, len(pairs), 2):
            state = STATES.get(as_text(pairs[k]))
            if state is not None:
                by_state[state] = int(pairs[k + 1])
        if any(by_state.values()):
            counts[as_text(reply[i])] = by_state
    return counts


def live_dispatchers(reply: Any) -> list[DispatcherInfo]:
    """The dispatchers script's flat (id, record JSON, last seen) reply, oldest first."""
    found = []
    for i in range(0, len(reply), 3):
        try:
            record = json.loads(as_text(reply[i + 1]))
            found.append(
                DispatcherInfo(
                    id=as_text(reply[i]),
                    host=str(record["host"]),
                    pid=int(record["pid"]),
                    names=tuple(record["names"]),
                    concurrency=int(record["concurrency"]),
                    started_at=float(record["started_at"]),
                    last_seen=float(as_text(reply[i + 2])),
                    jobs=tuple(record["jobs"]),
                )
            )
        except (CorruptJobError, KeyError, TypeError, ValueError) as exc:
            log.warning("skipping unreadable dispatcher record %r: %s", reply[i], exc)
    return sorted(found, key=lambda info: (info.started_at, info.id))


def _dispatcher_record(info: DispatcherInfo, leases: Sequence[tuple[str, str]]) -> str:
    """What the dispatcher hash keeps (last_seen apart: the script writes its "now")."""
    return dumps_json(
        {
            "host": info.host,
            "pid": info.pid,
            "names": list(info.names),
            "concurrency": info.concurrency,
            "started_at": info.started_at,
            "jobs": [job_id for job_id, _ in leases],
        }
    )


def _optional(name: str | None) -> str:
    """A script argument that may be absent: '' for none, else '=' and the text."""
    return "" if name is None else "=" + name


# -- URLs and errors, shared with the asyncio backend -------------------------------------------


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a Redis URL says: the URL for redis-py, cluster or not, namespace, client settings,
    the sentinels to ask for the primary (``None``: the URL's host is the server) and how
    many replicas must acknowledge each write (``replication``)."""

    url: str
    cluster: bool
    namespace: str | None
    settings: dict[str, Any]
    sentinel: SentinelSpec | None = None
    replicas: int = 0
    replica_timeout: float = 1.0


def parse_url(url: str, options: BackendOptions) -> RedisTarget:
    """Check a Redis URL and split our query parameters (``namespace``, ``cluster``) off it;
    the sync and the asyncio clients are opened from the same target so they reach the same
    queue. A malformed URL raises ``InvalidURLError``."""
    parsed = parse_redis_url(pop_check_eviction(url)[0])  # check_eviction: from_url reads it
    settings: dict[str, Any] = {
        "socket_connect_timeout": 5.0,
        "socket_timeout": _SOCKET_TIMEOUT,
        "socket_keepalive": True,
        "health_check_interval": 15,
    }
    namespace = parsed.namespace or options.namespace
    if parsed.replicas and parsed.cluster:
        raise InvalidURLError("replicas= is not supported with cluster=true")
    return RedisTarget(
        parsed.client_url,
        parsed.cluster,
        namespace,
        settings,
        parsed.sentinel,
        parsed.replicas,
        parsed.replica_timeout,
    )


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """redis-py's errors (sync and asyncio raise the same classes) as ours."""
    try:
        yield
    except CLUSTER_REFUSALS as exc:
        raise cluster_refused(exc) from exc
    except (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        redis.exceptions.ReadOnlyError,  # a primary demoted to a replica: not the primary now
    ) as exc:
        problem = _certificate_problem(exc)
        if problem is not None:
            raise TLSVerificationError(
                f"Redis's TLS certificate failed verification ({problem}); give the CA "
                "that signed it with ?ssl_ca_certs=/path/ca.pem, or fix the server's "
                "certificate or host name"
            ) from exc
        reason = sentinel.describe(exc) or f"{type(exc).__name__}: {exc}"
        raise BackendUnavailableError(
            f"Redis did not answer ({reason}); a write may or may not "
            "have been applied — retry once it is reachable (a unique_key makes a "
            "resubmit safe)"
        ) from exc
    except redis.exceptions.RedisError as exc:
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or str(exc).startswith("OOM"):
            raise BackendFullError(
                "Redis is full (used memory is over its maxmemory) and refused the new jobs; "
                "nothing was stored. Raise maxmemory, keep finished jobs for less time "
                "(Retention), or let the dispatchers drain the queue, then submit again"
            ) from exc
        if is_refusal(exc):
            raise cluster_refused(exc) from exc
        raise BackendError(f"Redis refused the operation: {exc}") from exc


def _lease_arg(spec: WorkSpec) -> str:
    """The lease length as a script time argument: the deadline is the script's now plus it."""
    return "+" + exact_number(spec.lease_seconds)


def _spec_args(spec: WorkSpec) -> list[Any]:
    names = list(dict.fromkeys(spec.names))
    args: list[Any] = [spec.dispatcher or "", len(names)]
    for name in names:
        cap = spec.max_active.get(name)
        args += [name, -1 if cap is None else max(int(cap), 0)]
    return args


_STALL_MARK = 987_654_321  # a count no real message holds, to split the text around


def _stall_error_template() -> tuple[str, str]:
    """``policy.stalled_error`` as JSON, split where its stall count goes: recover() in
    ``_lib.lua`` joins the halves around the count, so the text is written only in policy."""
    text = dumps_json(rules.stalled_error(_STALL_MARK).to_dict())
    before, _, after = text.partition(str(_STALL_MARK))
    return before, after


def block_slice(client: RedisClient) -> float:
    """How long one BLPOP may block: below the client's socket timeout, or redis-py would
    report the silent wait as a dead connection."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", {})
    socket_timeout = kwargs.get("socket_timeout") if isinstance(kwargs, dict) else None
    if not socket_timeout:
        return _MAX_BLOCK
    return max(min(_MAX_BLOCK, float(socket_timeout) * 0.8), 0.05)


def _message(message: Any) -> tuple[str, Any]:
    """An inbox message: ``'w'`` (woken) or a handed job's snapshot as JSON."""
    return ("woken", None) if message in (b"w", "w") else ("handed", message)


def _token() -> str:
    return secrets.token_hex(8)


def _lease_lost(job_id: str) -> LeaseLostError:
    return LeaseLostError(rules.lease_lost_message(job_id))


def _certificate_problem(exc: BaseException) -> str | None:
    """What failed in TLS certificate verification, if that is why the connection failed
    (redis-py re-raises the ``ssl`` error as a ConnectionError, keeping it as context)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None
