"""Test helpers: a real OTLP/HTTP receiver on 127.0.0.1 that decodes what it gets.

``OTLPReceiver`` accepts ``/v1/traces``, ``/v1/metrics`` and ``/v1/logs`` in
protobuf or JSON (gzip too), decodes them with opentelemetry-proto and keeps
the requests, so tests assert on names, units and attributes of what really
crossed the wire. Answers can be scripted (status, ``Retry-After``, a hang)
for fault tests of exporters and the sidecar.
"""

from __future__ import annotations

import collections
import gzip
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from routerscope.otlp_json import SIGNALS, OTLPDecodeError, decode, response_class
from routerscope.testing._loopback import LoopbackServer

__all__ = ["Answer", "OTLPReceiver", "attrs_of", "read_trace_request"]


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    body: bytes | None = None


def attrs_of(kvs: Any) -> dict[str, Any]:
    """OTLP KeyValue list -> plain dict."""
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        kind = v.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [getattr(x, x.WhichOneof("value")) for x in v.array_value.values]
        elif kind is not None:
            out[kv.key] = getattr(v, kind)
    return out


def read_trace_request(handler: BaseHTTPRequestHandler) -> tuple[Any, bytes]:
    """Read an OTLP/HTTP trace request's body (gzip or not): (ExportTraceServiceRequest, raw bytes).

    For the small scripted upstreams of tests and benchmarks that answer themselves.
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    if handler.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    req = ExportTraceServiceRequest()
    req.ParseFromString(raw)
    return req, raw


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        rx: OTLPReceiver = self.server.receiver
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        answer = rx._next_answer()
        if answer is not None and answer.hang:
            with rx._lock:
                rx.hung += 1
                rx._lock.notify_all()
            rx._halt.wait()
            self.close_connection = True
            return
        signal = self.path.rstrip("/").rsplit("/", 1)[-1]
        rx.attempts += 1
        if answer is not None and answer.status != 200:
            body = answer.body or b""
            self.send_response(answer.status)
            for k, v in answer.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if signal not in SIGNALS:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        ctype = self.headers.get("Content-Type", "application/x-protobuf")
        try:
            msg = decode(signal, raw, ctype)
        except OTLPDecodeError as exc:
            rx.errors.append(str(exc))
            msg_b = str(exc).encode()
            self.send_response(400)
            self.send_header("Content-Length", str(len(msg_b)))
            self.end_headers()
            self.wfile.write(msg_b)
            return
        rx._store(signal, msg, raw, dict(self.headers.items()))
        out = (answer.body if answer is not None and answer.body is not None
               else response_class(signal)().SerializeToString())
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: OTLPReceiver


class OTLPReceiver(LoopbackServer):
    """An OTLP/HTTP receiver on 127.0.0.1 (port chosen by the OS unless given)."""

    thread_name = "otlp-receiver"

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.receiver = self
        self._lock = threading.Condition()
        self._answers: collections.deque[Answer] = collections.deque()
        self.requests: dict[str, list[Any]] = {s: [] for s in SIGNALS}
        self.raw: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.errors: list[str] = []
        self.attempts = 0
        self.hung = 0  # requests held open by a hang answer

    def answer(self, *answers: Answer) -> None:
        """The next requests get these answers (then normal 200s)."""
        with self._lock:
            self._answers.extend(answers)

    def _next_answer(self) -> Answer | None:
        with self._lock:
            return self._answers.popleft() if self._answers else None

    def _store(self, signal: str, msg: Any, raw: bytes, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests[signal].append(msg)
            self.raw.append(raw)
            self.headers.append(headers)
            self._lock.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
        """Wait until ``predicate()`` holds (re-checked on every arrival) or time out."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.2))
        return True

    # -- views ---------------------------------------------------------------------------

    def spans(self) -> Iterator[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) of every span received."""
        for req in list(self.requests["traces"]):
            for rs in req.resource_spans:
                res = attrs_of(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        yield res, span

    def metrics(self) -> Iterator[tuple[dict[str, Any], Any]]:
        for req in list(self.requests["metrics"]):
            for rm in req.resource_metrics:
                res = attrs_of(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        yield res, m

    def logs(self) -> Iterator[tuple[dict[str, Any], Any]]:
        for req in list(self.requests["logs"]):
            for rl in req.resource_logs:
                res = attrs_of(rl.resource.attributes)
                for sl in rl.scope_logs:
                    for rec in sl.log_records:
                        yield res, rec

    def metric_names(self) -> set[str]:
        return {m.name for _, m in self.metrics()}

    def data_points(self, name: str) -> list[Any]:
        out: list[Any] = []
        for _, m in self.metrics():
            if m.name == name:
                kind = m.WhichOneof("data")
                out.extend(getattr(m, kind).data_points)
        return out

    def span_count(self) -> int:
        return sum(1 for _ in self.spans())
