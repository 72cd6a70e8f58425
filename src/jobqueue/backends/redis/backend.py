"""Redis backend: the Backend protocol on Redis, every state change one Lua call -- on Redis
7 a function of the library ``scripts.load_library`` builds (``FCALL``, loaded once per
server), else a script called by SHA.

The keys, the clock, maxmemory and lost replies are described in docs/redis-layout.md. This
module is the protocol's face: each method builds its script's arguments and decodes its
reply (``wire.py``); ``calls.py`` makes the commands and the plan for a server that lacks the
library; ``connection.py`` holds each thread's connection.

Redis Cluster: pass ``?cluster=true`` in the URL (``redis://host:7000/?cluster=true``) or hand
a ``redis.cluster.RedisCluster`` client to :class:`RedisBackend` directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence

import redis
import redis.cluster
import redis.exceptions

from jobqueue import lifecycle as rules
from jobqueue.backend import (
    BackendOptions,
    DispatcherInfo,
    LeaseStatus,
    WorkSpec,
)
from jobqueue.backends.redis import replication, sentinel
from jobqueue.backends.redis.calls import CALL_ATTEMPTS, Calls
from jobqueue.backends.redis.cluster import GUARD
from jobqueue.backends.redis.codec import (
    Arg,
    Command,
    Reply,
    as_text,
    decode_job,
    exact_number,
)
from jobqueue.backends.redis.connection import (
    Connection,
    Connections,
    Lanes,
    RedisClient,
    block_slice,
    translate_errors,
)
from jobqueue.backends.redis.connection import packed as _packed
from jobqueue.backends.redis.connection import send_packed as _send_packed
from jobqueue.backends.redis.eviction import cannot_check, pop_check_eviction, warn_if_evicting
from jobqueue.backends.redis.groups import GroupCalls
from jobqueue.backends.redis.operations import OperatorCalls
from jobqueue.backends.redis.schedules import ScheduleCalls
from jobqueue.backends.redis.seam import StorageCalls
from jobqueue.backends.redis.url import parse_url, safe_url
from jobqueue.backends.redis.waits import WaitCalls
from jobqueue.backends.redis.wire import (
    SUBMIT_BATCH,
    lease_statuses,
    live_dispatchers,
    rows,
    submit_batches,
    submitted_jobs,
)
from jobqueue.backends.redis.wire import dispatcher_record as _dispatcher_record
from jobqueue.errors import (
    BackendUnavailableError,
    ConfigurationError,
    CorruptJobError,
    InvalidURLError,
)
from jobqueue.job import (
    Job,
)

log = logging.getLogger("jobqueue.backends.redis")

DEFAULT_NAMESPACE = "jobqueue"
# Scripts never sent twice: a repeat of these would apply twice (a waiter count).
_NOT_REPEATABLE = frozenset({"watch"})


class RedisBackend(OperatorCalls, ScheduleCalls, WaitCalls, StorageCalls, GroupCalls):
    """The storage seam (``jobqueue.backend.Backend``) on Redis (``redis://``, ``rediss://``),
    and ``HandoffBackend.wait_for_claim``: ``outcome_counts`` comes from ``.operations``,
    the periodic schedules' (``claim_tick``, ``schedule_records``) from ``.schedules``, the
    waits (``wait_for_work``, ``wait_for_claim``, ``wait_for_finish``) from ``.waits``, the
    rest of the seam (``apply``, ``scan``, ``expired``...) from ``.seam``. The verbs (complete,
    cancel, retry...) are the core's (``jobqueue.engine.Engine``), written once over these."""

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
        """Whether "now" is the Redis server's clock (see docs/redis-layout.md)."""
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
        self._block_slice = block_slice(client)
        self._primary_watch = sentinel.watch_for(client)
        if self._primary_watch is not None:
            self._block_slice = min(self._block_slice, sentinel.BLOCK_SLICE)
        self._connections = (
            Connections(client, self._primary_watch) if isinstance(client, redis.Redis) else None
        )
        # KEYS: the id counter routes each script to the right shard; the guard, which never
        # exists, makes Redis Cluster refuse a call while the slot migrates (see cluster.py).
        self.calls = Calls(
            self.options,
            self._prefix,
            (self._prefix + "id", self._prefix + GUARD),
            functions=not isinstance(client, redis.cluster.RedisCluster),
            server_clock=self.server_clock,
        )
        """The scripts' commands and time arguments, and the load-and-retry plan."""
        self._groups_stored: set[str] = set()
        self._group_cache: tuple[tuple[str, ...], str] | None = None
        self._spec_cache: tuple[WorkSpec, list[Arg], str] | None = None
        self._layout_checked = False
        """Name groups stored, and whether the layout was brought up to date (groups.py)."""
        self.policy_checked = False
        """Whether the server's eviction policy was looked at (once, at first use)."""
        self.check_eviction = True
        """Whether to look at it: ``?check_eviction=false`` spares an ACL user the denied
        ``CONFIG GET`` (and the ACL LOG entry it leaves); see ``eviction.py``."""
        self.lanes = Lanes()
        """The submit calls' idempotency lanes (shared with the asyncio twin)."""
        self.replicas = 0
        """How many replicas must acknowledge each submit and outcome (``replication``)."""
        self.replica_timeout = 1.0
        self.wait_command: Command | None = None
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

    # -- inserting and reading ------------------------------------------------------------------

    def insert(self, jobs: Sequence[Job]) -> list[Job]:
        # submit.lua stores exactly what insert means (its lanes answer a lost reply).
        out: list[Job] = []
        lane = self.lanes.take()
        try:
            calls = submit_batches(jobs, self.calls.time_arg, lane)
            if self._connections is None or len(jobs) <= SUBMIT_BATCH or self.replicas:
                for batch, args in calls:
                    out += submitted_jobs(batch, self._run("submit", args))
            else:
                out = self._submit_overlapped(calls)
        finally:
            self.lanes.give(lane)
        return out

    def _submit_overlapped(self, calls: Iterator[tuple[Sequence[Job], list[Arg]]]) -> list[Job]:
        """The batches of a large submit on this thread's connection, each one's arguments
        built and packed while Redis stores the one before, and the next sent before this
        one's reply is turned into jobs. Calls of one lane are still never in flight at
        once: a batch is sent only once the previous reply was read. Anything unusual about
        a batch (a dropped connection, the library missing, a refusal) sends it again the
        ordinary way (``_run``), which its lane number makes safe: a batch stored already is
        answered from the lane's record."""
        if not self.policy_checked:
            self.check_memory_policy()
        assert self._connections is not None
        connection = self._connections.held()
        out: list[Job] = []
        pending: tuple[Sequence[Job], list[Arg]] | None = None  # sent, reply not read yet
        for batch, args in calls:
            packed = _packed(self.calls.command("submit", args))
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

    def _overlapped_reply(
        self, connection: Connection, sent: tuple[Sequence[Job], list[Arg]]
    ) -> Reply:
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

    def get(self, job_id: str) -> Job | None:
        reply = self._run("get", [job_id])
        return None if reply is None else decode_job(rows(reply))

    def _fail_corrupt(self, job_id: str, token: str, exc: CorruptJobError) -> None:
        # The claim's token is not needed: lifecycle.on_corrupt fails the live record.
        log.error("failing corrupt job %s in namespace %s: %s", job_id, self.namespace, exc)
        self.apply([rules.on_corrupt(job_id, str(exc))])

    # -- the control plane --------------------------------------------------------------------

    def heartbeat(
        self,
        dispatcher: DispatcherInfo | None,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
    ) -> list[LeaseStatus]:
        # The lease length, not a deadline: the script adds it to its own now (see Clock).
        args: list[Arg] = ["", ""]  # no dispatcher: the leases only
        if dispatcher is not None:
            args = [dispatcher.id, _dispatcher_record(dispatcher, leases)]
        args += ["+" + exact_number(lease_seconds), len(leases)]
        for job_id, token in leases:
            args += [job_id, token]
        return lease_statuses(self._run("heartbeat", args))

    def dispatchers(self) -> list[DispatcherInfo]:
        return live_dispatchers(self._run("dispatchers", []))

    def paused(self) -> frozenset[str]:
        return frozenset(as_text(n) for n in rows(self._run("paused", [])))

    def close(self) -> None:
        with contextlib.suppress(redis.exceptions.RedisError):
            self._client.close()
        sentinel.close_sentinels(self._client)

    # -- plumbing -----------------------------------------------------------------------------

    def _run(self, script: str, args: Sequence[Arg]) -> Reply:
        """Call the script (``_execute``); when the server lacks the library or the script
        (a restarted, failed-over or flushed server, or the first call), load what the plan
        says and call again (``Calls.cure``, the plan the asyncio backend drives too)."""
        if not self.policy_checked:
            self.check_memory_policy()
        calls = self.calls
        with translate_errors():
            for attempt in range(1, CALL_ATTEMPTS + 1):
                try:
                    return self._execute(script, args)
                except redis.exceptions.ResponseError as exc:
                    loads = calls.cure(script, exc, attempt)
                    if loads is None:
                        raise
                    for load in loads:
                        try:
                            self._client.execute_command(*load.command)
                        except redis.exceptions.ResponseError as refused:
                            if not calls.load_refused(load, refused):
                                raise
            raise AssertionError("unreachable")

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

    def _execute(self, script: str, args: Sequence[Arg]) -> Reply:
        """Send one script call and read its reply. On a plain ``redis.Redis`` each thread
        keeps one connection of the client's pool and talks on it directly, skipping
        redis-py's per-command pool checkout, retry and metrics wrapping (a third of a round
        trip's client time). A dropped connection is reconnected once: a command that never
        left is sent again; one whose reply was lost is sent again marked as a repeat, which
        the scripts answer with what the first run did (never applying it twice), unless
        the script cannot tell (``_NOT_REPEATABLE``)."""
        reply: Reply
        command = self.calls.command(script, args)
        if self._connections is None:
            reply = self._client.execute_command(*command)
            return reply
        wait = self.wait_command
        if wait is not None and not replication.acked(script, args):
            wait = None
        for attempt in (1, 2):
            sent = False
            connection = self._connections.held()
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
                    command = self.calls.command(script, args, repeat=True)
            except BaseException:  # half a reply may be unread: never reuse the socket
                connection.disconnect()
                raise
            else:
                replication.check(acked, self.replicas, self.replica_timeout, script, args, reply)
                return reply
        raise AssertionError("unreachable")
