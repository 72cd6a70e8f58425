"""Riding out an unreachable backend: a call retried with capped exponential back-off."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from jobqueue.errors import BackendError, LeaseLostError

logger = logging.getLogger(__name__)

T = TypeVar("T")

OUTAGE_BACKOFF_MIN, OUTAGE_BACKOFF_MAX = 0.05, 5.0
"""Back-off (seconds) between retries of a backend call while the backend is unreachable."""


class Outages:
    """Retries backend calls through ``BackendError`` until told to give up."""

    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping

    def call(self, operation: Callable[[], T], give_up: Callable[[], bool] | None = None) -> T:
        """Run ``operation``, riding out outages until ``give_up()`` (default: the
        dispatcher is stopping) says to re-raise the error. ``LeaseLostError`` is never
        retried."""
        until_stop = give_up is None  # then stop() ends the back-off: the retry re-raises
        give_up = give_up or self._stopping.is_set
        delay = OUTAGE_BACKOFF_MIN
        while True:
            try:
                return operation()
            except LeaseLostError:
                raise
            except BackendError as exc:
                if give_up():
                    raise
                logger.warning("backend error, retrying in about %.2fs: %s", delay, exc)
            pause = delay * random.uniform(0.5, 1.0)
            if until_stop or not self._stopping.is_set():
                self._stopping.wait(pause)  # stop() ends the back-off at once
            else:
                time.sleep(pause)  # stopping, yet told to retry (an outcome to save)
            delay = min(delay * 2, OUTAGE_BACKOFF_MAX)
