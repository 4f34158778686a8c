"""The five quick-wins of an AI model router, each observable.

Depends only on the OpenTelemetry API, structlog, requests and psutil; torch is
optional and imported where it is used. Importing this package imports none of
its submodules: names are resolved on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE: dict[str, str] = {  # name -> submodule: the one list of the public names
    "AuthenticationError": "errors",
    "BadRequestError": "errors",
    "InsufficientCreditsError": "errors",
    "ModelTooLargeError": "errors",
    "ProviderConnectionError": "errors",
    "ProviderError": "errors",
    "ProviderTimeoutError": "errors",
    "ProviderUnavailableError": "errors",
    "RateLimitError": "errors",
    "RouterscopeError": "errors",
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
__all__ = sorted(_WHERE)  # the names above; a test pins them

if TYPE_CHECKING:  # explicit re-exports for type checkers; the names come from _WHERE
    from routerscope.core.batch import BatchOptimizer as BatchOptimizer
    from routerscope.core.batch import detect_hardware as detect_hardware
    from routerscope.core.cache import ModelCache as ModelCache
    from routerscope.core.cache import get_cache as get_cache
    from routerscope.core.errors import AuthenticationError as AuthenticationError
    from routerscope.core.errors import BadRequestError as BadRequestError
    from routerscope.core.errors import InsufficientCreditsError as InsufficientCreditsError
    from routerscope.core.errors import ModelTooLargeError as ModelTooLargeError
    from routerscope.core.errors import ProviderConnectionError as ProviderConnectionError
    from routerscope.core.errors import ProviderError as ProviderError
    from routerscope.core.errors import ProviderTimeoutError as ProviderTimeoutError
    from routerscope.core.errors import ProviderUnavailableError as ProviderUnavailableError
    from routerscope.core.errors import RateLimitError as RateLimitError
    from routerscope.core.errors import RouterscopeError as RouterscopeError
    from routerscope.core.lazy import lazy as lazy
    from routerscope.core.lazy import mark_ready as mark_ready
    from routerscope.core.memory import MemoryMonitor as MemoryMonitor
    from routerscope.core.memory import get_monitor as get_monitor
    from routerscope.core.openrouter import OpenRouterClient as OpenRouterClient
    from routerscope.core.pool import pool_stats as pool_stats
    from routerscope.core.pool import pooled_session as pooled_session


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'routerscope.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"routerscope.core.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
