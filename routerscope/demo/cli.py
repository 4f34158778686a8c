"""routerscope demo: everything routerscope does, on one machine, nothing else running.

1. Times start-up of the eager router against the lazy one (child processes).
2. Starts an OpenAI-compatible provider on 127.0.0.1 (realistic latency, token
   usage) and a sidecar subprocess shipping to OUT/telemetry.jsonl (or, with
   --otlp URL, to a collector: then the Grafana dashboards fill up).
3. Runs the reference router's workload in a child process instrumented by
   "import routerscope.auto": repeated and new local models through the cache,
   API calls to several models through requests and the openai SDK (some
   streamed), a burst of 429/503 answers that the pooled session retries, and a
   memory leak that the memory monitor reports with its default settings.
4. Writes the report (summary.md, PNG charts, report.html) and prints its
   headline numbers, computed from the telemetry file by the report's code.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from routerscope.report.quantiles import nearest_rank
from routerscope.testing import FakeProvider, Fault

SERVICE = "routerscope-demo"
BURST = 5  # provider answers in the burst: 3 x 429 then 2 x 503


class _HelpFormatter(argparse.RawDescriptionHelpFormatter,
                     argparse.ArgumentDefaultsHelpFormatter):
    """The description as written (numbered steps), and every option's default."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the reference router, instrumented, and report",
                       description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--requests", type=int, default=240, help="router requests")
    p.add_argument("--duration", type=float, default=75.0,
                   help="upper bound on the workload's seconds")
    p.add_argument("--out", type=Path, default=Path("routerscope-demo"), help="output folder")
    p.add_argument("--otlp", default=None,
                   help="ship to this OTLP/HTTP collector (http://host:4318) instead of a file")
    p.add_argument("--latency", type=float, default=0.04,
                   help="provider base latency in seconds")
    p.add_argument("--per-token", type=float, default=0.0005,
                   help="provider latency per output token, seconds")
    p.add_argument("--startup-runs", type=int, default=3,
                   help="runs of each start-up measurement (the median is shown)")
    p.set_defaults(handler=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROUTERSCOPE_"))}
    env.update(extra)
    return env


STARTUP = """
import sys
from pathlib import Path
from routerscope.core.lazy import mark_ready
from routerscope.demo.router import {cls}
router = {cls}(sys.argv[1], Path(sys.argv[2]))
print(mark_ready())
"""


def _startup(cls: str, url: str, models: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", STARTUP.format(cls=cls), url, str(models)],
                             capture_output=True, text=True, timeout=300, env=_child_env())
        if out.returncode != 0:
            raise RuntimeError(f"{cls} start-up failed: {out.stderr[-2000:]}")
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return nearest_rank(times, 0.5)


class _Bar:
    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.tty = sys.stderr.isatty()
        self.last = -1

    def update(self, done: int, note: str = "") -> None:
        pct = int(100 * done / self.total)
        if self.tty:
            filled = pct * 30 // 100
            sys.stderr.write(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} "
                             f"{note:<24}")
            sys.stderr.flush()
        elif pct // 10 != self.last // 10:
            print(f"  workload {pct:3d}% ({done}/{self.total}) {note}", file=sys.stderr)
        self.last = pct

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def run(args: argparse.Namespace) -> int:
    from routerscope.demo.router import build_models, torch_available

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("telemetry.jsonl", "spool"):
        p = out / stale
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    use_torch = torch_available()
    print(f"routerscope demo -> {out}")
    if not use_torch:
        print("  torch is not installed: local models are plain Python objects of known size "
              "(install routerscope[torch] for real torch models)")
    models = out / "models"
    build_models(models, use_torch)
    print(f"  models: {', '.join(p.name for p in sorted(models.iterdir()))} "
          f"({'torch' if use_torch else 'no torch'})")

    with FakeProvider(base_latency=args.latency, per_token_latency=args.per_token,
                      jitter=0.3, output_tokens=(16, 96)) as provider:
        print("  timing start-up: eager router vs lazy router ...", flush=True)
        eager = _startup("EagerRouter", provider.base_url, models, args.startup_runs)
        lazy = _startup("DemoRouter", provider.base_url, models, args.startup_runs)
        port = _free_port()
        upstream = args.otlp or f"file://{out / 'telemetry.jsonl'}"
        log = (out / "sidecar.log").open("wb")
        sidecar = subprocess.Popen(
            [sys.executable, "-m", "routerscope", "sidecar", "--listen", f"127.0.0.1:{port}",
             "--upstream", upstream, "--spool", str(out / "spool"),
             "--self-metrics-interval", "2", "--fsync", "interval"],
            stdout=log, stderr=subprocess.STDOUT, env=_child_env())
        try:
            summary = _workload(args, provider, port, models)
            _drain(port)
        finally:
            sidecar.send_signal(signal.SIGTERM)
            try:
                sidecar.wait(30)
            except subprocess.TimeoutExpired:
                sidecar.kill()
            log.close()
    startup = ("start-up (process start -> ready)",
               f"eager {eager:.2f} s, lazy {lazy:.2f} s ({eager / lazy:.1f}x faster; median of "
               f"{args.startup_runs} child processes each; the original write-up claimed 5.3x)")
    local = ("local models", "torch" if summary["torch"] else "plain Python objects (no torch)")
    if args.otlp:
        _print_workload_summary(summary, startup, local)
        print(f"  telemetry shipped to {args.otlp}: open the Grafana dashboards")
        return 0
    from routerscope.report import console_rows, format_rows, write_report

    sm, made = write_report(out / "telemetry.jsonl", out / "report", service=SERVICE)
    print()
    print(format_rows([startup, *console_rows(sm), local]))
    print()
    cwd = Path.cwd()
    shown = [str(p.relative_to(cwd) if p.is_relative_to(cwd) else p) for p in made]
    print(f"  report (same numbers): {', '.join(shown)}")
    print(f"  raw telemetry: {out / 'telemetry.jsonl'} (routerscope report reads it)")
    return 0


def _workload(args: argparse.Namespace, provider: FakeProvider, port: int,
              models: Path) -> dict[str, Any]:
    env = _child_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_SERVICE_NAME=SERVICE, OTEL_METRIC_EXPORT_INTERVAL="1000",
        OTEL_BSP_SCHEDULE_DELAY="500", ROUTERSCOPE_LOG_FORMAT="none", ROUTERSCOPE_SERVICE_VERSION="demo")
    proc = subprocess.Popen(
        [sys.executable, "-m", "routerscope.demo.workload", "--provider", provider.base_url,
         "--models-dir", str(models), "--requests", str(args.requests),
         "--duration", str(args.duration)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    bar = _Bar(args.requests)
    summary: dict[str, Any] = {}
    note = "local models + API calls"
    burst_ends: int | None = None  # provider request count once the burst is answered
    for line in proc.stdout:
        try:
            ev = json.loads(line)
        except ValueError:  # not one of our JSON lines (a stray print): skip it
            continue
        kind = ev.get("event")
        if kind == "progress":
            if burst_ends is not None and provider.requests_total >= burst_ends:
                note, burst_ends = "after the burst", None
            bar.update(ev["done"], note)
        elif kind == "burst":  # the provider gets overloaded: 429s and 503s, retried
            burst_ends = provider.requests_total + BURST
            provider.enqueue(*[Fault(status=429, headers={"Retry-After": "0"})] * 3,
                             *[Fault(status=503)] * (BURST - 3))
            note = "burst: 429/503 -> retries"
        elif kind == "summary":
            summary = ev
    bar.close()
    err = proc.stderr.read() if proc.stderr else ""
    if proc.wait() != 0 or not summary:
        raise SystemExit(f"routerscope demo: the workload failed:\n{err[-3000:]}")
    return summary


def _drain(port: int, timeout: float = 30.0) -> None:
    """Wait until the sidecar has shipped everything it acknowledged."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st = requests.get(f"http://127.0.0.1:{port}/status", timeout=2).json()
            if st["queue"]["requests"] == 0:
                return
        except (requests.RequestException, ValueError, KeyError):
            pass  # the sidecar is still starting or busy: ask again until the deadline
        time.sleep(0.2)


def _print_workload_summary(sm: dict[str, Any], *rows: tuple[str, str]) -> None:
    """With --otlp there is no telemetry file: the workload's own numbers, labelled so."""
    from routerscope.report import format_rows

    api, mem = sm["api"], sm["memory"]
    p50 = "n/a" if api["p50_s"] is None else f"{api['p50_s']:.3f}"
    p95 = "n/a" if api["p95_s"] is None else f"{api['p95_s']:.3f}"
    print()
    print(format_rows([rows[0],
                       ("API latency", f"p50 {p50} s, p95 {p95} s over {api['calls']} successful "
                                       "calls (timed in the workload, nearest rank; the "
                                       "dashboards use histogram_quantile)"),
                       ("memory", f"leak suspected: {'yes' if mem['leak_suspected'] else 'no'}, "
                                  f"alerts {mem['alerts']}"), *rows[1:]]))
    print()
