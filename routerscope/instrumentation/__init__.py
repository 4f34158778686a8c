"""What ``import routerscope.auto`` patches: one private module per instrumented library.

``activate()`` configures telemetry (:mod:`routerscope.telemetry`) from the
environment and installs the instrumentation; ``import routerscope.auto`` calls
it. :mod:`routerscope.instrumentation.distro` holds the entry points that
``opentelemetry-instrument`` loads.
"""

from __future__ import annotations

from routerscope.instrumentation._activate import activate, is_active, memory_monitor, wait_instrumented

__all__ = ["activate", "is_active", "memory_monitor", "wait_instrumented"]
