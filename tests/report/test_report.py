"""routerscope report: Prometheus-equivalent numbers from OTLP JSON lines."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from routerscope.core import signals
from routerscope.report import histogram_quantile, load, markdown, summarise, write_report


def test_histogram_quantile_matches_prometheus_rules() -> None:
    """Linear interpolation inside the bucket; +Inf bucket returns the highest finite bound."""
    b = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (math.inf, 40.0)]
    assert histogram_quantile(0.5, b) == pytest.approx(0.1 + 0.4 * (20 - 10) / 20)
    assert histogram_quantile(0.25, b) == pytest.approx(0.1 * 10 / 10)
    assert histogram_quantile(0.99, [(1.0, 1.0), (math.inf, 10.0)]) == 1.0
    assert math.isnan(histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))


def _line(name: str, points: list[dict[str, Any]], kind: str = "histogram",
          service: str = "svc") -> str:
    metric: dict[str, Any] = {"name": name}
    metric[kind] = {"dataPoints": points}
    return json.dumps({"resourceMetrics": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": service}}]},
        "scopeMetrics": [{"metrics": [metric]}]}]})


def _hist(t: int, model: str, counts: list[int]) -> dict[str, Any]:
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
    """summary.md, report.html and the four PNG charts are written (matplotlib installed)."""
    pytest.importorskip("matplotlib", reason="charts need the report extra")
    path = tmp_path / "t.jsonl"
    path.write_text(_line(signals.GEN_AI_CLIENT_OPERATION_DURATION.name,
                          [_hist(1, "a", [1, 2, 3, 0])]) + "\n")
    _, made = write_report(path, tmp_path / "out")
    names = sorted(p.name for p in made)
    assert names == ["api_latency.png", "cache_hit_rate.png", "memory.png", "report.html",
                     "startup.png", "summary.md"]
    assert (tmp_path / "out" / "api_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert "| a | 6 |" in (tmp_path / "out" / "summary.md").read_text()


def _gauge(t: int, value: float, **attrs: str) -> dict[str, Any]:
    return {"timeUnixNano": str(t), "asDouble": value,
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()]}


def _two_services(path: Path) -> None:
    """'router' has 6 GenAI calls, 'aaa-batch' 1, 'sidecar' none; memory for the router."""
    dur = signals.GEN_AI_CLIENT_OPERATION_DURATION.name
    ttfc = signals.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK.name
    s = 1_000_000_000
    path.write_text("\n".join([
        _line(dur, [_hist(s, "openai/gpt-4o-mini", [1, 2, 3, 0])], service="router"),
        _line(dur, [_hist(s, "x", [1, 0, 0, 0])], service="aaa-batch"),
        _line(ttfc, [_hist(s, "openai/gpt-4o-mini", [2, 0, 0, 0])], service="router"),
        _line(signals.SIDECAR_RECEIVED.name, [_gauge(s, 5)], kind="sum", service="sidecar"),
        _line(signals.PROCESS_MEMORY_USAGE.name,
              [_gauge(k * s, (100 + 10 * k) * 2**20) for k in range(1, 6)], kind="gauge",
              service="router"),
        _line(signals.MEMORY_RSS_LIMIT.name, [_gauge(5 * s, 130 * 2**20)], kind="gauge",
              service="router"),
        _line(signals.MEMORY_LEAK_SUSPECTED.name,
              [_gauge(k * s, float(k >= 4)) for k in range(1, 6)], kind="gauge",
              service="router"),
        _line(signals.MEMORY_ALERTS.name,
              [_gauge(k * s, float(k >= 3), **{signals.ATTR_MEMORY_ALERT_KIND: "rss"})
               for k in range(1, 6)], kind="sum", service="router"),
    ]) + "\n")


def test_default_service_has_most_genai_calls_and_counts_are_its_own(tmp_path: Path) -> None:
    """With several services the one with most GenAI calls is reported, the others listed."""
    path = tmp_path / "t.jsonl"
    _two_services(path)
    sm = summarise(load(path))
    assert sm.service == "router"
    assert sm.others == {"aaa-batch": 1, "sidecar": 0}
    assert sm.calls["all"] == 6 and sm.ttfc_calls["all"] == 2
    assert sm.counts["points"] == 1 + 1 + 5 + 1 + 5 + 5
    assert sm.leak_suspected is True and sm.leak_first_s == 3.0
    assert sm.alert_marks == [(2.0, "rss")] and sm.rss_limit_mb == 130
    md = markdown(sm, load(path))
    assert "`aaa-batch` (1 GenAI calls)" in md and "leak suspected: **yes, from 3 s**" in md
    assert "{" not in md  # no raw dicts


def test_report_cli_service_option_and_unknown_service(tmp_path: Path) -> None:
    """--service picks another service; an unknown one exits 2 naming the ones present."""
    path = tmp_path / "t.jsonl"
    _two_services(path)
    run = [sys.executable, "-m", "routerscope", "report", str(path), "--out"]
    ok = subprocess.run([*run, str(tmp_path / "o"), "--service", "aaa-batch"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "`aaa-batch`" in (tmp_path / "o" / "summary.md").read_text()
    bad = subprocess.run([*run, str(tmp_path / "p"), "--service", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "router" in bad.stderr and "sidecar" in bad.stderr


def test_report_html_is_self_contained(tmp_path: Path) -> None:
    """report.html embeds every chart as a data: URI and links to no other file."""
    pytest.importorskip("matplotlib", reason="charts need the report extra")
    path = tmp_path / "t.jsonl"
    _two_services(path)
    _, made = write_report(path, tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    pngs = [p for p in made if p.suffix == ".png"]
    assert "time_to_first_chunk.png" in {p.name for p in pngs}
    assert page.count('src="data:image/png;base64,') == len(pngs)
    assert "src=\"http" not in page and "href=" not in page and "<script" not in page


def test_report_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    """Debian's chromium renders report.html: a screenshot of the page is not blank."""
    pytest.importorskip("matplotlib", reason="charts need the report extra")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (scripts/install-backends.sh installs it)")
    from PIL import Image

    path = tmp_path / "t.jsonl"
    _two_services(path)
    write_report(path, tmp_path / "out")
    shot = tmp_path / "shot.png"
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1200,2400",
                          (tmp_path / "out" / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    img = Image.open(shot).convert("L")
    assert img.size == (1200, 2400)
    hist = img.histogram()
    dark = sum(hist[:128]) / (img.size[0] * img.size[1])
    assert 0.005 < dark < 0.5  # text and charts drawn on a white page
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # charts (anti-aliased, coloured), not text only
