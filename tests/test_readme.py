"""The README documents every ROUTERSCOPE_* knob, and the public API stays curated."""

from __future__ import annotations

from pathlib import Path

import routerscope.core
from routerscope.telemetry._settings import ENV_DOC, shown

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_variable_table_matches_the_code() -> None:
    """The README's ROUTERSCOPE_* rows are exactly ENV_DOC: names, defaults (the constants), meanings."""
    rows = [line for line in README.splitlines() if line.startswith("| `ROUTERSCOPE_")]
    assert rows == [f"| `{name}` | {shown(default)} | {meaning} |"
                    for name, (default, meaning) in ENV_DOC.items()]


def test_core_public_api_is_curated() -> None:
    """routerscope.core exports exactly the documented names, lazily."""
    assert sorted(routerscope.core.__all__) == sorted([
        "pooled_session", "pool_stats", "OpenRouterClient", "lazy", "mark_ready", "ModelCache",
        "get_cache", "MemoryMonitor", "get_monitor", "BatchOptimizer", "detect_hardware",
        "RouterscopeError", "ProviderError", "BadRequestError", "AuthenticationError",
        "InsufficientCreditsError", "RateLimitError", "ProviderUnavailableError",
        "ProviderTimeoutError", "ProviderConnectionError", "ModelTooLargeError"])
    for name in routerscope.core.__all__:
        assert getattr(routerscope.core, name) is not None


def test_core_import_has_no_side_effects() -> None:
    """Importing routerscope.core imports no submodule, no SDK and no torch."""
    import subprocess
    import sys

    code = ("import sys, routerscope.core; "
            "bad = [m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'torch', "
            "'routerscope.core.', 'requests'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def _import_section() -> str:
    start = README.index("### What the import changes in your process")
    return README[start:README.index("\n## ", start)]


_PROCESS = """
import logging, threading, requests, routerscope.auto
from routerscope.instrumentation import wait_instrumented
wait_instrumented()
logging.getLogger("app").warning("a record")
from routerscope.core import otel, signals
otel.record_later(signals.HTTP_CLIENT_REQUEST_DURATION, 0.1, {})
from routerscope.telemetry import force_flush
force_flush(0.5)
print(sorted({t.name for t in threading.enumerate()}))
"""


def test_every_thread_the_import_starts_is_in_the_readme() -> None:
    """Each thread alive after the import and some telemetry is named in the README's section."""
    import ast
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROUTERSCOPE_"))}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
    out = subprocess.run([sys.executable, "-c", _PROCESS], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    names = ast.literal_eval(out.stdout.splitlines()[0])
    section = _import_section()
    missing = [n for n in names if n != "MainThread" and f"`{n}`" not in section]
    assert not missing, missing


def test_every_switch_in_the_section_is_a_documented_variable() -> None:
    """Each ROUTERSCOPE_* switch the section names has a row in the variable table."""
    import re

    switches = set(re.findall(r"`(ROUTERSCOPE_[A-Z_]+)=", _import_section()))
    assert switches
    assert switches <= set(ENV_DOC)
