"""`import routerscope.auto` vs `opentelemetry-instrument`: import cost and per-call cost.

Import cost: whole-process wall time of ``python -c "import requests"`` bare,
with ``import routerscope.auto``, and under ``opentelemetry-instrument``
(OTLP exporters, as a real deployment), interleaved over rounds; both send to
a live OTLP receiver on loopback so exit does not wait on a dead endpoint.

Per-call cost: the same plain-``requests`` LLM call loop in three processes
(bare, one import, opentelemetry-instrument), CPU time per call of the whole
process, interleaved over rounds.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time

from benchmarks._common import ROOT, Row

LOOP = """
import json, os, sys, time
import requests
url = sys.argv[1]; n = int(sys.argv[2])
s = requests.Session()
body = {"model": "demo/small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
for _ in range(30):
    s.post(url + "/chat/completions", json=body).json()
p0 = time.process_time()
for _ in range(n):
    s.post(url + "/chat/completions", json=body).json()
try:
    from routerscope.core import otel
    if "routerscope.auto" in sys.modules:
        otel.drain()
except ImportError:
    pass
print(json.dumps({"cpu_us": (time.process_time() - p0) / n * 1e6}))
"""


def _otel_instrument() -> str:
    exe = shutil.which("opentelemetry-instrument") or os.path.join(
        os.path.dirname(sys.executable), "opentelemetry-instrument")
    return exe


def _env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROUTERSCOPE_"))}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "PYTHONPATH": ROOT})
    return env


def _startup(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(launch -> first line of app code, launch -> exit) in seconds."""
    t0 = time.time()
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=120)
    t_end = time.time()
    t_app = float(out.stdout.strip().splitlines()[-1])
    return t_app - t0, t_end - t0


def run(quick: bool = False) -> list[Row]:
    from routerscope.testing import FakeProvider, OTLPReceiver

    rounds = 5 if quick else 15
    with OTLPReceiver() as rx, FakeProvider() as prov:
        env = _env(rx.url)
        py = sys.executable
        app = "import requests; import time; print(time.time())"
        cmds = {
            "bare": [py, "-c", app],
            "routerscope": [py, "-c", "import routerscope.auto; " + app],
            "otel": [_otel_instrument(), py, "-c", app],
        }
        times: dict[str, list[float]] = {k: [] for k in cmds}
        total: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(rounds):
            for k, cmd in cmds.items():
                first, whole = _startup(cmd, env)
                times[k].append(first)
                total[k].append(whole)
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        tot = {k: statistics.median(v) * 1000 for k, v in total.items()}
        n = "200" if quick else "400"
        loops = {
            "bare": [py, "-c", LOOP, prov.base_url, n],
            "routerscope": [py, "-c", "import routerscope.auto\n" + LOOP, prov.base_url, n],
            "otel": [_otel_instrument(), py, "-c", LOOP, prov.base_url, n],
        }
        cpu: dict[str, list[float]] = {k: [] for k in loops}
        import json

        for _ in range(3 if quick else 6):
            for k, cmd in loops.items():
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True,
                                     timeout=300)
                cpu[k].append(json.loads(out.stdout.strip().splitlines()[-1])["cpu_us"])
        c = {k: statistics.median(v) for k, v in cpu.items()}
    ours_imp, otel_imp = med["routerscope"] - med["bare"], med["otel"] - med["bare"]
    ours_call, otel_call = c["routerscope"] - c["bare"], c["otel"] - c["bare"]
    ours_tot, otel_tot = tot["routerscope"] - tot["bare"], tot["otel"] - tot["bare"]
    return [
        Row("auto", "start-up added: launch to the app's first line", "import routerscope.auto",
            ours_imp, "opentelemetry-instrument", otel_imp, "ms", otel_imp / max(ours_imp, 1e-9),
            claim="less than half of opentelemetry-instrument",
            verdict="holds" if ours_imp < otel_imp / 2 else "does not hold"),
        Row("auto", "whole short process added (start-up + flush at exit)",
            "import routerscope.auto", ours_tot, "opentelemetry-instrument", otel_tot, "ms",
            otel_tot / max(ours_tot, 1e-9)),
        Row("auto", "CPU added per plain-requests LLM call (one import vs the CLI)",
            "import routerscope.auto", ours_call, "opentelemetry-instrument", otel_call,
            "us/call", otel_call / max(ours_call, 1e-9), claim="below opentelemetry-instrument",
            verdict="holds" if ours_call < otel_call else "does not hold"),
    ]


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
