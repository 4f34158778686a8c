"""SDK providers, exporters and views: :func:`configure` and :func:`shutdown`."""

from __future__ import annotations

import atexit
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry import metrics, trace

from routerscope._version import __version__
from routerscope.core import otel, signals
from routerscope.telemetry._settings import DEFAULT_ENDPOINT, Settings, otlp_endpoint_set

__all__ = ["VIEWS_BUCKETS", "configure", "force_flush", "is_configured", "shutdown"]

_logger = logging.getLogger("routerscope.telemetry")

VIEWS_BUCKETS: Final[dict[str, tuple[float, ...]]] = {
    m.name: m.buckets for m in signals.ALL_METRICS if m.buckets is not None
}


@dataclass
class _State:
    settings: Settings
    tracer_provider: Any = None
    meter_provider: Any = None
    logger_provider: Any = None
    owned: list[Any] = field(default_factory=list)  # providers we created and must shut down
    lazy_exporters: list[Any] = field(default_factory=list)
    joined: list[str] = field(default_factory=list)  # signals whose provider the app owns


_state: _State | None = None
_lock = threading.Lock()


def is_configured() -> bool:
    return _state is not None


def _resource(settings: Settings) -> Any:
    from opentelemetry.sdk.resources import Resource

    attrs: dict[str, Any] = {
        "service.instance.id": str(uuid.uuid4()),
        "host.name": socket.gethostname(),
        "process.pid": os.getpid(),
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": ".".join(map(str, sys.version_info[:3])),
        "process.executable.name": os.path.basename(sys.executable),
        "telemetry.distro.name": "routerscope",
        "telemetry.distro.version": __version__,
    }
    if settings.service_version:
        attrs["service.version"] = settings.service_version
    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME over these
    return Resource.create(attrs)


def _views() -> list[Any]:
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    # scoped to routerscope's meter: instrumentations that create the same instrument
    # (http.client.request.duration) bring their own bucket advice, and one view
    # matching two scopes makes the SDK warn about conflicting identities
    return [View(instrument_name=name, meter_name=otel.SCOPE,
                 aggregation=ExplicitBucketHistogramAggregation(b))
            for name, b in VIEWS_BUCKETS.items()]


def _endpoint(signal: str) -> str | None:
    """Our default (the local sidecar) unless an OTEL_* variable says otherwise."""
    if otlp_endpoint_set(signal):
        return None  # the exporter reads the standard variables itself
    return f"{DEFAULT_ENDPOINT}/v1/{signal}"


def _is_sdk(provider: Any, sdk_cls: type) -> bool:
    return isinstance(provider, sdk_cls)


def configure(*, settings: Settings | None = None, span_exporters: Sequence[Any] = (),
              metric_readers: Sequence[Any] = (), log_exporters: Sequence[Any] = (),
              otlp: bool = True) -> bool:
    """Set up tracing, metrics and logs; True if routerscope's providers are active.

    Calling it again is harmless. Nothing touches the network here: exporters
    connect on their first export. An application that already installed SDK
    providers keeps them; routerscope records into them. Extra exporters or
    readers (tests, the demo) are added next to the OTLP ones, or instead of
    them with ``otlp=False``.
    """
    global _state
    with _lock:
        if _state is not None:
            return True
        st = settings or Settings.from_env()
        if st.sdk_disabled:
            _logger.info("OTEL_SDK_DISABLED is set: telemetry stays a no-op")
            return False
        os.environ.setdefault("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
        state = _State(st)
        try:
            _configure_metrics(state, metric_readers, otlp)
            _configure_traces(state, span_exporters, otlp)
            _configure_logs(state, log_exporters, otlp)
        except Exception:
            _logger.exception("routerscope telemetry set-up failed; continuing without it")
            return False
        _state = state
        otel.observe(signals.TELEMETRY_DEFERRED_DROPPED,
                      lambda: [(float(otel.deferred_dropped()), {})])
        atexit.register(shutdown)
    return True


def _configure_metrics(state: _State, readers: Sequence[Any], otlp: bool) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    current = metrics.get_meter_provider()
    if _is_sdk(current, MeterProvider):
        state.joined.append("metrics")
        state.meter_provider = current
        return
    all_readers = list(readers)
    if otlp:
        from routerscope.telemetry._exporters import LazyOTLPMetricExporter

        exporter = LazyOTLPMetricExporter(endpoint=_endpoint("metrics"))
        state.lazy_exporters.append(exporter)
        all_readers.append(_fork_safe_reader(PeriodicExportingMetricReader)(exporter))
    mp = MeterProvider(resource=_resource(state.settings), metric_readers=all_readers,
                       views=_views(), shutdown_on_exit=False)
    metrics.set_meter_provider(mp)
    state.meter_provider = mp
    state.owned.append(mp)


def _fork_safe_reader(base: type) -> type:
    """``base`` whose collections (and the export inside them) a ``fork()`` waits for.

    The SDK's periodic reader restarts its thread in a forked child but keeps its
    export lock and its storage locks as they were: forked mid-collection, the
    child's flushes would wait on them forever.
    """
    class ForkSafeReader(base):  # type: ignore[misc]
        def collect(self, timeout_millis: float = 10_000) -> None:
            with otel.background_work():
                super().collect(timeout_millis=timeout_millis)

    return ForkSafeReader


def _configure_traces(state: _State, exporters: Sequence[Any], otlp: bool) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from routerscope.telemetry._redact import RedactingSpanProcessor

    current = trace.get_tracer_provider()
    if _is_sdk(current, TracerProvider):
        state.joined.append("traces")
        state.tracer_provider = current
        return
    from opentelemetry.metrics import NoOpMeterProvider

    # The SDK's per-span counters (otel.sdk.span.*) cost two or three metric records on
    # every span; the processors' and exporters' metrics (dropped spans, queue depth,
    # export failures: per batch, cheap) keep the real meter provider below.
    tp = TracerProvider(resource=_resource(state.settings), shutdown_on_exit=False,
                        meter_provider=NoOpMeterProvider())
    all_exporters = list(exporters)
    if otlp:
        from routerscope.telemetry._exporters import LazyOTLPSpanExporter

        all_exporters.append(LazyOTLPSpanExporter(endpoint=_endpoint("traces")))
        state.lazy_exporters.append(all_exporters[-1])
    for exp in all_exporters:
        tp.add_span_processor(RedactingSpanProcessor(
            BatchSpanProcessor(exp, meter_provider=state.meter_provider)))
    trace.set_tracer_provider(tp)
    state.tracer_provider = tp
    state.owned.append(tp)


def _configure_logs(state: _State, exporters: Sequence[Any], otlp: bool) -> None:
    from opentelemetry._logs import get_logger_provider, set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from routerscope.telemetry._logging import install_logging

    current = get_logger_provider()
    if _is_sdk(current, LoggerProvider):
        state.joined.append("logs")
        state.logger_provider = current
    else:
        lp = LoggerProvider(resource=_resource(state.settings), shutdown_on_exit=False)
        all_exporters = list(exporters)
        if otlp:
            from routerscope.telemetry._exporters import LazyOTLPLogExporter

            all_exporters.append(LazyOTLPLogExporter(endpoint=_endpoint("logs")))
            state.lazy_exporters.append(all_exporters[-1])
        for exp in all_exporters:
            lp.add_log_record_processor(BatchLogRecordProcessor(
                exp, meter_provider=state.meter_provider))
        set_logger_provider(lp)
        state.logger_provider = lp
        state.owned.append(lp)
    install_logging(state.logger_provider, level=state.settings.log_level,
                    fmt=state.settings.log_format)


def force_flush(timeout_s: float = 5.0) -> bool:
    """Apply deferred records and flush every provider we own, within ``timeout_s``."""
    st = _state
    otel.drain()
    if st is None:
        return True
    return _run_bounded([p.force_flush for p in (st.meter_provider, st.tracer_provider,
                                                 st.logger_provider)
                         if p is not None and hasattr(p, "force_flush")], timeout_s)


def _run_bounded(calls: list[Any], timeout_s: float) -> bool:
    """Run ``calls`` on daemon threads; wait at most ``timeout_s`` in all."""
    import time

    threads = [threading.Thread(target=_quiet(c), daemon=True, name="routerscope-flush")
               for c in calls]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


def _quiet(fn: Any) -> Any:
    def run() -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001
            pass
    return run


def shutdown(timeout_s: float | None = None) -> bool:
    """Flush and stop what :func:`configure` set up, in bounded time (endpoint up or down)."""
    global _state
    with _lock:
        st = _state
        if st is None:
            return True
        _state = None
    from routerscope.telemetry._logging import uninstall_logging

    timeout = st.settings.shutdown_timeout if timeout_s is None else timeout_s
    otel.drain()
    uninstall_logging()
    closed = [e for e in st.lazy_exporters if e.close_if_unreachable()]
    if closed:
        _logger.warning("routerscope: nothing listens at %s; telemetry not flushed",
                        ", ".join(sorted({str(e.endpoint() or e._signal) for e in closed})))
    # An exporter first built by the final collection would ask the already shut-down
    # MeterProvider for its self-metrics meter (the SDK then warns at every exit): build
    # them now, while the providers are alive. Their import happens at exit either way.
    for e in st.lazy_exporters:
        if not e._closed:
            _run_bounded([e.prepare], timeout * 0.2)
    # metrics last so the other providers' final self-metrics can still be collected
    traces_logs = [p.shutdown for p in (st.tracer_provider, st.logger_provider)
                   if p in st.owned]
    import time

    t0 = time.monotonic()
    ok = _run_bounded(traces_logs, timeout * 0.6)
    otel.drain()
    rest = max(0.1, timeout - (time.monotonic() - t0))
    ok = _run_bounded([p.shutdown for p in (st.meter_provider,) if p in st.owned], rest) and ok
    try:
        atexit.unregister(shutdown)
    except Exception:  # noqa: BLE001
        pass
    return ok
