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
