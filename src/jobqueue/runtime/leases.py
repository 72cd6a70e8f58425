"""The lease book: every job this dispatcher holds, renewed by the heartbeat, maybe lost.

A job is held from its claim until its outcome is recorded (or it is given back): claimed
ahead, running, or finished but not recorded yet. Each beat renews every lease held and
brings back the cancel requests of their jobs. A lease the backend no longer honours is
*lost*: the job belongs to someone else and this attempt's outcome is discarded;
``jobqueue_lease_lost`` fires once per lease, whether the heartbeat or a refused outcome
tells first. Once its outcome is being written, only the write tells: a beat that reaches the
backend after the write took effect finds the token gone and answers "lost" for a lease that
was simply used up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import pluggy

from jobqueue.backend import Claim, Clock, LeaseStatus
from jobqueue.hooks import emit
from jobqueue.job import Job
from jobqueue.runtime.heartbeat import Heartbeat

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Lease:
    """A job this dispatcher holds: claimed ahead, running, or finished but not recorded."""

    claim: Claim
    deadline: float = field(init=False)
    lost: bool = False
    cancelled: bool = False  # the heartbeat brought a cancel request for it
    started: bool = False  # its handler was called
    recording: bool = False  # its outcome is being written: the write's answer is the truth
    owner: int = field(default_factory=threading.get_ident)  # the slot thread holding it

    def __post_init__(self) -> None:
        self.deadline = self.claim.lease_expires_at

    @property
    def job(self) -> Job:
        return self.claim.job


class LeaseBook:
    """The leases of one dispatcher, shared by its slots and its heartbeat."""

    def __init__(self, hooks: pluggy.HookRelay, clock: Clock, lease_seconds: float) -> None:
        self._hooks = hooks
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._held: dict[str, Lease] = {}  # token -> lease

    def hold(self, claims: Iterable[Claim]) -> list[Lease]:
        leases = [Lease(claim) for claim in claims]
        with self._lock:
            for lease in leases:
                self._held[lease.claim.token] = lease
        return leases

    def forget(self, lease: Lease) -> None:
        with self._lock:
            self._held.pop(lease.claim.token, None)

    def all(self) -> list[Lease]:
        with self._lock:
            return list(self._held.values())

    def owned_by(self, thread_id: int) -> list[Lease]:
        with self._lock:
            return [lease for lease in self._held.values() if lease.owner == thread_id]

    def gone(self, lease: Lease) -> bool:
        """Lost, or past its deadline: an outcome for it is not worth retrying."""
        return lease.lost or self._clock() > lease.deadline

    def renew(self, beats: Heartbeat) -> list[Lease]:
        """One beat: renew every lease held. Returns the leases whose job a cancel request
        reached just now (their handlers are to be interrupted)."""
        with self._lock:
            held = {token: lease for token, lease in self._held.items() if not lease.lost}
        answers = beats.beat([(lease.job.id, token) for token, lease in held.items()])
        cancelled = []
        for (_, token), status in answers or ():
            lease = held.get(token)
            if lease is None:
                continue
            if status is LeaseStatus.LOST:
                # Recording: the beat may have come after the write took the token (the
                # job ended, not lost); a write that is refused reports a real loss itself.
                if not lease.recording:
                    self.lost(lease)
                continue
            lease.deadline = self._clock() + self._lease_seconds
            if status is LeaseStatus.CANCEL and not lease.cancelled:
                lease.cancelled = True
                cancelled.append(lease)
        return cancelled

    def lost(self, lease: Lease, *, held: bool = True) -> None:
        """Mark the lease lost and fire ``jobqueue_lease_lost`` -- once per lease. ``held``:
        only while the lease is still held (a heartbeat's answer may come after the outcome
        was recorded)."""
        with self._lock:
            if lease.lost or (held and lease.claim.token not in self._held):
                return
            lease.lost = True
        logger.warning(
            "lost the lease of job %s: another dispatcher may run it; "
            "this attempt's outcome will be discarded",
            lease.job.id,
        )
        emit(self._hooks, "jobqueue_lease_lost", job=lease.job)
