"""Where the instructions of one instrumented call go: callgrind slopes and a per-function breakdown.

For each (setup, workload) pair a child process makes ``W`` warm-up calls and
then ``N`` measured calls to a loopback :class:`routerscope.testing.FakeProvider`,
with spans exported to a loopback :class:`routerscope.testing.OTLPReceiver`
(metrics every ``OTEL_METRIC_EXPORT_INTERVAL=600000`` ms: not mid-run). It runs
under ``valgrind --tool=callgrind`` twice (``N1`` and ``N2`` calls); the
instructions per call are the slope ``(I(N2) - I(N1)) / (N2 - N1)``, so one-off
costs (imports, set-up, the first export) are not counted per call.

Setups: ``bare`` (no telemetry), ``otel`` (the OpenTelemetry SDK with the
requests instrumentation, and the httpx one where installed, exporting the same
way), ``routerscope`` (``import routerscope.auto``), ``routerscope-no-histograms``
(the same with every histogram record dropped: what they cost).
Workloads: ``requests`` (a plain-``requests`` chat completion), ``openai`` (the
``openai`` SDK over httpx2), ``stream`` (an ``openai`` SDK stream read to its
end), ``get`` (a plain ``requests`` GET that is not an LLM call).

Each run also counts the calling (main) thread alone (``--separate-threads``):
what the instrumentation adds there is the latency the caller sees.

``--annotate`` also prints ``callgrind_annotate`` of the calling thread, inclusive
and self, ``N2`` run minus ``N1`` run per function (per call), and ``--pyprofile``
a ``cProfile`` of the measured calls (Python functions by own time, per call).

Measured (2026-11-29, this machine, ``--warm 10 --n1 20 --n2 160``; M instructions
added per call over ``bare``, whole process / calling thread; runs repeat to about
+-0.03 M):

=================================  ===============  ===============  ============
path                               before (35e253d) after (issue 15) plain OTel
=================================  ===============  ===============  ============
plain-``requests`` LLM call        1.72 / 0.66      0.80 / 0.42      1.01 / 0.66
``openai`` SDK call (httpx2)       1.85 / 0.78      0.84 / 0.44      (none)
plain ``requests`` GET, not LLM    1.19 / 0.81      0.76 / 0.63      0.97 / 0.65
=================================  ===============  ===============  ============

(plain OTel: the SDK and ``RequestsInstrumentor`` with stable HTTP semconv; the
httpx instrumentation is not installed here and would not patch httpx2 anyway, so
it adds nothing to the ``openai`` path and records nothing there. The peers
benchmark, ``benchmarks/bench_peers.py``, compares with each peer in its own venv.)

What took the plain-``requests`` LLM call from 1.72 M to 0.80 M (each measured by
undoing it: ``python -m benchmarks.bench_peers --levers``):

* the hot-path histograms pre-aggregated (``routerscope/telemetry/_fast_metrics.py``):
  four SDK ``Histogram.record`` calls (~0.16 M each: the ``Measurement``, its
  attribute cleaning, the exemplar filter, attribute hashing, the aggregation and
  the reservoir) became dict look-ups and integer updates: 0.58 M -> 0.08 M;
* the span exporter's own protobuf encoder (``routerscope/telemetry/_otlp_encode.py``,
  byte-identical to the SDK's): ~0.44 M -> ~0.05 M for a span of ~15 attributes;
* the LLM call's span ended on the deferred worker (end attributes, status,
  metric records, ``end(end_time=...)``): 0.09 M off the calling thread;
* the secret check of spans at export, skipping strings found clean before;
  the requests instrumentation skipped beneath an LLM call it would only pass
  through; bodies read without decoding their long strings
  (``routerscope/core/leanjson.py``: an 8 KB prompt costs 0.04 M, not 0.11 M).

What is left on the calling thread (0.42 M): the SDK's ``start_span`` (sampler,
ids, ~10 attributes cleaned), the GenAI wrapper (URL check, the request body's
model and parameters, the response body's usage), trace-context injection, the
deferred queue. ``callgrind_annotate`` by C function shows no hot spot there:
the interpreter's frames, calls and dict look-ups take the first third, so the
cost is Python work spread thin; the levers left are fewer Python calls.

Usage::

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.profile_hot_path \\
        --setups bare,routerscope --workloads requests,openai [--annotate] [--pyprofile]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)

CHILD = r"""
import os, sys
setup, workload, url, warm, n, prof = sys.argv[1:7]
warm, n = int(warm), int(n)
if setup.startswith("routerscope"):
    import routerscope.auto
    from routerscope.instrumentation import wait_instrumented
    wait_instrumented()
    if setup == "routerscope-no-histograms":  # where the cost goes: without the metric records
        import routerscope.core.otel as _otel
        _otel.set_record_sink(lambda *a: True)  # every histogram record taken and dropped
elif setup == "otel":
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tp)
    metrics.set_meter_provider(MeterProvider([PeriodicExportingMetricReader(OTLPMetricExporter())]))
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    RequestsInstrumentor().instrument()
    try:  # the httpx instrumentation, where installed
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        HTTPXClientInstrumentor().instrument()
    except ImportError:
        pass
body = {"model": "demo/small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
if workload in ("requests", "get"):
    import requests
    s = requests.Session()
    if workload == "requests":
        def call():
            s.post(url + "/chat/completions", json=body).json()
    else:
        def call():
            s.get(url + "/models").json()
else:
    import openai
    client = openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0)
    if workload == "openai":
        def call():
            client.chat.completions.create(**body)
    else:
        def call():
            for _ in client.chat.completions.create(**body, stream=True):
                pass
for _ in range(warm):
    call()
if prof != "-":
    import cProfile
    p = cProfile.Profile()
    p.enable()
for _ in range(n):
    call()
if prof != "-":
    p.disable()
    p.dump_stats(prof)
"""

SETUPS = ("bare", "otel", "routerscope")
WORKLOADS = ("requests", "openai", "stream", "get")


def _env(otlp_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROUTERSCOPE_"))}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url, "OTEL_METRIC_EXPORT_INTERVAL": "600000",
                "OTEL_SEMCONV_STABILITY_OPT_IN": "http", "ROUTERSCOPE_MEMORY_MONITOR": "0",
                "ROUTERSCOPE_HARDWARE_EVENT": "0", "PYTHONPATH": ROOT})
    return env


def _callgrind(setup: str, workload: str, url: str, warm: int, n: int, env: dict[str, str],
               out_file: str) -> tuple[int, int]:
    """(instructions of the whole process, of its main thread: the one making the calls)."""
    for old in glob.glob(out_file + "*"):
        os.unlink(old)
    cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes",
           f"--callgrind-out-file={out_file}",
           sys.executable, "-c", CHILD, setup, workload, url, str(warm), str(n), "-"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(f"{setup}/{workload}: {res.stderr[-2000:]}")
    m = re.search(r"Collected : (\d+)", res.stderr)
    if m is None:
        raise RuntimeError(f"{setup}/{workload}: no callgrind total in {res.stderr[-500:]}")
    with open(out_file + "-01") as f:  # thread 1: the main thread
        main = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
    return int(m.group(1)), int(main.group(1)) if main else 0


_ANN = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$")


def _by_function(out_file: str, inclusive: bool) -> dict[str, int]:
    """``callgrind_annotate`` cost per function (file paths cut to the function name)."""
    res = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
                          "--threshold=100", out_file],
                         capture_output=True, text=True, timeout=600)
    costs: dict[str, int] = {}
    for line in res.stdout.splitlines():
        m = _ANN.match(line)
        if m:
            name = re.sub(r"\s*\[.*\]$", "", m.group(2).strip()).rsplit(":", 1)[-1]
            costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def _pyprofile(setup: str, workload: str, url: str, warm: int, n: int, env: dict[str, str],
               top: int) -> None:
    import pstats

    with tempfile.NamedTemporaryFile(suffix=".prof", delete=False) as f:
        path = f.name
    subprocess.run([sys.executable, "-c", CHILD, setup, workload, url, str(warm), str(n), path],
                   env=env, check=True, timeout=600)
    stats = pstats.Stats(path)
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tt, ct, nc, f"{Path(file).name}:{line}({func})"))
    rows.sort(reverse=True)
    print(f"  cProfile {setup}/{workload}: own us/call, incl us/call, calls/call, function")
    for tt, ct, nc, name in rows[:top]:
        print(f"    {tt / n * 1e6:8.1f} {ct / n * 1e6:8.1f} {nc / n:6.1f}  {name}")
    os.unlink(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--setups", default="bare,otel,routerscope")
    ap.add_argument("--workloads", default="requests,openai,get")
    ap.add_argument("--warm", type=int, default=30)
    ap.add_argument("--n1", type=int, default=40)
    ap.add_argument("--n2", type=int, default=140)
    ap.add_argument("--annotate", action="store_true")
    ap.add_argument("--pyprofile", action="store_true")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    sys.path.insert(0, ROOT)
    from routerscope.testing import FakeProvider, OTLPReceiver

    per_call: dict[tuple[str, str], float] = {}
    main_call: dict[tuple[str, str], float] = {}
    with OTLPReceiver() as rx, FakeProvider() as prov, tempfile.TemporaryDirectory() as tmp:
        env = _env(rx.url)
        for workload in args.workloads.split(","):
            for setup in args.setups.split(","):
                f1, f2 = os.path.join(tmp, "n1.out"), os.path.join(tmp, "n2.out")
                i1, m1 = _callgrind(setup, workload, prov.base_url, args.warm, args.n1, env, f1)
                i2, m2 = _callgrind(setup, workload, prov.base_url, args.warm, args.n2, env, f2)
                slope = (i2 - i1) / (args.n2 - args.n1)
                main_slope = (m2 - m1) / (args.n2 - args.n1)
                per_call[(setup, workload)] = slope
                main_call[(setup, workload)] = main_slope
                print(f"{setup:12s} {workload:9s} {slope / 1e6:7.3f} M instructions/call "
                      f"({main_slope / 1e6:.3f} M on the calling thread)", flush=True)
                for inclusive in (True, False) if args.annotate else ():  # the calling thread
                    c1 = _by_function(f1 + "-01", inclusive)
                    c2 = _by_function(f2 + "-01", inclusive)
                    diff = sorted(((c2.get(k, 0) - c1.get(k, 0)) / (args.n2 - args.n1), k)
                                  for k in c2)
                    print(f"  callgrind {'inclusive' if inclusive else 'self'} k instructions "
                          f"per call, calling thread ({setup}/{workload}):")
                    for cost, name in reversed(diff[-args.top:]):
                        print(f"    {cost / 1e3:9.1f}  {name[:120]}")
                if args.pyprofile:
                    _pyprofile(setup, workload, prov.base_url, args.warm, args.n2, env, args.top)
        for workload in args.workloads.split(","):
            bare = per_call.get(("bare", workload))
            if bare is None:
                continue
            for setup in args.setups.split(","):
                if setup != "bare" and (setup, workload) in per_call:
                    added = per_call[(setup, workload)] - bare
                    added_main = main_call[(setup, workload)] - main_call[("bare", workload)]
                    print(f"added {setup:12s} {workload:9s} {added / 1e6:7.3f} M instructions/call "
                          f"({per_call[(setup, workload)] / bare:.2f}x bare), "
                          f"{added_main / 1e6:.3f} M on the calling thread")


if __name__ == "__main__":
    main()
