"""What ``import routerscope.auto`` does, once per process, never raising."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
from typing import Any

from routerscope.core import signals
from routerscope.core.lazy import record_startup_phase

__all__ = ["activate", "is_active", "memory_monitor", "wait_instrumented"]

_logger = logging.getLogger("routerscope.telemetry")
_active = False
_lock = threading.Lock()
_monitor: Any = None
HARDWARE_EVENT_DELAY = 1.0


def is_active() -> bool:
    return _active


def memory_monitor() -> Any:
    """The MemoryMonitor that ``routerscope.auto`` started, or None."""
    return _monitor


def _step(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - one failing part must not stop the others
        _logger.warning("routerscope: %s unavailable (%s: %s)", name, type(exc).__name__, exc)
        return None


def activate(*, instrument_requests: bool = True) -> bool:
    """Configure telemetry from the environment and instrument the process (idempotent)."""
    global _active
    with _lock:
        if _active:
            return True
        _active = True
    from routerscope.telemetry import Settings

    imported_at = time.time()
    settings = Settings.from_env()
    if settings.sdk_disabled:
        return False
    from routerscope.telemetry import configure

    _step("telemetry", configure, settings=settings)
    _step("start-up timing", record_startup_phase, signals.PHASE_IMPORT, at=imported_at)
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    if any(k.startswith("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_") for k in os.environ):
        # only where headers are captured: requests walks os.environ twice per call (proxies),
        # so every variable set costs every request of the process
        os.environ.setdefault("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",
                              ".*authorization.*,.*api[-_]?key.*,.*token.*,cookie,set-cookie")
    _instrument = _step("instrumentation", importlib.import_module,
                        "routerscope.instrumentation._requests")
    if _instrument is None:
        return True
    if settings.genai:
        _step("GenAI instrumentation", _instrument.patch_genai,
              capture_content=settings.capture_content)
    if settings.pool_counting:
        _step("pool counting", _instrument.patch_urllib3_pools)
    _step("client libraries", _hook_libraries, settings)
    if instrument_requests and "requests" not in settings.disabled_instrumentations:
        # LLM calls are covered by the GenAI wrapper from now on; the requests
        # instrumentation (spans for every other request) loads off the import path
        import atexit

        atexit.register(_stop_instrumenting)  # runs before telemetry's shutdown (LIFO)
        threading.Thread(target=_step, args=("requests instrumentation", _instrument_requests),
                         name="routerscope-instrument", daemon=True).start()
    if settings.memory_monitor:
        _step("memory monitor", _start_monitor, settings)
    if settings.hardware_event:
        _step("hardware event", _hardware_later)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)
    return True


def _lazy(module: str, func: str) -> Any:
    """A patch that imports its instrumentation module only when the library is imported."""
    def patch(mod: Any) -> None:
        import importlib

        getattr(importlib.import_module(f"routerscope.instrumentation.{module}"), func)(mod)

    return patch


def _hook_libraries(settings: Any) -> None:
    """Patch httpx, httpx2 and aiohttp when (and if) the application imports them."""
    from routerscope.instrumentation import _hooks

    if settings.instrument_httpx:
        _hooks.when_imported("httpx", _lazy("_httpx", "patch_client"))
        _hooks.when_imported("httpcore", _lazy("_httpx", "patch_core"))
    if settings.instrument_httpx2:
        _hooks.when_imported("httpx2", _lazy("_httpx", "patch_client"))
        _hooks.when_imported("httpcore2", _lazy("_httpx", "patch_core"))
    if settings.instrument_aiohttp:
        _hooks.when_imported("aiohttp", _lazy("_aiohttp", "patch"))
    if settings.instrument_httpx or settings.instrument_httpx2:  # the SDKs' HTTP layers
        _hooks.when_imported("openai", _lazy("_sdk", "patch"))
        _hooks.when_imported("anthropic", _lazy("_sdk", "patch"))


_stopping = False


def _stop_instrumenting() -> None:
    """At exit: the background thread must not instrument (and ask for a meter) after shutdown."""
    global _stopping
    with _lock:
        _stopping = True


def _instrument_requests() -> None:
    from routerscope.core.otel import background_work

    with background_work():  # fork() waits for this import to finish
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        from routerscope.instrumentation._requests import instrument_beneath

        with _lock:
            if _stopping:
                return
            inst = RequestsInstrumentor()
            if not inst.is_instrumented_by_opentelemetry:
                from routerscope.telemetry import instrumentation_meter_provider

                # its duration histogram pre-aggregated, where routerscope owns the MeterProvider
                meters = instrumentation_meter_provider()
                instrument_beneath(lambda: inst.instrument(meter_provider=meters) if meters is not None
                                   else inst.instrument())
    _requests_instrumented.set()


_requests_instrumented = threading.Event()


def wait_instrumented(timeout: float = 5.0) -> bool:
    """Wait for the background requests instrumentation (tests and the demo use this)."""
    return _requests_instrumented.wait(timeout)


def _start_monitor(settings: Any) -> None:
    global _monitor
    from routerscope.core.memory import MemoryMonitor

    _monitor = MemoryMonitor(interval=settings.memory_interval, window=settings.memory_window,
                             rss_limit_mb=settings.memory_rss_limit_mb).start(delay_first=True)


def _hardware_later() -> None:
    """Emit the detected hardware once, off the import path (torch only if already loaded)."""
    def run() -> None:
        if threading.Event().wait(HARDWARE_EVENT_DELAY):
            return
        try:
            from routerscope.core.otel import background_work

            with background_work():
                from routerscope.core.batch import detect_hardware, emit_hardware

                hardware = detect_hardware(use_torch="torch" in sys.modules)
            emit_hardware(hardware)
        except Exception:
            _logger.debug("hardware detection failed", exc_info=True)

    threading.Thread(target=run, name="routerscope-hardware", daemon=True).start()


def _after_fork() -> None:
    """Threads do not survive fork(): restart the monitor in the child."""
    if _monitor is not None and _monitor._thread is not None:
        _monitor._thread = None
        _step("memory monitor (after fork)", _monitor.start)
