"""``routerscope report``: the offline reader of OTLP JSON lines, quantiles, charts and summary."""

from __future__ import annotations

from routerscope.report._build import Summary, Telemetry, histogram_quantile, load, summarise, write_report

__all__ = ["Summary", "Telemetry", "histogram_quantile", "load", "summarise", "write_report"]
