"""OTLP/HTTP exporters that import themselves on first export.

The OTLP exporters pull in protobuf and the generated OTLP classes (~70 ms
here). Nothing is exported before the first batch is due, so the import
happens then, on the SDK's worker thread, and not in the application's
``import routerscope.auto``. Behaviour is otherwise the SDK's own exporter
(it retries as it does), except that spans are serialised by
:mod:`._otlp_encode` (same bytes, several times cheaper; see
:mod:`._otlp_span_exporter`); the endpoint, timeout and compression come validated
from :mod:`._settings`, and the exporter reads the other ``OTEL_EXPORTER_OTLP_*``
variables (headers, certificates) itself.

At shutdown :meth:`close_if_unreachable` closes an exporter whose endpoint
refuses connections, so the last flush does not wait out retries that cannot
succeed; it says so once (per endpoint) on the ``routerscope.telemetry`` logger.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any, Final

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

from routerscope.core import otel

__all__ = ["LazyOTLPLogExporter", "LazyOTLPMetricExporter", "LazyOTLPSpanExporter"]


_EXPORT_LOGGERS: Final = ("opentelemetry.exporter.otlp.common.http",
                          "opentelemetry.exporter.otlp.proto.http.trace_exporter",
                          "opentelemetry.exporter.otlp.proto.http.metric_exporter",
                          "opentelemetry.exporter.otlp.proto.http._log_exporter")


class SaidOnce(logging.Filter):
    """Lets the first record of each message (template) through; drops the repeats.

    On the OTLP exporter's loggers: an endpoint that stays down would otherwise
    print a "Transient error … retrying" line per batch on the host's stderr.
    """

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)
        if key in self._seen or key in _ALREADY_SAID:
            return False
        self._seen.add(key)
        return True


# said by routerscope's own "nothing listens at ..." line at shutdown
_ALREADY_SAID: Final = frozenset({"Shutdown in progress, aborting retry."})
_said_once = SaidOnce()


def _quiet_export_loggers() -> None:
    for name in _EXPORT_LOGGERS:
        lg = logging.getLogger(name)
        if _said_once not in lg.filters:
            lg.addFilter(_said_once)


_SDK_ENV_LOGGERS: Final = ("opentelemetry.exporter.otlp.common._aggregation",
                           "opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder",
                           "opentelemetry.exporter.otlp.proto.http")


def _reset_in_child(ref: weakref.ref[_Lazy]) -> Any:
    def reset() -> None:
        lazy = ref()
        if lazy is not None:
            lazy._after_fork_in_child()
    return reset


# Modules the SDK exporters' first export imports on the fly (requests reads ~/.netrc);
# imported with the build so that no fork() can copy a half-done import of them.
_EXPORT_PATH_IMPORTS: Final = ("netrc", "shlex")


_COMPONENTS: Final = {"traces": "OTLP_HTTP_SPAN_EXPORTER", "metrics": "OTLP_HTTP_METRIC_EXPORTER",
                      "logs": "OTLP_HTTP_LOG_EXPORTER"}


def _self_metrics_on(inner: Any, signal: str, meter_provider: Any) -> None:
    """The exporter's own metrics (spans sent, failed...), as the SDK variable would turn them on.

    The SDK reads ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED`` in the exporter's
    constructor. This runs on a background thread (the first export), where setting
    the variable would race the application's threads that walk ``os.environ``
    (``requests`` does, on every call: a ``KeyError`` in the app's request). So the
    exporter's metrics object is rebuilt here, enabled, instead. An application that
    set the variable itself got what it asked for from the constructor.
    """
    from routerscope.telemetry._settings import SDK_METRICS_VAR

    if SDK_METRICS_VAR in os.environ or not hasattr(inner, "_metrics"):
        return
    try:
        from opentelemetry.exporter.otlp.common._exporter_metrics import create_exporter_metrics
        from opentelemetry.semconv._incubating.attributes.otel_attributes import (
            OtelComponentTypeValues,
        )

        inner._metrics = create_exporter_metrics(
            getattr(OtelComponentTypeValues, _COMPONENTS[signal]), signal,  # type: ignore[arg-type]
            inner._endpoint, meter_provider, True)
    except Exception:  # noqa: BLE001 - the exporter works on, without its own metrics
        otel.swallowed("exporter.self_metrics")


class _Lazy:
    _module = ""
    _cls = ""
    _signal = ""

    def __init__(self, endpoint: str | None = None, *, timeout: float | None = None,
                 compression: str | None = None, **kwargs: Any) -> None:
        from routerscope.telemetry._settings import env_endpoint

        self._endpoint = endpoint or env_endpoint(self._signal)
        self._kwargs: dict[str, Any] = {"endpoint": self._endpoint, **kwargs}
        if timeout is not None:
            self._kwargs["timeout"] = timeout
        self._compression = compression
        self._inner: Any = None
        self._inner_shut = False
        self._lock = threading.Lock()
        self._closed = False
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_reset_in_child(weakref.ref(self)))

    def _after_fork_in_child(self) -> None:
        """The child builds its own exporter: the parent's HTTP session and sockets stay the parent's."""
        self._inner = None
        self._inner_shut = False
        self._lock = threading.Lock()

    def _get(self) -> Any:
        if self._inner is None:
            with self._lock:
                if self._inner is None:
                    import importlib

                    kwargs = dict(self._kwargs)
                    if self._compression is not None:
                        from opentelemetry.exporter.otlp.proto.http import Compression

                        kwargs["compression"] = Compression(self._compression)
                    from routerscope.telemetry._settings import DropSdkRepeats

                    # the SDK re-reads some variables here; routerscope already said
                    # what it uses instead, so the SDK's own line about them is dropped
                    quiet = DropSdkRepeats()
                    loggers = [logging.getLogger(n) for n in _SDK_ENV_LOGGERS]
                    for lg in loggers:
                        lg.addFilter(quiet)
                    _quiet_export_loggers()
                    try:
                        cls = getattr(importlib.import_module(self._module), self._cls)
                        inner = cls(**kwargs)
                        _self_metrics_on(inner, self._signal, kwargs.get("meter_provider"))
                        self._inner = inner
                    finally:
                        for lg in loggers:
                            lg.removeFilter(quiet)
        return self._inner

    def prepare(self) -> None:
        """Build the real exporter now (shutdown does, before the providers stop)."""
        self._built()

    def _built(self) -> Any:
        """The SDK's exporter, built (and its lazy imports done) inside the fork gate.

        A fork() waits for the build, which imports modules; it never waits for an
        export, which may hang on a silent collector: the child builds its own exporter.
        """
        inner = self._inner
        if inner is None:
            from routerscope.core.otel import background_work

            with background_work():
                inner = self._get()
                for name in _EXPORT_PATH_IMPORTS:
                    importlib.import_module(name)
        return inner

    def _export(self, *args: Any, **kwargs: Any) -> Any:
        return self._built().export(*args, **kwargs)

    def _shutdown(self) -> None:
        """Stop exporting; the SDK exporter's shutdown also aborts a retry in progress."""
        with self._lock:
            self._closed = True
            inner = self._inner if not self._inner_shut else None
            self._inner_shut = True
        if inner is not None:
            inner.shutdown()

    @property
    def built(self) -> bool:
        """Whether the SDK's exporter has been imported and built (on the first export)."""
        return self._inner is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def endpoint(self) -> str:
        return self._endpoint

    def close_if_unreachable(self, timeout_s: float = 0.25) -> bool:
        """At shutdown: if nothing listens at the endpoint, stop exporting now.

        A refused connection would only make the SDK retry with backoff until
        its timeout; what it holds would be lost all the same. Returns True if
        the exporter was closed. Never raises.
        """
        import socket
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(self._endpoint)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            host = parts.hostname or "127.0.0.1"
        except ValueError:  # the settings validated it; an endpoint passed in by hand may not be
            self._closed = True
            return True
        try:
            with socket.create_connection((host, port), timeout_s):
                return False
        except OSError:
            self._shutdown()  # also ends a retry loop the SDK exporter may be in
            return True


class LazyOTLPSpanExporter(_Lazy, SpanExporter):
    # the SDK's OTLPSpanExporter, encoding with routerscope's protobuf writer
    _module = "routerscope.telemetry._otlp_span_exporter"
    _cls = "FastOTLPSpanExporter"
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


def _temporality(pref: str) -> dict[type, AggregationTemporality]:
    """OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, as the SDK's exporter reads it."""
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

    def __init__(self, endpoint: str | None = None, *, temporality: str = "cumulative",
                 histogram_aggregation: str = "explicit_bucket_histogram",
                 **kwargs: Any) -> None:
        from opentelemetry.sdk.metrics.view import (
            Aggregation,
            ExponentialBucketHistogramAggregation,
        )

        _Lazy.__init__(self, endpoint, **kwargs)
        preferred = _temporality(temporality)
        aggregation: dict[type, Aggregation] = (
            {Histogram: ExponentialBucketHistogramAggregation()}
            if histogram_aggregation == "base2_exponential_bucket_histogram" else {})
        self._kwargs["preferred_temporality"] = preferred
        self._kwargs["preferred_aggregation"] = aggregation
        MetricExporter.__init__(self, preferred_temporality=preferred,
                                preferred_aggregation=aggregation)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        if self._closed:
            return MetricExportResult.FAILURE
        return self._export(metrics_data, timeout_millis=timeout_millis)  # type: ignore[no-any-return]

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._shutdown()
