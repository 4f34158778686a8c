"""``routerscope sidecar``'s command line: defaults shown, token sources, no env fallback."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from routerscope.sidecar import cli, defaults


def _parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser()
    cli.add_parser(root.add_subparsers())
    return root


def test_every_option_shows_its_default_in_help() -> None:
    """Each option's help names its default or says it is required (flags excepted)."""
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    sidecar = sub.choices["sidecar"]
    for action in sidecar._actions:
        if action.nargs == 0:  # --help, --status
            continue
        assert action.help and ("default" in action.help or "required" in action.help), \
            action.option_strings
    args = _parser().parse_args(["sidecar"])
    assert args.max_spool_mb == defaults.MAX_SPOOL_MB and args.listen == defaults.LISTEN


def test_token_comes_from_a_file_then_the_flag_then_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--token-file wins, then --token, then $ROUTERSCOPE_SIDECAR_TOKEN; an empty file is an error."""
    monkeypatch.setenv(defaults.TOKEN_ENV, "from-env")
    f = tmp_path / "tok"
    f.write_text("from-file\n")
    parse = _parser().parse_args
    assert cli._token(parse(["sidecar", "--token-file", str(f), "--token", "x"])) == "from-file"
    assert cli._token(parse(["sidecar", "--token", "from-flag"])) == "from-flag"
    assert cli._token(parse(["sidecar"])) == "from-env"
    f.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        cli._token(parse(["sidecar", "--token-file", str(f)]))


def test_help_runs_and_says_the_endpoint_variable_is_not_read() -> None:
    """`routerscope sidecar --help` exits 0 and explains OTEL_EXPORTER_OTLP_ENDPOINT is not read."""
    out = subprocess.run([sys.executable, "-m", "routerscope", "sidecar", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "OTEL_EXPORTER_OTLP_ENDPOINT is not read" in " ".join(out.stdout.split())
