"""The package layout holds: no reaching into another package's private modules, core at the bottom."""

from __future__ import annotations

import ast
from pathlib import Path

import routerscope.core
import routerscope.telemetry

PACKAGE = Path(routerscope.__file__).resolve().parent


def _imports(path: Path) -> list[str]:
    """Every module named by an import statement in ``path`` (absolute, routerscope only)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return [n for n in names if n.split(".")[0] == "routerscope"]


def _package_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = ["routerscope", *rel.parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts[:2])


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_imports_another_packages_private_module() -> None:
    """An import of ``routerscope.X._private`` comes only from inside ``routerscope.X``."""
    bad = []
    for path in _sources():
        home = _package_of(path)
        for name in _imports(path):
            parts = name.split(".")
            for i, part in enumerate(parts[1:], start=1):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:i])
                    if owner != "routerscope" and home != owner and not home.startswith(owner + "."):
                        bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
                    break
    assert bad == []


def test_core_imports_nothing_above_it() -> None:
    """``routerscope.core`` imports only itself and the version: it is the bottom layer."""
    bad = []
    for path in (PACKAGE / "core").rglob("*.py"):
        for name in _imports(path):
            if not name.startswith(("routerscope.core", "routerscope._version")):
                bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert bad == []


def test_telemetry_public_api_is_curated() -> None:
    """routerscope.telemetry exports exactly its documented names, each resolvable."""
    assert sorted(routerscope.telemetry.__all__) == [
        "DEFAULT_ENDPOINT", "REDACTED", "Settings", "configure", "force_flush", "has_secret",
        "instrumentation_meter_provider", "is_configured", "redact", "shutdown"]
    for name in routerscope.telemetry.__all__:
        assert getattr(routerscope.telemetry, name) is not None


def test_layout_detects_a_private_import(tmp_path: Path) -> None:
    """The import reader sees ``from routerscope.x._y import z`` (the rule above can fail)."""
    src = tmp_path / "m.py"
    src.write_text("from routerscope.telemetry._setup import configure\nimport routerscope.core.otel\n")
    assert _imports(src) == ["routerscope.telemetry._setup", "routerscope.telemetry._setup.configure",
                             "routerscope.core.otel"]
