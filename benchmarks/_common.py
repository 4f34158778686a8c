"""Shared helpers: a result row, timing loops, and child processes for isolated runs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Row:
    """One side-by-side comparison: ours (a) against a baseline or peer (b)."""

    group: str
    name: str
    a_label: str
    a_value: float
    b_label: str
    b_value: float
    unit: str
    ratio: float  # how many times better a is than b (>1 = a wins)
    claim: str = ""
    verdict: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compile_checkout() -> None:
    """Byte-compile routerscope's sources, as an installed package has them.

    Start-up rows compare a checkout with packages pip installed (compiled at
    install). With PYTHONDONTWRITEBYTECODE set (it is on these machines), every
    launch would otherwise compile routerscope from source: about 50 ms charged
    to routerscope that no installed copy pays.
    """
    import compileall

    compileall.compile_dir(os.path.join(ROOT, "routerscope"), quiet=1)


def per_call_us(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean microseconds per call of ``fn`` over ``n`` calls."""
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


def run_child(module: str, *args: str, env: dict[str, str] | None = None,
              timeout: float = 300) -> dict[str, Any]:
    """Run ``python -m module args`` and parse the JSON it prints last."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = ROOT + os.pathsep + full_env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                         timeout=timeout, env=full_env, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{module} {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result))
