"""What ``import routerscope.auto`` adds to the environment (requests walks it on every call)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import ROOT

SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
CODE = f"import os, routerscope.auto; print(os.environ.get({SANITIZE!r}, '<unset>'))"


@pytest.mark.parametrize("capture", [False, True])
def test_sanitize_fields_set_only_with_header_capture(capture: bool) -> None:
    """The header sanitize list is set when headers are captured, and not added otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROUTERSCOPE_"))}
    env.update({"PYTHONPATH": str(ROOT), "OTEL_SDK_DISABLED": "false",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_TRACES_EXPORTER": "none",
                "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
                "ROUTERSCOPE_MEMORY_MONITOR": "false", "ROUTERSCOPE_HARDWARE_EVENT": "false"})
    if capture:
        env["OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST"] = "content-type"
    out = subprocess.run([sys.executable, "-c", CODE], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    value = out.stdout.strip().splitlines()[-1]
    if capture:
        assert "authorization" in value
    else:
        assert value == "<unset>"
