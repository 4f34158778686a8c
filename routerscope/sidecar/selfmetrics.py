"""The sidecar's own metrics travel the same way as everyone else's: through its spool."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from routerscope.sidecar.spool import Spool, SpoolFull


class SpoolMetricExporter(MetricExporter):
    """Encodes each collection as an OTLP metrics request and appends it to the spool."""

    def __init__(self, spool: Spool) -> None:
        super().__init__()
        self.spool = spool

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

        try:
            self.spool.append("metrics", encode_metrics(metrics_data).SerializeToString())
        except (SpoolFull, OSError):
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None  # the spool is closed by the sidecar, after the reader's last export
