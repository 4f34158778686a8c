"""Quantiles, the two ways routerscope computes them (one implementation each).

* :func:`nearest_rank` — from raw samples (the sidecar's status, the demo's own
  timings): the smallest sample with at least ``q`` of the samples at or below it.
* :func:`histogram_quantile` — from cumulative histogram buckets, as PromQL's
  ``histogram_quantile`` does (linear interpolation inside the bucket), so the
  report agrees with the dashboards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["histogram_quantile", "nearest_rank"]


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-quantile (0 < q <= 1) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs."""
    if not buckets:
        return math.nan
    buckets = sorted(buckets)
    if buckets[-1][0] != math.inf:
        return math.nan
    total = buckets[-1][1]
    if total == 0:
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    rank = q * total
    i = next(n for n, (_, c) in enumerate(buckets) if c >= rank)  # the +Inf bucket holds all
    le, count = buckets[i]
    if le == math.inf:
        return buckets[-2][0] if len(buckets) > 1 else math.nan
    start, prev = (0.0, 0.0) if i == 0 else buckets[i - 1]
    if i == 0 and le <= 0:
        return le
    if count == prev:
        return le
    return start + (le - start) * (rank - prev) / (count - prev)
