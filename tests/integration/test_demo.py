"""`routerscope demo` end to end, and its report checked against VictoriaMetrics."""

from __future__ import annotations

import gzip
import math
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests._wait import wait_until

from .conftest import ROOT, VictoriaMetrics

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run = subprocess.run([sys.executable, "-m", "routerscope", "demo",  # default workload
                          "--startup-runs", "1", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    (out / "stdout.txt").write_text(run.stdout)
    return out


def test_demo_produces_telemetry_report_and_summary(demo_out: Path) -> None:
    """The demo writes OTLP JSON lines, a report with charts, and prints the summary table."""
    text = (demo_out / "stdout.txt").read_text()
    for needle in ("start-up (process start -> ready)", "model cache hit rate",
                   "connection reuse", "API latency", "memory"):
        assert needle in text
    assert (demo_out / "telemetry.jsonl").stat().st_size > 10_000
    for name in ("summary.md", "report.html", "startup.png", "cache_hit_rate.png", "memory.png",
                 "api_latency.png"):
        assert (demo_out / "report" / name).exists()
    from routerscope.report import load, summarise

    sm = summarise(load(demo_out / "telemetry.jsonl"))
    assert sm.service == "routerscope-demo"
    assert {"import", "ready", "first_request"} <= set(sm.startup)
    assert sm.hit_rate is not None and 0.5 < sm.hit_rate < 1
    assert sm.calls["all"] >= 30 and sm.retries >= 1 and sm.alerts >= 1
    assert sm.pool_reuse is not None and sm.pool_reuse > 0.8


def test_demo_leak_is_suspected_and_console_matches_report(demo_out: Path) -> None:
    """Default settings flag the injected leak; the console prints the report's own numbers."""
    from routerscope.report import console_rows, load, summarise

    text = (demo_out / "stdout.txt").read_text()
    sm = summarise(load(demo_out / "telemetry.jsonl"))
    assert sm.leak_suspected is True
    assert "leak suspected: yes" in text
    assert "leak suspected: **yes" in (demo_out / "report" / "summary.md").read_text()
    for _, value in console_rows(sm):
        assert value in text
    assert "seed" not in text and "{" not in text


def test_demo_without_torch_says_so(tmp_path: Path) -> None:
    """With torch hidden the demo runs on plain Python models and says so."""
    import os

    env = {**os.environ, "ROUTERSCOPE_DEMO_NO_TORCH": "1"}
    run = subprocess.run([sys.executable, "-m", "routerscope", "demo", "--requests", "30",
                          "--startup-runs", "1", "--out", str(tmp_path)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "torch is not installed" in run.stdout and "plain Python objects" in run.stdout


def test_report_numbers_equal_victoriametrics_promql(demo_out: Path, tmp_path: Path) -> None:
    """The report's numbers are what PromQL gives on the same data in VictoriaMetrics."""
    from routerscope.otlp_json import from_json
    from routerscope.report import load, summarise

    vm = VictoriaMetrics(tmp_path / "vm")
    try:
        lines = (demo_out / "telemetry.jsonl").read_text().splitlines()
        for line in lines:
            if '"resourceMetrics"' not in line:
                continue
            body = from_json("metrics", line).SerializeToString()
            r = requests.post(vm.otlp_metrics, data=gzip.compress(body), timeout=10,
                              headers={"Content-Type": "application/x-protobuf",
                                       "Content-Encoding": "gzip"})
            assert r.status_code in (200, 204), r.text
        sm = summarise(load(demo_out / "telemetry.jsonl"))
        sel = 'service_name="routerscope-demo"'

        def one(q: str) -> float:
            res = vm.query(q)
            assert len(res) == 1, (q, res)
            return float(res[0]["value"][1])

        assert wait_until(lambda: vm.query(
            f"gen_ai_client_operation_duration_seconds_bucket{{{sel}}}"), 60, 0.5)
        for qn in (0.5, 0.95, 0.99):
            got = one(f"histogram_quantile({qn}, sum by (le) "
                      f"(gen_ai_client_operation_duration_seconds_bucket{{{sel}}}))")
            want = sm.latency["all"][f"p{int(qn * 100)}"]
            assert math.isclose(got, want, rel_tol=1e-6), (qn, got, want)
        hit = one(f'sum(routerscope_cache_requests_total{{{sel},routerscope_cache_result="hit"}})'
                  f" / sum(routerscope_cache_requests_total{{{sel}}})")
        assert math.isclose(hit, sm.hit_rate or -1, rel_tol=1e-9)
        ready = one(f'routerscope_startup_duration_seconds_sum{{{sel},'
                    f'routerscope_startup_phase="ready"}} / routerscope_startup_duration_seconds_'
                    f'count{{{sel},routerscope_startup_phase="ready"}}')
        assert math.isclose(ready, sm.startup["ready"], rel_tol=1e-6)
    finally:
        vm.stop()
