"""Instrumentation cost per router call: routerscope vs OpenLIT and Logfire, same calls.

Each peer lives in its own virtual environment under ``.bench-venvs/`` (created
on first use from PyPI), because they pin OpenTelemetry versions of their own.
Every process makes the same plain-``requests`` chat-completion calls to the
same loopback OpenAI-compatible server and exports OTLP to the same loopback
receiver.

The measure is **instructions**, counted by valgrind's callgrind for the whole
process (every thread: the SDK's export and our deferred metric records
included): a run with N calls minus a run with none, divided by N. Unlike CPU
time on a shared 2-core machine (where the same configuration measured 315 and
535 us per call in two runs), the count repeats to about 0.2 %. Without
valgrind the benchmark falls back to CPU time and says so.

routerscope is also measured in two reduced forms, to show where its cost goes:
without its GenAI wrapper (the requests instrumentation alone, as the peers do),
and with the wrapper but without its histogram records.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

from benchmarks._common import ROOT, Row

_CONSTRAINTS = str(Path(__file__).with_name("peers") / "openlit-constraints.txt")
PEERS = {"logfire": ["logfire==5.4.0", "opentelemetry-instrumentation-requests", "requests"],
         "openlit": ["openlit==1.45.0", "requests", "-c", _CONSTRAINTS]}

CHILD = """
import os, sys, time
mode, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode.startswith("routerscope"):
    import routerscope.auto
    from routerscope.instrumentation import wait_instrumented
    wait_instrumented()
    if mode == "routerscope-requests-only":
        from routerscope.instrumentation._requests import unpatch_genai
        unpatch_genai()
    if mode == "routerscope-no-histograms":
        import routerscope.core.genai as genai, routerscope.instrumentation._requests as inst
        genai.otel.record_later = inst.record_later = lambda *a, **k: None
elif mode == "logfire":
    import logfire
    logfire.configure(send_to_logfire=False, console=False)
    logfire.instrument_requests()
elif mode == "openlit":
    import openlit
    openlit.init(otlp_endpoint=os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"])
import requests
s = requests.Session()
body = {"model": "demo/small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
t0 = time.process_time()
for _ in range(n):
    s.post(url + "/chat/completions", json=body).json()
print(time.process_time() - t0)
"""


def _venv(name: str) -> Path:
    path = Path(ROOT) / ".bench-venvs" / name
    py = path / "bin" / "python"
    marker = path / ".ready"
    if not marker.exists():
        venv.create(path, with_pip=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PEERS[name]], check=True,
                       timeout=900, env=env)
        marker.write_text("ok")
    return py


def _run(py: str, mode: str, url: str, n: int, env: dict[str, str], counting: bool) -> float:
    """Instructions (callgrind) or CPU seconds of one process making ``n`` calls."""
    cmd = [py, "-c", CHILD, mode, url, str(n)]
    if counting:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    if out.returncode != 0:
        raise RuntimeError(f"{mode}: {out.stderr[-2000:]}")
    if counting:
        m = re.search(r"Collected : (\d+)", out.stderr)
        if m is None:
            raise RuntimeError(f"{mode}: no callgrind total in {out.stderr[-500:]}")
        return float(m.group(1))
    return float(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[Row]:
    from routerscope.testing import FakeProvider, OTLPReceiver

    counting = shutil.which("valgrind") is not None
    n = 100 if counting else (200 if quick else 400)
    unit = "M instructions/call" if counting else "us CPU/call"
    scale = 1e-6 if counting else 1e6
    pys = {name: str(_venv(name)) for name in PEERS}
    modes = {"bare": sys.executable, "routerscope": sys.executable,
             "routerscope-requests-only": sys.executable,
             "routerscope-no-histograms": sys.executable, **{p: pys[p] for p in PEERS},
             **{f"bare-{p}": pys[p] for p in PEERS}}
    per_call: dict[str, float] = {}
    with OTLPReceiver() as rx, FakeProvider() as prov:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROUTERSCOPE_"))}
        base.update({"OTEL_EXPORTER_OTLP_ENDPOINT": rx.url,
                     # no periodic export or sampling mid-run: only the calls differ
                     "OTEL_METRIC_EXPORT_INTERVAL": "600000", "ROUTERSCOPE_MEMORY_MONITOR": "0",
                     "ROUTERSCOPE_HARDWARE_EVENT": "0"})
        for mode, py in modes.items():
            env = dict(base)
            if py == sys.executable:
                env["PYTHONPATH"] = ROOT
            else:
                env.pop("PYTHONPATH", None)
            child_mode = "bare" if mode.startswith("bare-") else mode
            t0 = time.perf_counter()
            full = _run(py, child_mode, prov.base_url, n, env, counting)
            empty = _run(py, child_mode, prov.base_url, 0, env, counting)
            per_call[mode] = (full - empty) / n * scale
            print(f"[peers] {mode}: {per_call[mode]:.3f} {unit} "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    ours = per_call["routerscope"] - per_call["bare"]
    rows = []
    for peer in PEERS:
        theirs = per_call[peer] - per_call[f"bare-{peer}"]
        rows.append(Row("peers", f"added per plain-requests LLM call vs {peer}"
                                 + ("" if counting else " (CPU time: valgrind absent)"),
                        "import routerscope.auto", ours, peer, theirs, unit,
                        theirs / max(ours, 1e-9), claim=f"below {peer}",
                        verdict="holds" if ours < theirs else "does not hold"))
    req_only = per_call["routerscope-requests-only"] - per_call["bare"]
    no_hist = per_call["routerscope-no-histograms"] - per_call["bare"]
    rows.append(Row("peers", "where ours goes: requests instrumentation alone (as the peers) "
                             "vs our full path", "requests instrumentation only", req_only,
                    "full: GenAI span + 4 histogram records", ours, unit, ours / max(req_only, 1e-9)))
    rows.append(Row("peers", "where ours goes: GenAI span without / with its 4 histogram records "
                             "(GenAI duration, input and output tokens, HTTP duration)",
                    "GenAI span, no histograms", no_hist, "with histograms", ours, unit,
                    ours / max(no_hist, 1e-9)))
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
