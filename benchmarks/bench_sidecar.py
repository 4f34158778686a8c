"""Sidecar throughput vs rotel, in one run, on loopback.

Load: 2 client processes post the same gzip'd 512-span ExportTraceServiceRequest
(what the SDK's batch exporter sends) over keep-alive connections for a fixed
time, to the sidecar (durable spool, default fsync=always) and then to rotel.
Both forward with gzip to the same sink, which decodes every request and
counts spans. We report the forwarding rate (spans/s and MB/s of uncompressed
OTLP arriving at the sink) and the sidecar's peak RSS, side by side.
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

SPANS_PER_REQUEST = 512

CLIENT = """
import sys, time, requests
url, path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
body = open(path, "rb").read()
s = requests.Session()
h = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
n = ok = 0
end = time.monotonic() + seconds
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
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        req = ExportTraceServiceRequest()
        req.ParseFromString(raw)
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


def _payload(tmp: Path) -> tuple[Path, int]:
    sys.path.insert(0, str(ROOT))
    from tests.integration.conftest import span_request

    raw = span_request("bench-span-with-a-realistic-name", SPANS_PER_REQUEST)
    path = tmp / "req.pb.gz"
    path.write_bytes(gzip.compress(raw, 6))
    return path, len(raw)


def _load(url: str, payload: Path, seconds: float, sink: Any, pid: int | None) -> dict[str, float]:
    import psutil

    start_spans, start_bytes = sink.spans, sink.bytes
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, url, str(payload), str(seconds)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    peak = 0
    proc = psutil.Process(pid) if pid else None
    t0 = time.monotonic()
    while any(p.poll() is None for p in procs):
        if proc is not None:
            peak = max(peak, proc.memory_info().rss)
        time.sleep(0.1)
    sent = sum(int(p.communicate()[0].split()[1]) for p in procs)
    # let the forwarder drain what it accepted (bounded wait)
    deadline = time.monotonic() + 60
    want = start_spans + sent * SPANS_PER_REQUEST
    while sink.spans < want and time.monotonic() < deadline:
        if proc is not None:
            peak = max(peak, proc.memory_info().rss)
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    spans = sink.spans - start_spans
    return {"spans_s": spans / elapsed, "mb_s": (sink.bytes - start_bytes) / elapsed / 1e6,
            "accepted": sent * SPANS_PER_REQUEST, "delivered": spans, "rss_mb": peak / 1e6}


def run(quick: bool = False) -> list[Row]:
    sys.path.insert(0, str(ROOT))
    from tests.integration.conftest import Rotel, SidecarProc, free_port

    seconds = 5.0 if quick else 15.0
    tmp = Path(tempfile.mkdtemp())
    payload, raw_len = _payload(tmp)
    sink = _sink()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
    sc = SidecarProc(tmp / "spool", sink_url, "--self-metrics-interval", "0",
                     port=free_port()).start()
    assert sc.proc is not None
    ours = _load(sc.url, payload, seconds, sink, sc.proc.pid)
    sc.terminate()
    rotel = Rotel(tmp, metrics=f"{sink_url}/v1/metrics", traces=f"{sink_url}/v1/traces",
                  logs=f"{sink_url}/v1/logs")
    theirs = _load(rotel.url, payload, seconds, sink, rotel.proc.pid)
    rotel.stop()
    sink.shutdown()
    out = Path(ROOT) / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    with open(out / "sidecar-raw.json", "w") as f:
        json.dump({"sidecar": ours, "rotel": theirs, "request_bytes": raw_len}, f, indent=2)
    ratio = ours["spans_s"] / max(theirs["spans_s"], 1e-9)
    return [
        Row("sidecar", "forwarding rate, durable spool (fsync=always) vs rotel (in memory)",
            "routerscope sidecar", ours["spans_s"], "rotel", theirs["spans_s"], "spans/s", ratio,
            claim=">= 50,000 spans/s and >= 0.5x rotel",
            verdict="holds" if ours["spans_s"] >= 50_000 and ratio >= 0.5 else "does not hold"),
        Row("sidecar", "forwarding rate in MB/s of OTLP protobuf", "routerscope sidecar",
            ours["mb_s"], "rotel", theirs["mb_s"], "MB/s", ours["mb_s"] / max(theirs["mb_s"], 1e-9)),
        Row("sidecar", "peak RSS under that load", "routerscope sidecar", ours["rss_mb"], "rotel",
            theirs["rss_mb"], "MB", theirs["rss_mb"] / max(ours["rss_mb"], 1e-9),
            claim="sidecar under 100 MB",
            verdict="holds" if ours["rss_mb"] < 100 else "does not hold"),
    ]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    for r in run(quick=True):
        print(r)
