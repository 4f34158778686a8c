"""OTLP/HTTP exporters that import themselves on first export.

The OTLP exporters pull in protobuf and the generated OTLP classes (~70 ms
here). Nothing is exported before the first batch is due, so the import
happens then, on the SDK's worker thread, and not in the application's
``import routerscope.auto``. Behaviour is otherwise the SDK's own exporter:
it reads every ``OTEL_EXPORTER_OTLP_*`` variable and retries as it does.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["LazyOTLPLogExporter", "LazyOTLPMetricExporter", "LazyOTLPSpanExporter"]


def _env_endpoint(signal: str) -> str:
    from routerscope.telemetry._settings import DEFAULT_ENDPOINT

    per = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if per:
        return per
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_ENDPOINT)
    return f"{base.rstrip('/')}/v1/{signal}"


def _reset_in_child(ref: weakref.ref[_Lazy]) -> Any:
    def reset() -> None:
        lazy = ref()
        if lazy is not None:
            lazy._after_fork_in_child()
    return reset


class _Lazy:
    _module = ""
    _cls = ""
    _signal = ""

    def __init__(self, endpoint: str | None = None, **kwargs: Any) -> None:
        self._kwargs = {"endpoint": endpoint, **kwargs} if endpoint else dict(kwargs)
        self._inner: Any = None
        self._lock = threading.Lock()
        self._closed = False
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_reset_in_child(weakref.ref(self)))

    def _after_fork_in_child(self) -> None:
        """The child builds its own exporter: the parent's HTTP session and sockets stay the parent's."""
        self._inner = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        if self._inner is None:
            with self._lock:
                if self._inner is None:
                    import importlib

                    cls = getattr(importlib.import_module(self._module), self._cls)
                    self._inner = cls(**self._kwargs)
        return self._inner

    def prepare(self) -> None:
        """Build the real exporter now (shutdown does, before the providers stop)."""
        from routerscope.core.otel import background_work

        with background_work():
            self._get()

    def _export(self, *args: Any, **kwargs: Any) -> Any:
        """Build the exporter if needed and export; fork() waits for both to finish."""
        from routerscope.core.otel import background_work

        with background_work():
            return self._get().export(*args, **kwargs)

    def _shutdown(self) -> None:
        self._closed = True
        if self._inner is not None:
            self._inner.shutdown()

    def endpoint(self) -> str | None:
        if self._inner is not None:
            return getattr(self._inner, "_endpoint", None)
        return self._kwargs.get("endpoint")

    def close_if_unreachable(self, timeout_s: float = 0.25) -> bool:
        """At shutdown: if nothing listens at the endpoint, stop exporting now.

        A refused connection would only make the SDK retry with backoff until
        its timeout; what it holds would be lost all the same. Returns True if
        the exporter was closed.
        """
        import socket
        from urllib.parse import urlsplit

        url = self.endpoint() or _env_endpoint(self._signal)
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout_s):
                return False
        except OSError:
            self._closed = True
            return True


class LazyOTLPSpanExporter(_Lazy, SpanExporter):
    _module = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
    _cls = "OTLPSpanExporter"
    _signal = "traces"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        return self._export(spans)  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        self._shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class LazyOTLPLogExporter(_Lazy, LogRecordExporter):
    _module = "opentelemetry.exporter.otlp.proto.http._log_exporter"
    _cls = "OTLPLogExporter"
    _signal = "logs"

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        if self._closed:
            return LogRecordExportResult.FAILURE
        return self._export(batch)  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        self._shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _temporality() -> dict[type, AggregationTemporality]:
    """OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, as the SDK's exporter reads it."""
    pref = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                          "cumulative").strip().lower()
    cumulative = AggregationTemporality.CUMULATIVE
    delta = AggregationTemporality.DELTA
    if pref == "delta":
        return {Counter: delta, UpDownCounter: cumulative, Histogram: delta,
                ObservableCounter: delta, ObservableUpDownCounter: cumulative,
                ObservableGauge: cumulative}
    if pref == "lowmemory":
        return {Counter: delta, UpDownCounter: cumulative, Histogram: delta,
                ObservableCounter: cumulative, ObservableUpDownCounter: cumulative,
                ObservableGauge: cumulative}
    return {k: cumulative for k in (Counter, UpDownCounter, Histogram, ObservableCounter,
                                    ObservableUpDownCounter, ObservableGauge)}


class LazyOTLPMetricExporter(_Lazy, MetricExporter):
    _module = "opentelemetry.exporter.otlp.proto.http.metric_exporter"
    _cls = "OTLPMetricExporter"
    _signal = "metrics"

    def __init__(self, endpoint: str | None = None, **kwargs: Any) -> None:
        _Lazy.__init__(self, endpoint, **kwargs)
        MetricExporter.__init__(self, preferred_temporality=_temporality())

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        if self._closed:
            return MetricExportResult.FAILURE
        return self._export(metrics_data, timeout_millis=timeout_millis)  # type: ignore[no-any-return]

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._shutdown()
