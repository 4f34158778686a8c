"""``routerscope report``: the offline reader of OTLP JSON lines, quantiles, charts and summary."""

from __future__ import annotations

from routerscope.report._build import (
    Summary,
    Telemetry,
    console_rows,
    format_rows,
    load,
    markdown,
    pick_service,
    summarise,
    write_report,
)
from routerscope.report.quantiles import histogram_quantile, nearest_rank

__all__ = ["Summary", "Telemetry", "console_rows", "format_rows", "histogram_quantile", "load",
           "markdown", "nearest_rank", "pick_service", "summarise", "write_report"]
