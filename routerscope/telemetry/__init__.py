"""In-process telemetry: settings, SDK set-up, exporters, the logging bridge, redaction.

``configure()`` and ``shutdown()`` are the entry points; ``import
routerscope.auto`` calls ``configure()`` for you. Names load on first use, so
importing this package costs nothing until one is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "DEFAULT_ENDPOINT",
    "REDACTED",
    "Settings",
    "configure",
    "force_flush",
    "has_secret",
    "instrumentation_meter_provider",
    "is_configured",
    "redact",
    "shutdown",
]

_HOME: dict[str, str] = {
    "DEFAULT_ENDPOINT": "_settings",
    "Settings": "_settings",
    "REDACTED": "_secrets",
    "has_secret": "_secrets",
    "redact": "_secrets",
    "configure": "_setup",
    "force_flush": "_setup",
    "instrumentation_meter_provider": "_setup",
    "is_configured": "_setup",
    "shutdown": "_setup",
}

if TYPE_CHECKING:
    from routerscope.telemetry._secrets import REDACTED, has_secret, redact
    from routerscope.telemetry._settings import DEFAULT_ENDPOINT, Settings
    from routerscope.telemetry._setup import (
        configure,
        force_flush,
        instrumentation_meter_provider,
        is_configured,
        shutdown,
    )


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'routerscope.telemetry' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"routerscope.telemetry.{home}"), name)
    globals()[name] = value
    return value
