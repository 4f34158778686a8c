"""Eager vs lazy start-up of the reference router (the seed claims 5.3x).

Each run is a fresh process timed from process start to ``mark_ready()``: the
eager router imports torch, loads its four models and detects the hardware in
``__init__`` (the seed's "before"); the lazy one defers each to first use.
Runs alternate between the two.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchmarks._common import Row


def run(quick: bool = False) -> list[Row]:
    from routerscope.demo.cli import _startup
    from routerscope.demo.router import build_models, torch_available
    from routerscope.testing import FakeProvider

    models = Path(tempfile.mkdtemp()) / "models"
    build_models(models, torch_available())
    eager, lazy = [], []
    with FakeProvider() as prov:
        for _ in range(3 if quick else 7):
            eager.append(_startup("EagerRouter", prov.base_url, models, 1))
            lazy.append(_startup("DemoRouter", prov.base_url, models, 1))
    e, lz = statistics.median(eager), statistics.median(lazy)
    what = "torch" if torch_available() else "no torch"
    return [Row("startup", f"process start -> ready, reference router ({what})", "lazy", lz,
                "eager", e, "s", e / lz, claim="5.3x faster start-up",
                verdict="holds" if e / lz >= 5.3 else "does not hold")]


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
