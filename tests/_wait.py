"""Polling with a deadline: how tests wait for another thread or process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 20.0, step: float = 0.05) -> T:
    """Re-check ``predicate`` every ``step`` s until it returns a true value or ``timeout`` passes.

    Returns that value (or the last, false one), so a test can wait for data and use it.
    """
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        tick.wait(step)
    return predicate()
