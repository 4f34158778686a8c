"""The peers benchmark's child refuses to measure what its label does not say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = str(ROOT / "benchmarks" / "peers" / "child.py")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROUTERSCOPE_"))}
    env.update({"PYTHONPATH": str(ROOT), "ROUTERSCOPE_MEMORY_MONITOR": "0",
                "ROUTERSCOPE_HARDWARE_EVENT": "0",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    return env


def test_child_aborts_before_looking_up_a_non_loopback_host() -> None:
    """A call to a non-loopback host ends the child (status 97) before any name lookup."""
    out = subprocess.run([sys.executable, CHILD, "bare", "requests", "http://example.invalid/v1",
                          "0", "1", "1"], env=_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 97, out.stderr
    assert "name lookup of non-loopback host 'example.invalid'" in out.stderr


def test_plain_otel_baseline_fails_when_routerscope_is_activated() -> None:
    """Unpinned opentelemetry-instrument loads routerscope's distro: the baseline child fails."""
    cli = str(Path(sys.executable).parent / "opentelemetry-instrument")
    out = subprocess.run([cli, sys.executable, CHILD, "otel", "requests", "http://127.0.0.1:9/v1",
                          "0", "1", "1"], env=_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 98, out.stderr
    assert "routerscope was activated under opentelemetry-instrument" in out.stderr
