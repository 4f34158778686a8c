"""Every panel of every dashboard shows data for the demo's workload.

The demo's router (instrumented by the one import) -> its sidecar -> rotel ->
VictoriaMetrics; then each panel query, variables substituted, must return data.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from routerscope.testing import OTLPReceiver

from ..deploy.test_stack import panel_queries, substitute
from .conftest import ROOT, Rotel, VictoriaMetrics, wait_until

pytestmark = pytest.mark.integration


def test_every_panel_query_returns_data(tmp_path: Path) -> None:
    """A panel that shows nothing fails this test."""
    vm = VictoriaMetrics(tmp_path / "vm")
    sink = OTLPReceiver().start()
    rotel = Rotel(tmp_path, metrics=vm.otlp_metrics, traces=f"{sink.url}/v1/traces",
                  logs=f"{sink.url}/v1/logs")
    try:
        run = subprocess.run([sys.executable, "-m", "routerscope", "demo", "--requests", "120",
                              "--startup-runs", "1", "--out", str(tmp_path / "demo"),
                              "--otlp", rotel.url], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        queries = [(title, substitute(expr)) for title, expr in panel_queries()]
        assert wait_until(lambda: all(vm.query(e) for _, e in queries), 60, 1.0), \
            "empty panels: " + ", ".join(t for t, e in queries if not vm.query(e))
        assert sink.span_count() > 0 and any(True for _ in sink.logs())
    finally:
        rotel.stop()
        sink.stop()
        vm.stop()
