"""routerscope report: Prometheus-equivalent numbers from OTLP JSON lines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from routerscope.core import signals
from routerscope.report import histogram_quantile, load, summarise, write_report


def test_histogram_quantile_matches_prometheus_rules() -> None:
    """Linear interpolation inside the bucket; +Inf bucket returns the highest finite bound."""
    b = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (math.inf, 40.0)]
    assert histogram_quantile(0.5, b) == pytest.approx(0.1 + 0.4 * (20 - 10) / 20)
    assert histogram_quantile(0.25, b) == pytest.approx(0.1 * 10 / 10)
    assert histogram_quantile(0.99, [(1.0, 1.0), (math.inf, 10.0)]) == 1.0
    assert math.isnan(histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))


def _line(name: str, points: list[dict], kind: str = "histogram", service: str = "svc") -> str:
    metric = {"name": name}
    metric[kind] = {"dataPoints": points}
    return json.dumps({"resourceMetrics": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": service}}]},
        "scopeMetrics": [{"metrics": [metric]}]}]})


def _hist(t: int, model: str, counts: list[int]) -> dict:
    return {"timeUnixNano": str(t), "count": str(sum(counts)), "sum": 1.0,
            "explicitBounds": [0.1, 0.5, 1.0], "bucketCounts": [str(c) for c in counts],
            "attributes": [{"key": signals.GEN_AI_REQUEST_MODEL,
                            "value": {"stringValue": model}}]}


def test_last_cumulative_point_per_series_is_used(tmp_path: Path) -> None:
    """Later cumulative snapshots replace earlier ones; series are summed per model."""
    path = tmp_path / "t.jsonl"
    name = signals.GEN_AI_CLIENT_OPERATION_DURATION.name
    path.write_text("\n".join([
        _line(name, [_hist(1, "a", [1, 0, 0, 0])]),
        _line(name, [_hist(2, "a", [10, 20, 10, 0]), _hist(2, "b", [0, 0, 0, 4])]),
        "not json",
        _line(signals.CACHE_REQUESTS.name, [
            {"timeUnixNano": "2", "asInt": "3", "attributes": [
                {"key": signals.ATTR_CACHE_RESULT, "value": {"stringValue": "hit"}}]},
            {"timeUnixNano": "2", "asInt": "1", "attributes": [
                {"key": signals.ATTR_CACHE_RESULT, "value": {"stringValue": "miss"}}]}],
              kind="sum"),
    ]) + "\n")
    tel = load(path)
    assert tel.bad_lines == 1
    sm = summarise(tel)
    assert sm.calls == {"a": 40, "b": 4, "all": 44}
    assert sm.latency["a"]["p50"] == pytest.approx(0.1 + 0.4 * (20 - 10) / 20)
    assert sm.latency["b"]["p50"] == 1.0  # all in +Inf: the highest finite bound
    assert sm.hit_rate == 0.75


def test_write_report_makes_summary_and_charts(tmp_path: Path) -> None:
    """summary.md and the four PNG charts are written (matplotlib installed)."""
    pytest.importorskip("matplotlib", reason="charts need the report extra")
    path = tmp_path / "t.jsonl"
    path.write_text(_line(signals.GEN_AI_CLIENT_OPERATION_DURATION.name,
                          [_hist(1, "a", [1, 2, 3, 0])]) + "\n")
    _, made = write_report(path, tmp_path / "out")
    names = sorted(p.name for p in made)
    assert names == ["api_latency.png", "cache_hit_rate.png", "memory.png", "startup.png",
                     "summary.md"]
    assert (tmp_path / "out" / "api_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert "| a | 6 |" in (tmp_path / "out" / "summary.md").read_text()
