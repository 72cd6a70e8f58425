"""Wake-ups across processes: one LISTEN connection and one NOTIFY sender per database per
process, shared by every backend instance on that database.

Sending: a committed transaction that added work (or finished a job) asks for a wake-up;
a thread of its own sends it, ``pg_notify`` on the schema's channel in a transaction of its
own, never inside the committing one (a NOTIFY in a transaction takes a database-wide lock
at commit, which serialises every notifying commit). Requests that arrive while it sends
are coalesced into the next one: at most one NOTIFY per round trip, however many jobs
committed meanwhile (debounced), never one per row.

Receiving: one thread LISTENs on every channel its backends want and wakes their
``Signal``. It reconnects on its own after any failure (with a back-off), re-LISTENs, and
then wakes everyone, since notifications sent while it was away are lost. While it is not
listening the link polls (``PostgresLink.polls``), so a lost LISTEN never strands a job:
the store's poll is the safety net. Its own process's notifications are ignored (this
process woke its waiters through the ``Signal`` already).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from jobqueue.backends.sql.dialect import Signal

logger = logging.getLogger("jobqueue.backends.postgres")

LISTEN_SLICE = 0.1
"""Seconds the listener waits for notifications before it looks at its channels again."""
BACKOFF_START, BACKOFF_MAX = 0.05, 2.0
"""Reconnection back-off of the listener and the sender (seconds)."""
NOTIFY_INTERVAL = 0.002
"""Seconds between two NOTIFYs of this process, at least: a wake-up asked for while idle goes
at once, ones asked for within this interval after it go together at its end."""
CHANGE_INTERVAL = 0.02
"""The same for a NOTIFY that only says jobs finished (no new work): what waits on it is
another process's ``wait_for``, not a dispatcher."""
FLUSH_TIMEOUT = 5.0
"""Seconds the last backend's ``close`` waits for the wake-ups it asked for to be sent."""


@dataclass(eq=False)
class WakeSignal(Signal):
    """A schema's ``Signal`` in this process, which also asks other processes to wake."""

    wakeups: Wakeups | None = field(default=None, repr=False)
    channel: str = ""

    def notify(self, *, work: bool) -> None:
        super().notify(work=work)
        if self.wakeups is not None:
            self.wakeups.send(self.channel, work=work)

    def wake(self, *, work: bool) -> None:
        """Another process's commit: wake this process's waiters only."""
        super().notify(work=work)


class Wakeups:
    """A database's LISTEN and NOTIFY threads (``for_database``)."""

    def __init__(self, conninfo: str, where: str) -> None:
        self._conninfo = conninfo
        self._where = where
        self._lock = threading.Condition()
        self._signals: dict[str, WakeSignal] = {}  # channel → signal
        self._users: dict[str, int] = {}  # channel → backends using it
        self._listeners: dict[str, int] = {}  # channel → backends that want it LISTENed
        self._listening: frozenset[str] = frozenset()
        self.generation = 0
        """How many times the LISTEN connection has (re)connected and followed its channels."""
        self.listener_pid = 0
        self._pending: dict[str, bool] = {}  # channel → work (else: a change)
        self._sender_pid = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- backends come and go ------------------------------------------------------------------

    def attach(self, signal: WakeSignal, *, listen: bool) -> None:
        channel = signal.channel
        with self._lock:
            self._signals[channel] = signal
            self._users[channel] = self._users.get(channel, 0) + 1
            if listen:
                self._listeners[channel] = self._listeners.get(channel, 0) + 1
            if not self._threads:
                self._start(self._send_loop, "sender")
            if listen and len(self._threads) == 1:
                self._start(self._listen_loop, "listener")

    def detach(self, channel: str, *, listen: bool) -> bool:
        """Returns whether nobody uses this database any more (its threads then stop)."""
        with self._lock:
            self._users[channel] -= 1
            if listen:
                self._listeners[channel] -= 1
                if not self._listeners[channel]:
                    del self._listeners[channel]
            if not self._users[channel]:
                del self._users[channel]
                signal = self._signals.pop(channel)
                signal.wakeups = None
            if self._users:
                return False
            self._stop.set()
            self._lock.notify_all()
            return True

    def listening(self, channel: str) -> bool:
        return channel in self._listening

    def wait_listening(self, channel: str, timeout: float, *, after: int = 0) -> bool:
        """Wait until ``channel`` is LISTENed on a connection made after generation
        ``after`` (for tests and tools: the backend itself never waits for it)."""
        with self._lock:
            return self._lock.wait_for(
                lambda: self.generation > after and channel in self._listening, timeout
            )

    def finish(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """After the last ``detach``: let the sender send what was asked for (a process
        that submits and exits still wakes the others); the listener ends on its own."""
        for thread in self._threads[:1]:
            thread.join(timeout)

    def uses(self, channel: str) -> bool:
        with self._lock:
            return channel in self._users

    def _start(self, target: Callable[[], None], role: str) -> None:
        thread = threading.Thread(
            target=target,
            name=f"jobqueue-postgres-{role}",
            daemon=True,  # ends with the process; close() stops it sooner
        )
        self._threads.append(thread)
        thread.start()

    # -- sending -------------------------------------------------------------------------------

    def send(self, channel: str, *, work: bool) -> None:
        with self._lock:
            self._pending[channel] = self._pending.get(channel, False) or work
            self._lock.notify_all()

    def _send_loop(self) -> None:
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        backoff = BACKOFF_START
        next_work = next_change = 0.0  # when the next NOTIFY of each kind may go
        while True:
            with self._lock:
                while not self._stop.is_set():
                    if not self._pending:
                        self._lock.wait()
                        continue
                    due = next_work if any(self._pending.values()) else next_change
                    wait = due - time.monotonic()
                    if wait <= 0:
                        break
                    self._lock.wait(wait)  # debounced: what is asked meanwhile goes along
                if not self._pending:  # stopped, with every wake-up asked for sent
                    break
                pending, self._pending = self._pending, {}
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = psycopg.Connection.connect(self._conninfo, autocommit=True)
                    self._sender_pid = conn.info.backend_pid
                for channel, work in pending.items():
                    conn.execute("SELECT pg_notify(%s, %s)", (channel, "w" if work else "c"))
                backoff = BACKOFF_START
                # Every NOTIFY costs a transaction here and one in every listening session of
                # the database: new work waits at most NOTIFY_INTERVAL for the next, finished
                # jobs alone (for other processes' ``wait_for``) CHANGE_INTERVAL.
                sent = time.monotonic()
                next_work, next_change = sent + NOTIFY_INTERVAL, sent + CHANGE_INTERVAL
            except psycopg.Error as exc:
                # Lost wake-ups cost the others a poll interval, never a job.
                logger.debug("%s: could not send a wake-up: %s", self._where, exc)
                _closed(conn)
                conn = None
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, BACKOFF_MAX)
        _closed(conn)

    # -- receiving -----------------------------------------------------------------------------

    def _listen_loop(self) -> None:
        backoff = BACKOFF_START
        failing = False
        while not self._stop.is_set():
            conn: psycopg.Connection[tuple[object, ...]] | None = None
            try:
                conn = psycopg.Connection.connect(self._conninfo, autocommit=True)
                self.listener_pid = conn.info.backend_pid
                fresh = True
                if failing:
                    logger.warning("%s: LISTEN connection is back", self._where)
                failing = False
                while not self._stop.is_set():
                    self._follow_channels(conn, fresh)
                    fresh = False
                    for note in conn.notifies(timeout=LISTEN_SLICE):
                        self._deliver(note)
                    backoff = BACKOFF_START
            except psycopg.Error as exc:
                if self._stop.is_set():
                    break
                if not failing:
                    logger.warning(
                        "%s: LISTEN connection lost (%s); polling until it is back",
                        self._where,
                        " ".join(str(exc).split()),
                    )
                failing = True
                self._lost()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                with self._lock:
                    self._listening = frozenset()
                _closed(conn)

    def _follow_channels(self, conn: psycopg.Connection[tuple[object, ...]], fresh: bool) -> None:
        """LISTEN to the channels wanted now, UNLISTEN the others. A waiter that polled
        until now re-reads once as it stops polling (``sql.store``), so what was sent
        before a LISTEN took effect is not missed."""
        with self._lock:
            wanted = frozenset(self._listeners)
        if wanted == self._listening and not fresh:
            return
        for channel in wanted - self._listening:
            conn.execute(f'LISTEN "{channel}"')  # channel names are checked: no quotes
        for channel in self._listening - wanted:
            conn.execute(f'UNLISTEN "{channel}"')
        with self._lock:
            self._listening = wanted
            if fresh:
                self.generation += 1
            self._lock.notify_all()

    def _lost(self) -> None:
        """The LISTEN connection is gone: waiters that rely on it wake (spuriously, once)
        and poll from then on, until it is back."""
        with self._lock:
            was, self._listening = self._listening, frozenset()
            for channel in was:
                signal = self._signals.get(channel)
                if signal is not None:
                    signal.wake(work=True)

    def _deliver(self, note: psycopg.Notify) -> None:
        if note.pid == self._sender_pid:
            return
        self._wake(note.channel, work=note.payload != "c")

    def _wake(self, channel: str, *, work: bool) -> None:
        with self._lock:
            signal = self._signals.get(channel)
        if signal is not None:
            signal.wake(work=work)


def _closed(conn: psycopg.Connection[tuple[object, ...]] | None) -> None:
    if conn is not None:
        with contextlib.suppress(psycopg.Error):
            conn.close()


_registry: dict[str, Wakeups] = {}
_registry_lock = threading.Lock()
_signals: dict[tuple[str, str], WakeSignal] = {}


def _forget_after_fork() -> None:
    """A forked child has none of its parent's threads: it starts afresh (and leaves the
    parent's connections alone)."""
    global _registry_lock
    _registry_lock = threading.Lock()
    _registry.clear()
    _signals.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_forget_after_fork)


def attach(conninfo: str, where: str, channel: str, *, listen: bool) -> WakeSignal:
    """The ``Signal`` of ``channel`` (a schema) on this database in this process, with the
    database's wake-up threads running."""
    with _registry_lock:
        wakeups = _registry.get(conninfo)
        if wakeups is None:
            wakeups = _registry[conninfo] = Wakeups(conninfo, where)
        signal = _signals.get((conninfo, channel))
        if signal is None:
            signal = _signals[conninfo, channel] = WakeSignal(channel=channel)
        signal.wakeups = wakeups
        wakeups.attach(signal, listen=listen)
        return signal


def detach(conninfo: str, channel: str, *, listen: bool) -> None:
    with _registry_lock:
        wakeups = _registry.get(conninfo)
        if wakeups is None:
            return
        last = wakeups.detach(channel, listen=listen)
        if last:
            del _registry[conninfo]
        if not wakeups.uses(channel):
            _signals.pop((conninfo, channel), None)
    if last:
        wakeups.finish()
