"""Polling with a deadline: how tests wait for another thread or process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, step: float = 0.05) -> bool:
    """Re-check ``predicate`` every ``step`` s until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while time.monotonic() < deadline:
        if predicate():
            return True
        tick.wait(step)
    return predicate()
