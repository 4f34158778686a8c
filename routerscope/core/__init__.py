"""The five quick-wins of an AI model router, each observable.

Depends only on the OpenTelemetry API, structlog, requests and psutil; torch is
optional and imported where it is used. Importing this package imports none of
its submodules: names are resolved on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "BatchOptimizer",
    "MemoryMonitor",
    "ModelCache",
    "OpenRouterClient",
    "detect_hardware",
    "get_cache",
    "get_monitor",
    "lazy",
    "mark_ready",
    "pool_stats",
    "pooled_session",
]

_WHERE = {
    "pooled_session": "pool",
    "pool_stats": "pool",
    "OpenRouterClient": "openrouter",
    "lazy": "lazy",
    "mark_ready": "lazy",
    "ModelCache": "cache",
    "get_cache": "cache",
    "MemoryMonitor": "memory",
    "get_monitor": "memory",
    "BatchOptimizer": "batch",
    "detect_hardware": "batch",
}

if TYPE_CHECKING:
    from routerscope.core.batch import BatchOptimizer, detect_hardware
    from routerscope.core.cache import ModelCache, get_cache
    from routerscope.core.lazy import lazy, mark_ready
    from routerscope.core.memory import MemoryMonitor, get_monitor
    from routerscope.core.openrouter import OpenRouterClient
    from routerscope.core.pool import pool_stats, pooled_session


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'routerscope.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"routerscope.core.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
