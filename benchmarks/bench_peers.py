"""Instrumentation cost per router call: routerscope vs OpenLIT and Logfire, same calls.

Each peer lives in its own virtual environment under ``.bench-venvs/`` (created
on first use from PyPI), because they pin OpenTelemetry versions of their own.
Every process runs the same loop: plain-``requests`` chat-completion calls to
the same loopback OpenAI-compatible server, CPU time of the whole process per
call. Modes, interleaved over rounds:

* bare: no instrumentation (in the peer's venv, as its baseline);
* logfire: ``logfire.configure(send_to_logfire=False)`` + ``logfire.instrument_requests()``;
* openlit: ``openlit.init()`` exporting OTLP to a loopback receiver;
* routerscope: ``import routerscope.auto`` (in our venv), exporting to the same receiver.

What each records on these calls differs (OpenLIT and Logfire record HTTP spans for
plain requests; routerscope records a GenAI span and metrics), and the table says so.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import venv
from pathlib import Path

from benchmarks._common import ROOT, Row

_CONSTRAINTS = str(Path(__file__).with_name("peers") / "openlit-constraints.txt")
PEERS = {"logfire": ["logfire==5.4.0", "opentelemetry-instrumentation-requests", "requests"],
         "openlit": ["openlit==1.45.0", "requests", "-c", _CONSTRAINTS]}
SETUP = {
    "bare": "",
    "logfire": ("import logfire\nlogfire.configure(send_to_logfire=False, console=False)\n"
                "logfire.instrument_requests()\n"),
    "openlit": "import openlit\nopenlit.init(otlp_endpoint=os.environ['PEER_OTLP'])\n",
    "routerscope": "import routerscope.auto\n",
}
LOOP = """
import json, os, sys, time
{setup}
import requests
url = sys.argv[1]; n = int(sys.argv[2])
s = requests.Session()
body = {{"model": "demo/small", "messages": [{{"role": "user", "content": "hi"}}], "max_tokens": 4}}
for _ in range(30):
    s.post(url + "/chat/completions", json=body).json()
p0 = time.process_time()
for _ in range(n):
    s.post(url + "/chat/completions", json=body).json()
if "routerscope.auto" in sys.modules:
    from routerscope.core import _otel
    _otel.drain()
print(json.dumps({{"cpu_us": (time.process_time() - p0) / n * 1e6}}))
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


def _cpu(py: str, mode: str, url: str, n: int, env: dict[str, str]) -> float:
    out = subprocess.run([py, "-c", LOOP.format(setup=SETUP[mode]), url, str(n)], env=env,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{mode}: {out.stderr[-2000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["cpu_us"])


def run(quick: bool = False) -> list[Row]:
    from routerscope.demo.provider import FakeProvider
    from routerscope.testing import OTLPReceiver

    pys = {name: str(_venv(name)) for name in PEERS}
    n = 200 if quick else 400
    rows: list[Row] = []
    with OTLPReceiver() as rx, FakeProvider() as prov:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": rx.url, "PEER_OTLP": rx.url,
                    "PYTHONPATH": ROOT})
        res: dict[str, list[float]] = {"bare": [], "routerscope": [], "logfire": [],
                                       "openlit": [], "bare-logfire": [], "bare-openlit": []}
        for _ in range(2 if quick else 4):
            res["bare"].append(_cpu(sys.executable, "bare", prov.base_url, n, env))
            res["routerscope"].append(_cpu(sys.executable, "routerscope", prov.base_url, n, env))
            for peer, py in pys.items():
                clean = {k: v for k, v in env.items() if k != "PYTHONPATH"}
                res[f"bare-{peer}"].append(_cpu(py, "bare", prov.base_url, n, clean))
                res[peer].append(_cpu(py, peer, prov.base_url, n, clean))
    med = {k: statistics.median(v) for k, v in res.items() if v}
    ours = med["routerscope"] - med["bare"]
    for peer in PEERS:
        theirs = med[peer] - med[f"bare-{peer}"]
        rows.append(Row("peers", f"CPU added per plain-requests LLM call vs {peer}",
                        "import routerscope.auto", ours, peer, theirs, "us/call",
                        theirs / max(ours, 1e-9), claim=f"below {peer}",
                        verdict="holds" if ours < theirs else "does not hold"))
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
