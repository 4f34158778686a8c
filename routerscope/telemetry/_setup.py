"""SDK providers and exporters: :func:`configure` and :func:`shutdown`.

Histogram buckets come from each instrument's ``explicit_bucket_boundaries_advisory``
(set by :mod:`routerscope.core.otel` from ``Metric.buckets``), so no View is
needed and ``opentelemetry-instrument`` gets the same buckets.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace

from routerscope._version import __version__
from routerscope.core import otel, signals
from routerscope.telemetry._settings import SdkArgs, Settings, exporter_wanted, sdk_self_metrics

__all__ = ["configure", "force_flush", "is_configured", "shutdown"]

_logger = logging.getLogger("routerscope.telemetry")

@dataclass
class _State:
    settings: Settings
    tracer_provider: Any = None
    meter_provider: Any = None
    logger_provider: Any = None
    owned: list[Any] = field(default_factory=list)  # providers we created and must shut down
    lazy_exporters: list[Any] = field(default_factory=list)
    joined: list[str] = field(default_factory=list)  # signals whose provider the app owns
    resource: Any = None  # one Resource (one service.instance.id) for every provider
    fast: Any = None  # the pre-aggregated histograms of routerscope's own MeterProvider


_state: _State | None = None
_lock = threading.Lock()


def is_configured() -> bool:
    return _state is not None


def instrumentation_meter_provider() -> Any:
    """The meter provider for an instrumentation routerscope installs (None: the global one).

    Its histograms are routerscope's pre-aggregated ones (the SDK's points, a
    fraction of the cost per record); it exists where routerscope built the
    MeterProvider and could attach them.
    """
    st = _state
    if st is None or st.fast is None:
        return None
    from routerscope.telemetry._fast_metrics import FastMeterProvider

    return FastMeterProvider(st.meter_provider, st.fast)


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


def _is_sdk(provider: Any, sdk_cls: type) -> bool:
    return isinstance(provider, sdk_cls)


@contextlib.contextmanager
def _narrowed_env(overrides: dict[str, str | None]) -> Iterator[None]:
    """Run set-up with the variables the SDK reads at import narrowed to usable values.

    The settings warned about each bad one; the originals are restored right
    after set-up. ``opentelemetry.propagate`` is imported inside, because it
    reads OTEL_PROPAGATORS once, at import.
    """
    before = {k: os.environ.get(k) for k in overrides}
    for k, v in overrides.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        import opentelemetry.propagate  # noqa: F401

        yield
    finally:
        for k, old in before.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


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
        sdk = st.sdk or SdkArgs.from_env(os.environ)
        state = _State(st)
        try:
            with _narrowed_env(sdk.env_overrides), sdk_self_metrics():
                state.resource = _resource(st)
                _configure_metrics(state, sdk, metric_readers, otlp and exporter_wanted("metrics"))
                _configure_traces(state, sdk, span_exporters, otlp and exporter_wanted("traces"))
                _configure_logs(state, sdk, log_exporters, otlp and exporter_wanted("logs"))
        except Exception as exc:  # noqa: BLE001 - the app runs on without telemetry
            _logger.warning("routerscope: telemetry set-up failed (%s: %s); continuing "
                            "without it", type(exc).__name__, exc)
            otel.swallowed("telemetry.configure")
            return False
        _state = state
        otel.observe(signals.TELEMETRY_DEFERRED_DROPPED,
                     lambda: [(float(otel.deferred_dropped()), {})])
        atexit.register(shutdown)
    return True


def _configure_metrics(state: _State, sdk: SdkArgs, readers: Sequence[Any], otlp: bool) -> None:
    from opentelemetry.sdk.metrics import (
        AlwaysOffExemplarFilter,
        AlwaysOnExemplarFilter,
        ExemplarFilter,
        MeterProvider,
        TraceBasedExemplarFilter,
    )
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    current = metrics.get_meter_provider()
    if _is_sdk(current, MeterProvider):
        state.joined.append("metrics")
        state.meter_provider = current
        return
    all_readers = list(readers)
    if otlp:
        from routerscope.telemetry._exporters import LazyOTLPMetricExporter

        exporter = LazyOTLPMetricExporter(
            endpoint=sdk.endpoints["metrics"], timeout=sdk.exporter_timeout_s["metrics"],
            compression=sdk.compression["metrics"], temporality=sdk.temporality,
            histogram_aggregation=sdk.histogram_aggregation)
        state.lazy_exporters.append(exporter)
        all_readers.append(_fork_safe_reader(PeriodicExportingMetricReader)(
            exporter, export_interval_millis=sdk.metric_export_interval_ms,
            export_timeout_millis=sdk.metric_export_timeout_ms))
    exemplar_filter: ExemplarFilter = (
        AlwaysOnExemplarFilter() if sdk.exemplar_filter == "always_on"
        else AlwaysOffExemplarFilter() if sdk.exemplar_filter == "always_off"
        else TraceBasedExemplarFilter())
    mp = MeterProvider(resource=state.resource, metric_readers=all_readers,
                       exemplar_filter=exemplar_filter, shutdown_on_exit=False)
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from routerscope.telemetry._fast_metrics import attach

    # the hot-path histograms: aggregated by routerscope, exported as this provider's points
    fast = attach(mp, all_readers, sdk.exemplar_filter,
                  InstrumentationScope(otel.SCOPE, __version__, None, None))
    metrics.set_meter_provider(mp)
    # only where mp is the global provider (an app's own non-SDK provider may have kept its place)
    if fast is not None and metrics.get_meter_provider() is mp:
        otel.set_record_sink(fast.record)
        state.fast = fast
    state.meter_provider = mp
    state.owned.append(mp)


def _fork_safe_reader(base: type) -> type:
    """``base`` whose in-memory collection a ``fork()`` waits for, and whose locks the child renews.

    The SDK's periodic reader restarts its thread in a forked child but keeps its
    export lock and its storage locks as they were: forked mid-collection or
    mid-export, the child's flushes would wait on them forever. A fork waits for a
    collection (in memory, quick), never for an export (the network).
    """
    class ForkSafeReader(base):  # type: ignore[misc]
        def _set_collect_callback(self, func: Any) -> None:
            def collect(reader: Any, timeout_millis: float = 10_000) -> Any:
                with otel.background_work():
                    return func(reader, timeout_millis=timeout_millis)

            super()._set_collect_callback(collect)

        def _at_fork_reinit(self) -> None:
            self._export_lock = threading.Lock()
            super()._at_fork_reinit()

    return ForkSafeReader


def _own_tracer_provider(base: type) -> type:
    """routerscope's TracerProvider: a span processor the app adds turns off late span ends."""
    class OwnTracerProvider(base):  # type: ignore[misc]
        sealed = False

        def add_span_processor(self, span_processor: Any) -> None:
            if self.sealed:  # the app's own processor: LLM call spans end before the call returns
                otel.set_spans_end_later(False)
                otel.drain()
            super().add_span_processor(span_processor)

    return OwnTracerProvider


class _DrainFirst:
    """The first span processor of routerscope's TracerProvider: its flush and shutdown drain first.

    LLM call spans end on the deferred worker; a ``force_flush()`` or
    ``shutdown()`` called on the provider itself (not through routerscope) then
    ends them before the batch processors flush.
    """

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        return None

    def _on_ending(self, span: Any) -> None:
        return None

    def on_end(self, span: Any) -> None:
        return None

    def shutdown(self) -> None:
        otel.set_spans_end_later(False)
        otel.drain()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        otel.drain()
        return True


def _sampler(sdk: SdkArgs) -> Any:
    """The sampler OTEL_TRACES_SAMPLER names (None: an installed plug-in the SDK loads)."""
    from opentelemetry.sdk.trace import sampling

    r = sdk.sampler_ratio
    choices: dict[str | None, Any] = {
        None: lambda: None,
        "always_on": lambda: sampling.ALWAYS_ON,
        "always_off": lambda: sampling.ALWAYS_OFF,
        "traceidratio": lambda: sampling.TraceIdRatioBased(r),
        "parentbased_always_on": lambda: sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": lambda: sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": lambda: sampling.ParentBasedTraceIdRatio(r),
    }
    return choices[sdk.sampler]()


def _configure_traces(state: _State, sdk: SdkArgs, exporters: Sequence[Any], otlp: bool) -> None:
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from routerscope.telemetry._redact import RedactingSpanExporter

    current = trace.get_tracer_provider()
    if _is_sdk(current, TracerProvider):
        state.joined.append("traces")
        state.tracer_provider = current
        return
    from opentelemetry.metrics import NoOpMeterProvider

    # The SDK's per-span counters (otel.sdk.span.*) cost two or three metric records on
    # every span; the processors' and exporters' metrics (dropped spans, queue depth,
    # export failures: per batch, cheap) keep the real meter provider below.
    tp = _own_tracer_provider(TracerProvider)(
        resource=state.resource, shutdown_on_exit=False, sampler=_sampler(sdk),
        span_limits=SpanLimits(**sdk.span_limits), meter_provider=NoOpMeterProvider())
    tp.add_span_processor(_DrainFirst())
    all_exporters = list(exporters)
    if otlp:
        from routerscope.telemetry._exporters import LazyOTLPSpanExporter

        all_exporters.append(LazyOTLPSpanExporter(
            endpoint=sdk.endpoints["traces"], timeout=sdk.exporter_timeout_s["traces"],
            compression=sdk.compression["traces"]))
        state.lazy_exporters.append(all_exporters[-1])
    b = sdk.bsp
    for exp in all_exporters:
        tp.add_span_processor(BatchSpanProcessor(
            RedactingSpanExporter(exp), max_queue_size=b.max_queue_size,
            schedule_delay_millis=b.schedule_delay_millis,
            max_export_batch_size=b.max_export_batch_size,
            export_timeout_millis=b.export_timeout_millis, meter_provider=state.meter_provider))
    trace.set_tracer_provider(tp)
    state.tracer_provider = tp
    state.owned.append(tp)
    tp.sealed = True  # a processor the app adds from now on sees spans end on the caller's thread
    # batch processors only (force_flush and shutdown drain first); only where tp is the
    # global provider (an app's own non-SDK provider may have kept its place)
    otel.set_spans_end_later(trace.get_tracer_provider() is tp)


def _configure_logs(state: _State, sdk: SdkArgs, exporters: Sequence[Any], otlp: bool) -> None:
    from opentelemetry._logs import get_logger_provider, set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from routerscope.telemetry._logging import install_logging

    bridge = state.settings.logs
    current = get_logger_provider()
    if _is_sdk(current, LoggerProvider):
        state.joined.append("logs")
        state.logger_provider = current
    elif bridge:
        lp = LoggerProvider(resource=state.resource, shutdown_on_exit=False,
                            log_record_limits=LogRecordLimits(**sdk.log_limits))
        all_exporters = list(exporters)
        if otlp:
            from routerscope.telemetry._exporters import LazyOTLPLogExporter

            all_exporters.append(LazyOTLPLogExporter(
                endpoint=sdk.endpoints["logs"], timeout=sdk.exporter_timeout_s["logs"],
                compression=sdk.compression["logs"]))
            state.lazy_exporters.append(all_exporters[-1])
        b = sdk.blrp
        for exp in all_exporters:
            lp.add_log_record_processor(BatchLogRecordProcessor(
                exp, max_queue_size=b.max_queue_size,
                schedule_delay_millis=b.schedule_delay_millis,
                max_export_batch_size=b.max_export_batch_size,
                export_timeout_millis=b.export_timeout_millis,
                meter_provider=state.meter_provider))
        set_logger_provider(lp)
        state.logger_provider = lp
        state.owned.append(lp)
    install_logging(state.logger_provider if bridge else None,
                    level=state.settings.log_level, fmt=state.settings.log_format)


def force_flush(timeout_s: float = 5.0) -> bool:
    """Apply deferred records and flush every provider we own, within ``timeout_s``."""
    import time

    st = _state
    t0 = time.monotonic()
    drained = _run_bounded([otel.drain], timeout_s)  # a slow span processor: bounded all the same
    if st is None:
        return drained
    rest = max(0.0, timeout_s - (time.monotonic() - t0))
    return _run_bounded([p.force_flush for p in (st.meter_provider, st.tracer_provider,
                                                 st.logger_provider)
                         if p is not None and hasattr(p, "force_flush")], rest) and drained


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
        except Exception:  # noqa: BLE001 - a provider's flush failing must not reach the app
            otel.swallowed("telemetry.flush")
    return run


def shutdown(timeout_s: float | None = None) -> bool:
    """Flush and stop what :func:`configure` set up, in bounded time (endpoint up or down).

    ``timeout_s`` (default ``ROUTERSCOPE_SHUTDOWN_TIMEOUT``) is clamped to
    ``MAX_SHUTDOWN_TIMEOUT`` seconds.
    """
    global _state
    with _lock:
        st = _state
        if st is None:
            return True
        _state = None
    import math
    import time

    from routerscope.telemetry._logging import uninstall_logging
    from routerscope.telemetry._settings import MAX_SHUTDOWN_TIMEOUT

    timeout = st.settings.shutdown_timeout if timeout_s is None else timeout_s
    if not math.isfinite(timeout) or timeout < 0:
        timeout = st.settings.shutdown_timeout
    timeout = min(timeout, MAX_SHUTDOWN_TIMEOUT)
    t0 = time.monotonic()
    atexit.unregister(shutdown)
    otel.set_spans_end_later(False)  # a call ending from now on ends its span before it returns
    _run_bounded([otel.drain], timeout * 0.2)
    uninstall_logging()
    try:
        closed = [e for e in st.lazy_exporters if e.close_if_unreachable()]
    except Exception:  # noqa: BLE001 - the check is an optimisation; the flush is bounded anyway
        otel.swallowed("telemetry.shutdown.reachability")
        closed = []
    if closed:
        _logger.warning("routerscope: nothing listens at %s; telemetry not flushed",
                        ", ".join(sorted({str(e.endpoint()) for e in closed})))
    # An exporter first built by the final collection would ask the already shut-down
    # MeterProvider for its self-metrics meter (the SDK then warns at every exit): build
    # them now, while the providers are alive. Their import happens at exit either way.
    interrupted = isinstance(getattr(sys, "last_value", None), KeyboardInterrupt)
    for e in st.lazy_exporters:
        if interrupted and not e.built:
            # Ctrl-C before the first export: building the exporter now imports modules,
            # and on Python 3.11 any code compiled at exit makes the process exit 1 instead
            # of dying by SIGINT (130), which shells and supervisors rely on. What it holds
            # is dropped, as the interrupted app's own unfinished work is.
            e._shutdown()
        elif not e._closed:
            _run_bounded([e.prepare], timeout * 0.2)
    # metrics last so the other providers' final self-metrics can still be collected
    traces_logs = [p.shutdown for p in (st.tracer_provider, st.logger_provider)
                   if p in st.owned]
    ok = _run_bounded(traces_logs, timeout * 0.6)
    _run_bounded([otel.drain], max(0.0, timeout - (time.monotonic() - t0)))
    rest = max(0.0, timeout - (time.monotonic() - t0))
    ok = _run_bounded([p.shutdown for p in (st.meter_provider,) if p in st.owned], rest) and ok
    otel.set_record_sink(None)  # after the final collection, which carried its histograms
    from routerscope.telemetry._logging import unfilter_http_loggers

    unfilter_http_loggers()  # after the last export, whose requests they keep out of the app's logs
    return ok
