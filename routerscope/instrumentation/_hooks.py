"""Patch a library when it is imported: a post-import hook on ``sys.meta_path``.

:func:`when_imported` runs ``patch(module)`` at once if the module is already
imported, else right after the module's own code has run and before the
``import`` statement that loaded it returns, while the import lock for that
module is held. No other thread can use the module before it is patched, so no
call slips through unrecorded, and nothing is imported that the application
does not import itself (no start-up cost for libraries it never uses).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from routerscope.core import otel

__all__ = ["install", "uninstall", "when_imported"]

_logger = logging.getLogger("routerscope.telemetry")
Patch = Callable[[ModuleType], None]
_pending: dict[str, list[Patch]] = {}
_lock = threading.RLock()


def _run(name: str, module: ModuleType, patches: Sequence[Patch]) -> None:
    for patch in patches:
        try:
            patch(module)
        except Exception as exc:  # noqa: BLE001 - an unsupported version: one line, never raise
            _logger.warning("routerscope: %s not instrumented (%s: %s)", name, type(exc).__name__, exc)
            otel.swallowed(f"instrument {name}")


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: Any, name: str) -> None:
        self._inner = inner
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        create = getattr(self._inner, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._inner
        if module.__spec__ is not None:
            module.__spec__.loader = self._inner
        self._inner.exec_module(module)
        with _lock:
            patches = _pending.pop(self._name, [])
        _run(self._name, module, patches)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


_finder = _Finder()


def install() -> None:
    """Put the hook first on ``sys.meta_path`` (idempotent)."""
    with _lock:
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    with _lock:
        if _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        _pending.clear()


def when_imported(name: str, patch: Patch) -> None:
    """Run ``patch(module)`` now if ``name`` is imported, else right after its import."""
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            _pending.setdefault(name, []).append(patch)
            install()
            return
    _run(name, module, [patch])
