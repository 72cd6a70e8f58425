"""A dispatcher's heartbeat: what one backend call a beat does, bounded in time.

Each beat is one ``backend.heartbeat`` call: it renews every lease the dispatcher holds,
keeps the dispatcher's record among the live ones (``jobqueue workers``), and brings back the
cancel requests of its jobs. Maintenance (``maintenance``) rides along in the same worker
thread.

The call runs in a worker thread and the beat waits for it at most a sixth of the lease. A
call that hangs (a socket timeout can be as long as the lease) is left to finish on its own and
the next beat makes a new call from another thread, on a connection of its own — so a hung
round trip costs one beat, not every lease; at most ``MAX_IN_FLIGHT`` calls are ever pending.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Sequence

from jobqueue.backend import DispatcherInfo, LeaseStatus
from jobqueue.engine import Engine
from jobqueue.errors import JobQueueError
from jobqueue.runtime.maintenance import Maintenance

logger = logging.getLogger(__name__)

BEAT_EVERY = 1.0
"""Seconds between beats at most (a third of the lease when that is shorter): a cancel
reaches a running job, and a dead dispatcher leaves the live list, within about this."""

MAX_IN_FLIGHT = 4
"""Beats whose call hangs are left running; past this many, beats wait for one of them."""


class Heartbeat:
    """The beats of one dispatcher (see the module docstring)."""

    def __init__(
        self,
        backend: Engine,
        info: DispatcherInfo,
        lease_seconds: float,
        maintenance: Maintenance,
    ) -> None:
        self.backend = backend
        self.maintenance = maintenance
        self.info = info
        self.lease_seconds = lease_seconds
        self.every = min(BEAT_EVERY, lease_seconds / 3)
        self.bound = lease_seconds / 6
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=MAX_IN_FLIGHT, thread_name_prefix="jobqueue-beat"
        )
        self._in_flight: set[concurrent.futures.Future[list[LeaseStatus]]] = set()

    def beat(
        self, leases: Sequence[tuple[str, str]]
    ) -> list[tuple[tuple[str, str], LeaseStatus]] | None:
        """Renew ``(job_id, token)`` leases and refresh the record. Returns each lease with
        its status, or ``None`` when the backend did not answer within the bound."""
        self._in_flight = {f for f in self._in_flight if not f.done()}
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            logger.warning("%d heartbeats are hung; waiting for one of them", MAX_IN_FLIGHT)
            concurrent.futures.wait(self._in_flight, self.bound, "FIRST_COMPLETED")
            return None
        sent = list(leases)
        call = self._pool.submit(self._call, sent)
        self._in_flight.add(call)
        try:
            statuses = call.result(timeout=self.bound)
        except concurrent.futures.TimeoutError:
            logger.warning(
                "a heartbeat took over %.1fs; the next one goes on without it", self.bound
            )
            return None
        except JobQueueError as exc:
            logger.warning("heartbeat failed: %s", exc)
            return None
        except Exception:  # a bug in a backend: the beats must go on (or leases expire)
            logger.exception("heartbeat failed unexpectedly")
            return None
        return list(zip(sent, statuses, strict=True))

    def _call(self, leases: list[tuple[str, str]]) -> list[LeaseStatus]:
        statuses = self.backend.heartbeat(self.info, leases, self.lease_seconds)
        self.maintenance.step()
        return statuses

    def leave(self) -> None:
        """Maintain once more, recovering and reporting expired leases (a burst run may end
        before the next maintenance), then remove the dispatcher's record (a clean exit);
        both within the bound."""

        def last_call() -> None:
            self.maintenance.run()
            self.backend.remove_dispatcher(self.info.id)

        future = self._pool.submit(last_call)
        try:
            future.result(timeout=self.bound)
        except (concurrent.futures.TimeoutError, JobQueueError) as exc:
            logger.warning("could not remove this dispatcher's record: %s", exc)
        except Exception:  # a bug: its record expires like a dead dispatcher's
            logger.exception("could not remove this dispatcher's record")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
