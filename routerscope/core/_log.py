"""Structured events from the core, through structlog onto stdlib logging.

The core never configures logging. Its events are structlog event dicts handed
to ``logging.getLogger(name)`` as the record's message and ``extra`` fields, so
whatever the application (or ``routerscope.telemetry``) attaches to the
``routerscope`` logger receives them: a JSON renderer, the OTel log bridge, or
nothing at all. Levels are checked before any processing happens.
"""

from __future__ import annotations

import logging

import structlog
from structlog.stdlib import BoundLogger

__all__ = ["get_logger"]


def get_logger(name: str) -> BoundLogger:
    logger: BoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.render_to_log_kwargs,
        ],
        wrapper_class=BoundLogger,
        cache_logger_on_first_use=True,
    )
    return logger
