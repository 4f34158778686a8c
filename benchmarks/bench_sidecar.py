"""Sidecar throughput vs rotel, in one run, on loopback.

Load: 2 client processes post the same gzip'd 512-span ExportTraceServiceRequest
(what the SDK's batch exporter sends) over keep-alive connections for a fixed
time, to the sidecar (durable spool, default fsync=always) and to rotel, in
turns (3 rounds each), so that a change in the shared machine's load hits both.
Both forward with gzip to the same sink, which decodes every request and
counts spans. We report the forwarding rate (spans/s and MB/s of uncompressed
OTLP arriving at the sink) and the sidecar's peak RSS, side by side.

Two more loads, each against both: the same request over OTLP/gRPC (gzip, one
channel per client), and small bodies (one span, ~150 bytes, uncompressed
HTTP), where the figure is requests acknowledged per second (for the sidecar
each one is validated and fsync'd before its 200, fsyncs shared by concurrent
requests).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, Row
from routerscope.testing import read_trace_request

SPANS_PER_REQUEST = 512

CLIENT = """
import sys, time
mode, url, path, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
body = open(path, "rb").read()
n = ok = 0
end = time.monotonic() + seconds
if mode == "grpc":
    import grpc
    ch = grpc.insecure_channel(url, compression=grpc.Compression.Gzip)
    call = ch.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    while time.monotonic() < end:
        n += 1
        try:
            call(body, timeout=30)
            ok += 1
        except grpc.RpcError:
            pass
else:
    import requests
    s = requests.Session()
    h = {"Content-Type": "application/x-protobuf"}
    if mode == "http-gzip":
        h["Content-Encoding"] = "gzip"
    while time.monotonic() < end:
        r = s.post(url + "/v1/traces", data=body, headers=h, timeout=30)
        n += 1
        ok += r.status_code == 200
print(n, ok)
"""


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Any

    def log_message(self, *a: Any) -> None:
        pass

    def do_POST(self) -> None:
        req, raw = read_trace_request(self)
        n = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        with self.server.lock:
            self.server.spans += n
            self.server.bytes += len(raw)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


def _sink() -> Any:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    srv.daemon_threads = True
    srv.lock = threading.Lock()  # type: ignore[attr-defined]
    srv.spans = 0  # type: ignore[attr-defined]
    srv.bytes = 0  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _payload(tmp: Path, spans: int, gz: bool) -> tuple[Path, int]:
    sys.path.insert(0, str(ROOT))
    from tests.integration.conftest import span_request

    raw = span_request("bench-span-with-a-realistic-name", spans)
    path = tmp / f"req-{spans}{'.gz' if gz else ''}.pb"
    path.write_bytes(gzip.compress(raw, 6) if gz else raw)
    return path, len(raw)


def _load(mode: str, url: str, payload: Path, spans_per_request: int, seconds: float,
          sink: Any, pid: int | None) -> dict[str, float]:
    import psutil

    start_spans, start_bytes = sink.spans, sink.bytes
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, mode, url, str(payload),
                               str(seconds)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    peak = 0
    proc = psutil.Process(pid) if pid else None
    t0 = time.monotonic()
    while any(p.poll() is None for p in procs):
        if proc is not None:
            peak = max(peak, proc.memory_info().rss)
        time.sleep(0.1)
    sent = sum(int(p.communicate()[0].split()[1]) for p in procs)
    accept_s = time.monotonic() - t0
    # let the forwarder drain what it accepted (bounded wait)
    deadline = time.monotonic() + 60
    want = start_spans + sent * spans_per_request
    while sink.spans < want and time.monotonic() < deadline:
        if proc is not None:
            peak = max(peak, proc.memory_info().rss)
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    spans = sink.spans - start_spans
    return {"spans_s": spans / elapsed, "mb_s": (sink.bytes - start_bytes) / elapsed / 1e6,
            "requests_s": sent / accept_s, "accepted": sent * spans_per_request,
            "delivered": spans, "rss_mb": peak / 1e6}


def _merge(parts: list[dict[str, float]]) -> dict[str, float]:
    """Rates over several rounds: totals over total time; RSS: the peak."""
    out = {k: sum(p[k] for p in parts) / len(parts) for k in ("spans_s", "mb_s", "requests_s")}
    out["accepted"] = sum(p["accepted"] for p in parts)
    out["delivered"] = sum(p["delivered"] for p in parts)
    out["rss_mb"] = max(p["rss_mb"] for p in parts)
    return out


def run(quick: bool = False) -> list[Row]:
    sys.path.insert(0, str(ROOT))
    from tests.integration.conftest import Rotel, SidecarProc, free_port

    rounds = 3
    seconds = (6.0 if quick else 15.0) / rounds
    tmp = Path(tempfile.mkdtemp())
    big, raw_len = _payload(tmp, SPANS_PER_REQUEST, gz=True)
    big_plain, _ = _payload(tmp, SPANS_PER_REQUEST, gz=False)
    small, small_len = _payload(tmp, 1, gz=False)
    sink = _sink()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
    grpc_port = free_port()
    sc = SidecarProc(tmp / "spool", sink_url, "--grpc-listen", f"127.0.0.1:{grpc_port}",
                     port=free_port()).start()
    rotel = Rotel(tmp, metrics=f"{sink_url}/v1/metrics", traces=f"{sink_url}/v1/traces",
                  logs=f"{sink_url}/v1/logs")
    assert sc.proc is not None
    # the two take turns, round by round, so a change in the machine's load hits both alike
    loads = {"http": ("http-gzip", sc.url, rotel.url, big, SPANS_PER_REQUEST),
             "grpc": ("grpc", f"127.0.0.1:{grpc_port}", f"127.0.0.1:{rotel.grpc_port}",
                      big_plain, SPANS_PER_REQUEST),
             "small": ("http", sc.url, rotel.url, small, 1)}
    res: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    for name, (mode, ours_url, their_url, payload, n) in loads.items():
        a: list[dict[str, float]] = []
        b: list[dict[str, float]] = []
        for _ in range(rounds):
            a.append(_load(mode, ours_url, payload, n, seconds, sink, sc.proc.pid))
            b.append(_load(mode, their_url, payload, n, seconds, sink, rotel.proc.pid))
        res[name] = (_merge(a), _merge(b))
    sc.terminate()
    rotel.stop()
    sink.shutdown()
    ours, theirs = res["http"]
    ours_grpc, theirs_grpc = res["grpc"]
    ours_small, theirs_small = res["small"]
    out = Path(ROOT) / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    with open(out / "sidecar-raw.json", "w") as f:
        json.dump({"sidecar": ours, "rotel": theirs, "sidecar_grpc": ours_grpc,
                   "rotel_grpc": theirs_grpc, "sidecar_small": ours_small,
                   "rotel_small": theirs_small, "request_bytes": raw_len,
                   "small_request_bytes": small_len}, f, indent=2)
    ratio = ours["spans_s"] / max(theirs["spans_s"], 1e-9)
    g_ratio = ours_grpc["spans_s"] / max(theirs_grpc["spans_s"], 1e-9)
    s_ratio = ours_small["requests_s"] / max(theirs_small["requests_s"], 1e-9)
    peak = max(ours["rss_mb"], ours_grpc["rss_mb"], ours_small["rss_mb"])
    their_peak = max(theirs["rss_mb"], theirs_grpc["rss_mb"], theirs_small["rss_mb"])
    return [
        Row("sidecar", "forwarding rate, durable spool (fsync=always) vs rotel (in memory)",
            "routerscope sidecar", ours["spans_s"], "rotel", theirs["spans_s"], "spans/s", ratio,
            claim=">= 50,000 spans/s and >= 0.5x rotel",
            verdict="holds" if ours["spans_s"] >= 50_000 and ratio >= 0.5 else "does not hold"),
        Row("sidecar", "forwarding rate in MB/s of OTLP protobuf", "routerscope sidecar",
            ours["mb_s"], "rotel", theirs["mb_s"], "MB/s", ours["mb_s"] / max(theirs["mb_s"], 1e-9)),
        Row("sidecar", "forwarding rate over OTLP/gRPC (gzip), durable spool vs rotel",
            "routerscope sidecar", ours_grpc["spans_s"], "rotel", theirs_grpc["spans_s"],
            "spans/s", g_ratio, claim=">= 0.5x rotel",
            verdict="holds" if g_ratio >= 0.5 else "does not hold"),
        Row("sidecar", f"small bodies ({small_len} B, 1 span, HTTP): requests acknowledged "
            "per second, validated and fsync'd vs rotel", "routerscope sidecar",
            ours_small["requests_s"], "rotel", theirs_small["requests_s"], "requests/s",
            s_ratio),
        Row("sidecar", "peak RSS under those loads", "routerscope sidecar", peak, "rotel",
            their_peak, "MB", their_peak / max(peak, 1e-9), claim="sidecar under 100 MB",
            verdict="holds" if peak < 100 else "does not hold"),
    ]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    for r in run(quick=True):
        print(r)
