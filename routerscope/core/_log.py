"""Structured events from the core, through structlog onto stdlib logging.

The core never configures logging. Its events are structlog event dicts handed
to ``logging.getLogger(name)`` as the record's message and ``extra`` fields, so
whatever the application (or ``routerscope.telemetry``) attaches to the
``routerscope`` logger receives them: a JSON renderer, the OTel log bridge, or
nothing at all.

The level is checked on the stdlib logger before anything else happens, and
structlog itself is imported when the first enabled event is emitted: importing
the core (and ``routerscope.auto``) does not pay for it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = ["EventLogger", "get_logger"]


class EventLogger:
    """``debug/info/warning/error/exception(event, **fields)`` onto a stdlib logger."""

    __slots__ = ("_bound", "_lock", "_std")

    def __init__(self, name: str) -> None:
        self._std = logging.getLogger(name)
        self._bound: Any = None
        self._lock = threading.Lock()

    def _logger(self) -> Any:
        if self._bound is None:
            with self._lock:
                if self._bound is None:
                    import structlog

                    self._bound = structlog.wrap_logger(
                        self._std,
                        processors=[
                            structlog.contextvars.merge_contextvars,
                            structlog.stdlib.render_to_log_kwargs,
                        ],
                        wrapper_class=structlog.stdlib.BoundLogger,
                    )
        return self._bound

    def _emit(self, level: int, method: str, event: str, fields: dict[str, Any]) -> None:
        if self._std.isEnabledFor(level):
            getattr(self._logger(), method)(event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, "debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, "info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit(logging.WARNING, "warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit(logging.ERROR, "error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._emit(logging.ERROR, "exception", event, fields)

    def is_enabled(self, level: int) -> bool:
        return self._std.isEnabledFor(level)


def get_logger(name: str) -> EventLogger:
    return EventLogger(name)
