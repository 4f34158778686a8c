"""Fixtures for tests that run routers and the SDK in child processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-or-v1-5ecret0123456789abcdef5ecret0123456789"


def run_python(code: str, env: dict[str, str], *, timeout: float = 60,
               args: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with ``env`` added (bounded in time)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROUTERSCOPE_"))}
    full.update(env)
    return subprocess.run([sys.executable, *(args or []), "-c", code], env=full, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
