"""`import routerscope.auto` vs plain `opentelemetry-instrument`: import cost and per-call cost.

The baseline is plain OpenTelemetry as a user installs it (``opentelemetry-distro``,
the OTLP/HTTP exporter and the requests instrumentation; the venv's openai-v2
instrumentation is disabled), in its own venv under
``.bench-venvs/otel`` (see ``bench_peers.PEERS``), run as ``opentelemetry-instrument``
pinned to the upstream distro and configurator (``OTEL_PYTHON_DISTRO=distro``,
``OTEL_PYTHON_CONFIGURATOR=configurator``). Unpinned, and in a venv where
routerscope is installed, the CLI loads routerscope's own distro and configurator
by entry-point order, and the row would compare routerscope with itself. Each
baseline process checks that no ``routerscope`` module was loaded and that the
SDK's tracer provider is active, and fails the benchmark otherwise. "Added" is
always against the bare process of the same venv.

Import cost: whole-process wall time of ``python -c "import requests"`` bare,
with ``import routerscope.auto``, and under ``opentelemetry-instrument``
(OTLP exporters, as a real deployment), interleaved over rounds; all send to
a live OTLP receiver on loopback so exit does not wait on a dead endpoint.

Per-call cost: the same plain-``requests`` LLM call loop (after 30 warm-up
calls) in each process, CPU time per call of the whole process, interleaved
over rounds. CPU time on this shared 2-core box is noisy; ``bench_peers``
counts the same comparison in instructions.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, Row, compile_checkout

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
if "routerscope.auto" in sys.modules:  # its deferred records are part of the cost
    from routerscope.core import otel
    otel.drain()
print(json.dumps({"cpu_us": (time.process_time() - p0) / n * 1e6}))
"""

# Run in every baseline process, after the measured part: plain OpenTelemetry or fail.
CHECK_PLAIN = """
import sys
if any(m == "routerscope" or m.startswith("routerscope.") for m in sys.modules):
    sys.exit("routerscope was activated under opentelemetry-instrument: not a plain-OTel baseline")
from opentelemetry import trace
if not type(trace.get_tracer_provider()).__module__.startswith("opentelemetry.sdk"):
    sys.exit("opentelemetry-instrument set up no SDK tracer provider")
"""


def _env(endpoint: str, plain: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROUTERSCOPE_"))}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "PYTHONPATH": ROOT})
    if plain:  # the plain-OTel venv: upstream distro and configurator, nothing from here
        env.update({"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator",
                    # that venv also holds openai-v2 (for bench_peers), which would import
                    # openai at start-up: a requests app gets the requests instrumentation only
                    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai"})
        env.pop("PYTHONPATH")
    return env


def _startup(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(launch -> first line of app code, launch -> exit) in seconds."""
    t0 = time.time()
    out = _checked(cmd, env, 120)
    t_end = time.time()
    t_app = float(out.stdout.strip().splitlines()[-1])
    return t_app - t0, t_end - t0


def _checked(cmd: list[str], env: dict[str, str], timeout: float) -> Any:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[:2]} exited {out.returncode}: {out.stderr[-2000:]}")
    return out


def run(quick: bool = False) -> list[Row]:
    from benchmarks.bench_peers import peer_python
    from routerscope.testing import FakeProvider, OTLPReceiver

    compile_checkout()
    rounds = 5 if quick else 15
    plain_py = str(peer_python("otel"))
    otel_cli = str(Path(plain_py).parent / "opentelemetry-instrument")
    with OTLPReceiver() as rx, FakeProvider() as prov:
        envs = {"bare": _env(rx.url), "routerscope": _env(rx.url),
                "otel-bare": _env(rx.url, plain=True), "otel": _env(rx.url, plain=True)}
        py = sys.executable
        app = "import requests; import time; print(time.time(), flush=True)"
        cmds = {
            "bare": [py, "-c", app],
            "routerscope": [py, "-c", "import routerscope.auto; " + app],
            "otel-bare": [plain_py, "-c", app],
            "otel": [otel_cli, plain_py, "-c", app + "\n" + CHECK_PLAIN],
        }
        times: dict[str, list[float]] = {k: [] for k in cmds}
        total: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(rounds):
            for k, cmd in cmds.items():
                first, whole = _startup(cmd, envs[k])
                times[k].append(first)
                total[k].append(whole)
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        tot = {k: statistics.median(v) * 1000 for k, v in total.items()}
        n = "200" if quick else "400"
        loops = {
            "bare": [py, "-c", LOOP, prov.base_url, n],
            "routerscope": [py, "-c", "import routerscope.auto\n" + LOOP, prov.base_url, n],
            "otel-bare": [plain_py, "-c", LOOP, prov.base_url, n],
            "otel": [otel_cli, plain_py, "-c", LOOP + CHECK_PLAIN, prov.base_url, n],
        }
        cpu: dict[str, list[float]] = {k: [] for k in loops}
        import json

        for _ in range(3 if quick else 6):
            for k, cmd in loops.items():
                out = _checked(cmd, envs[k], 300)
                cpu[k].append(json.loads(out.stdout.strip().splitlines()[-1])["cpu_us"])
        c = {k: statistics.median(v) for k, v in cpu.items()}
    ours_imp, otel_imp = med["routerscope"] - med["bare"], med["otel"] - med["otel-bare"]
    ours_call, otel_call = c["routerscope"] - c["bare"], c["otel"] - c["otel-bare"]
    ours_tot, otel_tot = tot["routerscope"] - tot["bare"], tot["otel"] - tot["otel-bare"]
    return [
        Row("auto", "start-up added: launch to the app's first line", "import routerscope.auto",
            ours_imp, "plain opentelemetry-instrument", otel_imp, "ms", otel_imp / max(ours_imp, 1e-9),
            claim="less than half of opentelemetry-instrument",
            verdict="holds" if ours_imp < otel_imp / 2 else "does not hold"),
        Row("auto", "whole short process added (start-up + flush at exit)",
            "import routerscope.auto", ours_tot, "plain opentelemetry-instrument", otel_tot, "ms",
            otel_tot / max(ours_tot, 1e-9)),
        Row("auto", "CPU added per plain-requests LLM call (one import vs the CLI; CPU time, noisy "
                    "here: see the instruction rows)",
            "import routerscope.auto", ours_call, "plain opentelemetry-instrument", otel_call,
            "us/call", otel_call / max(ours_call, 1e-9), claim="below opentelemetry-instrument",
            verdict="holds" if ours_call < otel_call else "does not hold"),
    ]


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
