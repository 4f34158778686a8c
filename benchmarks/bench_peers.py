"""Instrumentation cost per call: routerscope vs plain OpenTelemetry, OpenLIT and Logfire.

    PYTHONPATH=. .venv/bin/python -m benchmarks.run --only peers     # the table rows
    PYTHONPATH=. .venv/bin/python -m benchmarks.bench_peers --levers # experiments below

Each peer lives in its own virtual environment under ``.bench-venvs/`` (created
on first use from PyPI, pinned in ``PEERS``), because they pin OpenTelemetry
versions of their own; routerscope runs from this checkout in the project's
venv. Every process runs ``benchmarks/peers/child.py``: one set-up, then the
same calls to the same loopback servers, exporting OTLP to a loopback receiver
of its own. Three paths:

* ``requests``: a plain ``requests`` chat-completion POST;
* ``requests8k``: the same with an 8 KB prompt (routerscope reads the request
  and response bodies; a prompt's length should cost next to nothing);
* ``openai``: ``openai.OpenAI(base_url=loopback).chat.completions.create``
  (openai 3.57 on httpx2; OpenLIT 1.45.0 requires openai<3, so its venv has
  the newest 2.x, on httpx);
* ``nonllm``: a plain GET to a loopback path that is not an LLM API, against
  the plain requests instrumentation (the cost of recognising a non-LLM call).

Peers: plain OpenTelemetry through ``opentelemetry-instrument`` pinned to the
upstream distro and configurator (``OTEL_PYTHON_DISTRO=distro``,
``OTEL_PYTHON_CONFIGURATOR=configurator``: with routerscope installed the CLI
would otherwise load routerscope's own by entry-point order; the child fails if
routerscope got activated) with ``opentelemetry-instrumentation-requests`` and
``-openai-v2``; Logfire 5.4.0 (``instrument_requests`` / ``instrument_openai``);
OpenLIT 1.45.0 (``openlit.init`` with a local ``pricing_json``, so it never
fetches its price list). An audit hook in every child aborts on a name lookup
or connection to anything but loopback, and ``NO_PROXY`` covers loopback.

**Instructions** (valgrind's callgrind, every thread of the process: the SDK's
batch export and our deferred metric records included) are taken as a slope:
after ``WARMUP`` calls the child makes ``N1`` calls, then ``N2 - N1`` more, and
callgrind dumps its counters before each block (``--dump-before=getloadavg``);
the per-call figure is the second block's count over ``N2 - N1``, so start-up,
first-call and exit costs are not counted per call. Metric export is every 600 s
(no periodic export inside a block); spans export on the SDK's batch schedule.
Counts repeat to well under 1 %; they do not depend on machine load.

**Latency added on the calling thread**: the wall time of each call after
warm-up on the caller's thread, median over the calls of a process, minus the
same median of the bare process of the same venv, taken over rounds that
interleave every process, median over rounds. This box has 2 cores shared with
other jobs, so these microsecond figures move by tens of percent between runs;
instructions are the robust measure.

What each records per call is counted at its receiver (spans per call, GenAI
spans per call, the GenAI histograms it exported) and written into the row
labels; a comparison where routerscope records less than the peer says so in
its verdict instead of "holds".

Where routerscope's instructions go (plain-requests path, 2026-11-29, 100 calls
after 50; ``--levers`` re-measures, ``--profile`` writes the C-function and
cProfile breakdown to ``benchmarks/results/peers-profile.txt``). routerscope adds
0.79 M instructions per call (0.40 M of them on the calling thread), against
0.87-0.89 M for plain OpenTelemetry and 0.90 M for OpenLIT, which record one HTTP
span and one histogram there, and 1.42 M for Logfire. Each lever below undoes one
of issue 15's changes in the child only (monkeypatched, never a result row):

=====================================  ======================  ==================
undone                                 whole process, M/call   calling thread
=====================================  ======================  ==================
(none: routerscope as shipped)         0.79                    0.40
histograms through the SDK             +0.50                   +0.00 (deferred)
  (``sdk-histograms``; four
  ``Histogram.record`` vs the
  pre-aggregation)
histograms dropped (``no-histograms``) -0.08                   0.00
spans end on the caller                -0.01                   +0.09
  (``spans-end-now``)
the SDK's OTLP encoder                 +0.39                   0.00
  (``sdk-encoder``)
no secret check (``no-redact``)        -0.04                   0.00
no pool counting (``no-pool-count``)   -0.02                   -0.01
=====================================  ======================  ==================

So the recorded histograms cost 0.08 M per call in all (from 0.58 M through the
SDK), the span's export encoding ~0.05 M (from ~0.44 M), and ending the span on
the deferred worker takes 0.09 M off the caller's wait for 0.01 M more in all.
What remains is the SDK span itself (start with its sampler and attribute
cleaning, end, batch processor), the GenAI wrapper around ``Session.send`` (URL
check, request and response body reads, trace-context injection) and the
secret check at export.

On the non-LLM GET routerscope adds 0.75-0.78 M against 0.88 M for the requests
instrumentation alone (which records its histogram through the SDK on the
caller's thread; routerscope hands the same instrumentation a meter whose
histogram is the pre-aggregated one), and the same on the calling thread
(0.62 M each): the GenAI wrapper's check and the pool counting cost there what
the cheaper histogram saves.

``callgrind_annotate`` by C function has no hot spot: the interpreter's own
frames and calls take the first third, i.e. the cost is Python code run per
call, spread thin (``--profile``).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, Row

_HERE = Path(__file__).with_name("peers")
CHILD = str(_HERE / "child.py")
PRICING = str(_HERE / "openlit-pricing.json")
_CONSTRAINTS = str(_HERE / "openlit-constraints.txt")
_CLIENTS = ["requests==2.34.2", "openai==3.57.0"]  # the versions in routerscope's own venv
PEERS = {"otel": ["opentelemetry-distro==0.66b2", "opentelemetry-sdk==1.45.2",
                  "opentelemetry-exporter-otlp-proto-http==1.45.2",
                  "opentelemetry-instrumentation-requests==0.66b2",
                  # openai-v2 2.4b0 imports httpx (which openai 3.x, on httpx2, does not pull in)
                  # and util.genai.instruments (gone from util-genai 1.x): without these two pins
                  # opentelemetry-instrument skips it and records nothing on the openai path
                  "opentelemetry-instrumentation-openai-v2==2.4b0", "opentelemetry-util-genai==0.4b0",
                  "httpx==0.28.1", *_CLIENTS],
         "logfire": ["logfire==5.4.0", "opentelemetry-instrumentation-requests", *_CLIENTS],
         # openlit 1.45.0 requires openai<3: the newest 2.x (HTTP layer httpx, not httpx2)
         "openlit": ["openlit==1.45.0", "requests==2.34.2", "openai<3", "-c", _CONSTRAINTS]}
OURS = "routerscope"

PATHS = {"requests": "plain-requests LLM call",
         "requests8k": "plain-requests LLM call with an 8 KB prompt",
         "openai": "openai SDK chat completion",
         "nonllm": "plain non-LLM GET"}
LABELS = {("routerscope", "requests"): "import routerscope.auto",
          ("routerscope", "openai"): "import routerscope.auto",
          ("routerscope", "nonllm"): "import routerscope.auto",
          ("otel", "requests"): "plain OTel: opentelemetry-instrument + requests instrumentation",
          ("otel", "openai"): "plain OTel: opentelemetry-instrument + openai-v2",
          ("otel", "nonllm"): "plain OTel: requests instrumentation alone",
          ("logfire", "requests"): "Logfire 5.4.0 instrument_requests",
          ("logfire", "openai"): "Logfire 5.4.0 instrument_openai",
          ("openlit", "requests"): "OpenLIT 1.45.0", ("openlit", "openai"): "OpenLIT 1.45.0",
          ("routerscope", "requests8k"): "import routerscope.auto",
          ("otel", "requests8k"): "plain OTel: opentelemetry-instrument + requests instrumentation",
          ("logfire", "requests8k"): "Logfire 5.4.0 instrument_requests",
          ("openlit", "requests8k"): "OpenLIT 1.45.0"}
PEERS_ON = {"requests": ("otel", "logfire", "openlit"), "requests8k": ("otel", "logfire", "openlit"),
            "openai": ("otel", "logfire", "openlit"),
            "nonllm": ("otel",)}
LEVERS = ("sdk-histograms", "no-histograms", "spans-end-now", "sdk-encoder", "no-redact",
          "no-pool-count")
NONLLM_LEVERS = ("no-redact", "no-pool-count")


@dataclass(frozen=True)
class Run:
    """One child process: who (``bare`` runs in ``venv``'s Python), which path, which lever."""

    who: str
    venv: str  # "routerscope" = this checkout's venv
    path: str
    lever: str = ""

    @property
    def key(self) -> str:
        return f"{self.who}@{self.venv}/{self.path}" + (f"+{self.lever}" if self.lever else "")


def peer_python(name: str) -> Path:
    """The Python of peer ``name``'s venv under ``.bench-venvs/``, built from ``PEERS`` if stale."""
    path = Path(ROOT) / ".bench-venvs" / name
    py = path / "bin" / "python"
    marker = path / ".ready"
    spec = " ".join(PEERS[name])
    if not marker.exists() or marker.read_text() != spec:
        shutil.rmtree(path, ignore_errors=True)
        venv.create(path, with_pip=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PEERS[name]], check=True,
                       timeout=900, env=env)
        marker.write_text(spec)
    return py


def ensure_valgrind() -> str:
    """valgrind's path, installed with apt-get when it is missing (the box runs as root)."""
    found = shutil.which("valgrind")
    if found:
        return found
    subprocess.run(["bash", str(_HERE / "ensure-valgrind.sh")], check=True, timeout=600)
    found = shutil.which("valgrind")
    if not found:
        raise RuntimeError("valgrind is missing and benchmarks/peers/ensure-valgrind.sh "
                           "could not install it")
    return found


class _Plain(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    disable_nagle_algorithm = True  # headers and body in one segment: no delayed-ACK stall

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _NonLLM:
    """A loopback server answering every GET with 200 ``ok`` (not an LLM API)."""

    def __enter__(self) -> str:
        import threading

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Plain)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True, name="nonllm-server").start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _command(run: Run, pys: dict[str, str], url: str, warm: int, n1: int, n2: int) -> list[str]:
    py = pys[run.venv]
    cmd = [py, CHILD, run.who, run.path, url, str(warm), str(n1), str(n2)]
    if run.lever:
        cmd.append(run.lever)
    if run.who == "otel":
        cmd = [str(Path(py).parent / "opentelemetry-instrument"), *cmd]
    return cmd


def _env(run: Run, receiver: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "ROUTERSCOPE_", "LOGFIRE_", "OPENLIT_"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                # no periodic metric export inside a measured block: only the calls differ;
                # spans are exported by the flush before each dump mark, not on a timer (a
                # timer under valgrind's slowness exported a varying number of batches per
                # block: +-0.05 M/call between identical runs)
                "OTEL_METRIC_EXPORT_INTERVAL": "600000", "OTEL_BSP_SCHEDULE_DELAY": "600000",
                "OTEL_BLRP_SCHEDULE_DELAY": "600000",
                "ROUTERSCOPE_MEMORY_MONITOR": "0", "ROUTERSCOPE_HARDWARE_EVENT": "0",
                "NO_PROXY": "127.0.0.1,localhost,::1", "no_proxy": "127.0.0.1,localhost,::1",
                "BENCH_OPENLIT_PRICING": PRICING,
                "PYTHONHASHSEED": "0"})  # str hashes vary the instruction count by ~3 % otherwise
    if run.who == "otel":  # plain OpenTelemetry, never routerscope's distro/configurator
        env.update({"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator",
                    "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp",
                    "OTEL_LOGS_EXPORTER": "none"})
    if run.venv == OURS:
        env["PYTHONPATH"] = ROOT
    else:
        env.pop("PYTHONPATH", None)
    return env


def _recorded(rx: Any, calls: int) -> dict[str, Any]:
    from routerscope.testing import attrs_of

    spans = genai = 0
    for _, span in rx.spans():
        spans += 1
        if any(k.startswith("gen_ai.") for k in attrs_of(span.attributes)):
            genai += 1
    hists = sorted(n for n in rx.metric_names()
                   if n.startswith(("gen_ai.client.", "http.client.")))
    return {"spans_per_call": round(spans / calls, 2), "genai_per_call": round(genai / calls, 2),
            "histograms": hists}


def _child(run: Run, pys: dict[str, str], urls: dict[str, str], warm: int, n1: int, n2: int,
           valgrind: str | None, out_dir: str | None = None, caller: bool = False
           ) -> dict[str, Any]:
    """One child process; with ``valgrind``, the per-call instruction slope of its last block.

    ``caller``: count the calling thread alone (``caller_per_call``) instead of the
    whole process (``per_call``). With ``--separate-threads=yes`` a dump mark
    dumps only the thread that reached it (the calling thread), so the whole
    process and the calling thread take one run each.
    """
    from routerscope.testing import OTLPReceiver

    with OTLPReceiver() as rx:
        cmd = _command(run, pys, urls[run.path], warm, n1, n2)
        tmp = out_dir or (tempfile.mkdtemp(prefix="bench-cg-") if valgrind else "")
        if valgrind:
            # opentelemetry-instrument exec()s the Python it wraps: follow it
            cmd = [valgrind, "--tool=callgrind", "--instr-atstart=no", "--dump-before=getloadavg",
                   f"--separate-threads={'yes' if caller else 'no'}",
                   f"--trace-children={'yes' if run.who == 'otel' else 'no'}",
                   f"--callgrind-out-file={tmp}/cg.%p", *cmd]
        env = _env(run, rx.url)
        if valgrind:
            env["BENCH_CALLGRIND"] = "1"
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"{run.key} exited {out.returncode}: {out.stderr[-3000:]}")
        res: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        res.update(_recorded(rx, warm + n2))
    if valgrind:
        # cg.PID.DUMP (cg.PID.DUMP-01 with separate threads: the calling thread's)
        totals: dict[int, int] = {}
        parts = sorted(glob.glob(f"{tmp}/cg.*.*"))
        for part in parts:
            m = re.search(r"\.(\d+)(-01)?$", part)
            if m is None or bool(m.group(2)) != caller:
                continue
            with open(part) as f:
                totals[int(m.group(1))] = next(int(line.split()[1]) for line in f
                                               if line.startswith("totals:"))
        if sorted(totals) != [1, 2, 3]:  # before block 1, before block 2, after block 2
            raise RuntimeError(f"{run.key}: expected 3 callgrind dumps, got {sorted(totals)}")
        res["first_block_per_call"] = totals[2] / n1
        res["caller_per_call" if caller else "per_call"] = totals[3] / (n2 - n1)
        res["dumps"] = parts
        if out_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return res


def _runs(levers: bool = False) -> list[Run]:
    runs = []
    for path, peers in PEERS_ON.items():
        runs += [Run("bare", OURS, path), Run(OURS, OURS, path)]
        for p in peers:
            runs += [Run("bare", p, path), Run(p, p, path)]
    if levers:
        runs = [Run("bare", OURS, "requests"), Run(OURS, OURS, "requests"),
                *(Run(OURS, OURS, "requests", lever) for lever in LEVERS),
                Run("bare", OURS, "nonllm"), Run(OURS, OURS, "nonllm"),
                *(Run(OURS, OURS, "nonllm", lever) for lever in NONLLM_LEVERS)]
    return runs


def measure(quick: bool = False, levers: bool = False) -> dict[str, dict[str, Any]]:
    """Instructions (callgrind slope) and caller-thread latency of every run."""
    from routerscope.testing import FakeProvider

    valgrind = ensure_valgrind()
    pys = {OURS: sys.executable, **{name: str(peer_python(name)) for name in PEERS}}
    runs = _runs(levers)
    warm, n1, n2 = 20, 30, (80 if quick else 130)
    lat_warm, lat_n, rounds = 30, (150 if quick else 300), (2 if quick else 3)
    results: dict[str, dict[str, Any]] = {r.key: {"latency": []} for r in runs}
    with FakeProvider() as prov, _NonLLM() as plain:
        urls = {"requests": prov.base_url, "requests8k": prov.base_url, "openai": prov.base_url,
                "nonllm": plain}
        t0 = time.perf_counter()
        for _ in range(rounds):  # wall clock first, alone, interleaved over every process
            for r in runs:
                res = _child(r, pys, urls, lat_warm, lat_n // 2, lat_n, None)
                results[r.key]["latency"].append(res["median_us"])
        print(f"[peers] latency rounds: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        t0 = time.perf_counter()
        # instruction counts do not depend on load: two at a time
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {r.key: pool.submit(_child, r, pys, urls, warm, n1, n2, valgrind)
                       for r in runs}
            callers = {r.key: pool.submit(_child, r, pys, urls, warm, n1, n2, valgrind,
                                          caller=True) for r in runs}
            for key, fut in futures.items():
                res = fut.result()
                results[key].update(res)
                results[key]["caller_per_call"] = callers[key].result()["caller_per_call"]
                print(f"[peers] {key}: {res['per_call'] / 1e6:.3f} M instructions/call "
                      f"(calling thread {results[key]['caller_per_call'] / 1e6:.3f}; first block "
                      f"{res['first_block_per_call'] / 1e6:.3f}), "
                      f"{res['spans_per_call']} spans/call, {res['genai_per_call']} GenAI, "
                      f"{res['histograms']}", file=sys.stderr)
        print(f"[peers] callgrind: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return results


def _added(results: dict[str, dict[str, Any]], who: str, venv_: str, path: str
           ) -> tuple[float, float, float, float, dict[str, Any]]:
    """(M instructions added/call, x bare, M added on the calling thread, us latency added,
    what it recorded)."""
    mine, bare = results[f"{who}@{venv_}/{path}"], results[f"bare@{venv_}/{path}"]
    added = (mine["per_call"] - bare["per_call"]) / 1e6
    caller = (mine["caller_per_call"] - bare["caller_per_call"]) / 1e6
    lat = statistics.median(m - b for m, b in zip(mine["latency"], bare["latency"], strict=True))
    return added, mine["per_call"] / bare["per_call"], caller, lat, mine


def _what(rec: dict[str, Any], path: str) -> str:
    if path == "nonllm":
        return f"{rec['spans_per_call']:g} span/call"
    if rec["genai_per_call"] < 0.99:
        return f"records no GenAI span; {rec['spans_per_call']:g} span/call"
    other = rec["spans_per_call"] - rec["genai_per_call"]
    gen = [h.removeprefix("gen_ai.client.") for h in rec["histograms"]
           if h.startswith("gen_ai.client.")]
    return ("GenAI span" + (f" + {other:g} HTTP span" if other >= 0.99 else "")
            + (f", {', '.join(gen)} histograms" if gen else ", no GenAI histograms received"))


def rows(results: dict[str, dict[str, Any]]) -> list[Row]:
    out: list[Row] = []
    for path, desc in PATHS.items():
        ours, ours_x, ours_caller, ours_lat, ours_rec = _added(results, OURS, OURS, path)
        a_label = f"{LABELS[(OURS, path)]} ({_what(ours_rec, path)}; {ours_x:.2f}x bare)"
        for peer in PEERS_ON[path]:
            theirs, their_x, their_caller, their_lat, rec = _added(results, peer, peer, path)
            if path == "openai" and rec["genai_per_call"] < 0.99:
                raise RuntimeError(f"{peer} recorded no GenAI span on the {path} path: "
                                   "its instrumentation did not load")
            b_label = f"{LABELS[(peer, path)]} ({_what(rec, path)}; {their_x:.2f}x bare)"
            less = path != "nonllm" and ours_rec["genai_per_call"] < rec["genai_per_call"]

            def verdict(a: float, b: float, *, less: bool = less) -> str:
                if less:
                    return "not comparable: routerscope records no GenAI span on this path"
                return "holds" if a < b else "does not hold"

            name = "instructions added per " + desc + (
                " (recognising a non-LLM call)" if path == "nonllm" else "")
            out.append(Row("peers", name, a_label, ours, b_label, theirs, "M instructions/call",
                           theirs / ours if ours > 0 else float("inf"),
                           claim=f"below {peer}", verdict=verdict(ours, theirs)))
            out.append(Row("peers", "instructions added on the calling thread per " + desc
                           + " (what the caller waits for)",
                           LABELS[(OURS, path)], ours_caller, LABELS[(peer, path)], their_caller,
                           "M instructions/call",
                           their_caller / ours_caller if ours_caller > 0 else float("inf"),
                           claim=f"below {peer}", verdict=verdict(ours_caller, their_caller)))
            out.append(Row("peers", "latency added on the calling thread per " + desc
                           + " (median; shared 2-core box, noisy)",
                           LABELS[(OURS, path)], ours_lat, LABELS[(peer, path)], their_lat,
                           "us/call", their_lat / ours_lat if ours_lat > 0 else float("inf"),
                           claim=f"below {peer}", verdict=verdict(ours_lat, their_lat)))
    return out


def run(quick: bool = False) -> list[Row]:
    return rows(measure(quick=quick))


def levers() -> None:
    """The lever experiments (monkeypatched in the child only): instructions saved per call."""
    res = measure(quick=False, levers=True)
    for path, names in (("requests", LEVERS), ("nonllm", NONLLM_LEVERS)):
        full = res[f"{OURS}@{OURS}/{path}"]["per_call"]
        bare = res[f"bare@{OURS}/{path}"]["per_call"]
        print(f"{path}: routerscope adds {(full - bare) / 1e6:.3f} M instructions/call")
        for lever in names:
            got = res[f"{OURS}@{OURS}/{path}+{lever}"]["per_call"]
            print(f"  {lever}: saves {(full - got) / 1e6:.3f} M/call "
                  f"({(full - got) / (full - bare):.0%} of what routerscope adds)")


def _self_costs(dump: str) -> dict[str, int]:
    """Exclusive instructions per C function in one callgrind dump."""
    ann = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", dump],
                         capture_output=True, text=True, check=True, timeout=300)
    costs: dict[str, int] = {}
    for line in ann.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].replace(",", "").isdigit() and parts[1].startswith("("):
            fn = parts[2].split(" [")[0].rsplit(":", 1)[-1]
            costs[fn] = costs.get(fn, 0) + int(parts[0].replace(",", ""))
    return costs


def profile(top: int = 25) -> str:
    """Where routerscope's instructions go on the plain-requests path.

    Two views of the second block (100 calls after 50): callgrind's exclusive
    instructions per C function, routerscope minus bare (the interpreter's own
    frames cancel out), and cProfile's inclusive time per Python function in the
    same child without valgrind (which Python code those instructions run).
    """
    import pstats

    from routerscope.testing import FakeProvider

    valgrind = ensure_valgrind()
    pys = {OURS: sys.executable}
    calls = 100
    with FakeProvider() as prov, _NonLLM() as plain:
        urls = {"requests": prov.base_url, "requests8k": prov.base_url, "openai": prov.base_url,
                "nonllm": plain}
        selfs, totals = {}, {}
        for who in ("bare", OURS):
            tmp = tempfile.mkdtemp(prefix="bench-prof-")
            res = _child(Run(who, OURS, "requests"), pys, urls, 20, 30, 30 + calls, valgrind, tmp)
            selfs[who] = _self_costs(next(d for d in res["dumps"] if d.endswith(".3")))
            totals[who] = res["per_call"]
            shutil.rmtree(tmp, ignore_errors=True)
        tmp = tempfile.mkdtemp(prefix="bench-prof-")
        os.environ["BENCH_CPROFILE"] = f"{tmp}/prof"
        try:
            _child(Run(OURS, OURS, "requests"), pys, urls, 20, 30, 30 + calls, None)
        finally:
            del os.environ["BENCH_CPROFILE"]
        stats = pstats.Stats(f"{tmp}/prof")
    added = totals[OURS] - totals["bare"]
    lines = [f"routerscope adds {added / 1e6:.3f} M instructions per plain-requests LLM call "
             f"({totals[OURS] / 1e6:.3f} M vs {totals['bare'] / 1e6:.3f} M bare; "
             f"callgrind, every thread, {calls} calls after 50)", "",
             "C functions by exclusive instructions added per call (routerscope - bare):"]
    delta = {fn: (selfs[OURS].get(fn, 0) - selfs["bare"].get(fn, 0)) / calls
             for fn in set(selfs[OURS]) | set(selfs["bare"])}
    for fn, d in sorted(delta.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {d / 1e3:9.1f} k  {d / added:6.1%}  {fn}")
    lines += ["", "routerscope and OpenTelemetry Python functions by inclusive time (cProfile, "
              "same calls, no valgrind; share of the whole call loop, HTTP round trip included):"]
    raw: Any = stats.stats  # type: ignore[attr-defined]
    whole = max(ct for (_, _, _, ct, _) in raw.values())
    rows_ = sorted(((ct, nc, f"{fn.split('site-packages/')[-1].split('/wt/bench/')[-1]}:{line}:{name}")
                    for (fn, line, name), (_, nc, _, ct, _) in raw.items()
                    if "routerscope" in fn or "opentelemetry" in fn), reverse=True)
    for ct, nc, where in rows_[:top]:
        lines.append(f"  {ct / whole:6.1%}  {nc // calls:3d}/call  {where}")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(ROOT, "benchmarks", "results", "peers-profile.txt"), "w") as f:
        f.write(text)
    return text


if __name__ == "__main__":
    if "--profile" in sys.argv:
        print(profile())
    elif "--levers" in sys.argv:
        levers()
    else:
        for r in run(quick="--quick" in sys.argv):
            print(r)
