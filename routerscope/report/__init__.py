"""``routerscope report``: the offline reader of OTLP JSON lines, quantiles, charts and summary."""

from __future__ import annotations

from routerscope.report._build import Summary, Telemetry, load, summarise, write_report
from routerscope.report.quantiles import histogram_quantile, nearest_rank

__all__ = ["Summary", "Telemetry", "histogram_quantile", "load", "nearest_rank", "summarise", "write_report"]
