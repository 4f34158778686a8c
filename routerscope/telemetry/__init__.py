"""Turns routerscope's signals into data: SDK set-up, exporters, sidecar, report.

``configure()`` and ``shutdown()`` are the entry points; ``import
routerscope.auto`` calls ``configure()`` for you.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["configure", "force_flush", "is_configured", "shutdown"]

if TYPE_CHECKING:
    from routerscope.telemetry._setup import configure, force_flush, is_configured, shutdown


def __getattr__(name: str) -> Any:
    if name in __all__:
        from routerscope.telemetry import _setup

        value = getattr(_setup, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'routerscope.telemetry' has no attribute {name!r}")
