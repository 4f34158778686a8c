"""The ``routerscope`` command line follows the usual conventions."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "routerscope", *args], capture_output=True,
                          text=True, timeout=120)


def test_no_command_prints_help_and_exits_2() -> None:
    """`routerscope` alone prints the help (every command listed) and exits 2, a usage error."""
    out = _run()
    assert out.returncode == 2
    assert all(c in out.stderr for c in ("doctor", "demo", "report", "sidecar"))


@pytest.mark.parametrize("command", ["doctor", "demo", "report"])
def test_help_is_plain_text_and_shows_defaults(command: str) -> None:
    """Each option with a value shows its default; no reStructuredText markup in the help."""
    out = _run(command, "--help")
    assert out.returncode == 0
    assert "``" not in out.stdout and ":class:" not in out.stdout
    options = re.findall(r"^  (--[a-z-]+) [A-Z_]+", out.stdout, flags=re.M)
    assert options
    blocks = re.split(r"\n  (?=--)", out.stdout)
    for opt in options:
        block = next(b for b in blocks if b.startswith(opt))
        assert "default" in " ".join(block.split()), opt
