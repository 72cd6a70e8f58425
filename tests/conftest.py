"""Suite-wide checks."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_thread_left_running() -> Iterator[None]:
    """A test that leaves a non-daemon thread running (a dispatcher it never stopped) fails
    here: otherwise the interpreter would wait for that thread at exit, and the whole run
    would hang after its last test."""
    before = set(threading.enumerate())
    yield
    left = [
        thread
        for thread in threading.enumerate()
        if thread not in before and not thread.daemon and thread.is_alive()
    ]
    for thread in left:
        thread.join(5)
    still = [thread.name for thread in left if thread.is_alive()]
    assert not still, f"the test left non-daemon threads running: {still}"
