"""The sidecar process: OTLP/HTTP receiver, spool, shipper, self-telemetry, signals.

Receiver rules:

* ``POST /v1/traces|metrics|logs``, ``application/x-protobuf`` or
  ``application/json`` (else 415), optional ``Content-Encoding: gzip``.
* The body is validated (decoded) and spooled **before** the 200; the answer
  is the OTLP response message in the request's content type.
* Malformed body 400 with a message; decompressed size over ``--max-body-mb``
  413 (gzip bombs are cut off while inflating); empty body 200; spool full 503
  with ``Retry-After`` (or the oldest records are dropped, per ``--on-full``).
* ``GET /healthz`` (alive), ``/readyz`` (spool writable and not full),
  ``/status`` (counters, JSON: what ``routerscope sidecar --status`` prints).
* A ``--token`` requires ``Authorization: Bearer <token>`` (401 otherwise); it is
  mandatory when ``--listen`` is not a loopback address.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from routerscope.core import signals as sig
from routerscope.otlp_json import SIGNALS, OTLPDecodeError, decode, response_class
from routerscope.sidecar.shipper import Shipper
from routerscope.sidecar.spool import FLAG_GZIP, FLAG_JSON, Spool, SpoolFull

__all__ = ["Sidecar", "SidecarConfig", "default_spool_dir"]

_log = logging.getLogger("routerscope.sidecar")

DEFAULT_LISTEN: Final = "127.0.0.1:4318"
DEFAULT_MAX_BODY_MB: Final = 64
DEFAULT_MAX_SPOOL_MB: Final = 1024
DEFAULT_SELF_INTERVAL: Final = 10.0
RETRY_AFTER_FULL: Final = "5"


def default_spool_dir() -> Path:
    """``$XDG_STATE_HOME/routerscope/spool`` (``~/.local/state/routerscope/spool``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "routerscope" / "spool"


@dataclass
class SidecarConfig:
    upstream: str
    listen: str = DEFAULT_LISTEN
    spool_dir: Path | None = None
    max_spool_mb: float = DEFAULT_MAX_SPOOL_MB
    on_full: str = "reject"
    fsync: str = "always"
    max_body_mb: float = DEFAULT_MAX_BODY_MB
    token: str | None = None
    send_timeout: float = 10.0
    self_metrics_interval: float = DEFAULT_SELF_INTERVAL
    upstream_headers: dict[str, str] | None = None

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--listen must be HOST:PORT, got {self.listen!r}")
        return host.strip("[]"), int(port)

    def validate(self) -> None:
        host, _ = self.host_port()
        if not _is_loopback(host) and not self.token:
            raise ValueError(f"--listen {self.listen} is not a loopback address: pass "
                             "--token (clients then send 'Authorization: Bearer TOKEN')")
        if self.max_body_mb <= 0 or self.max_spool_mb <= 0:
            raise ValueError("--max-body-mb and --max-spool-mb must be > 0")


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "::1") or host.startswith("127."):
        return True
    try:
        import ipaddress

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: dict[str, int] = dict.fromkeys(SIGNALS, 0)
        self.received_bytes = 0
        self.refused: dict[str, int] = {}

    def add_received(self, signal_name: str, n: int) -> None:
        with self.lock:
            self.received[signal_name] += 1
            self.received_bytes += n

    def refuse(self, reason: str) -> None:
        with self.lock:
            self.refused[reason] = self.refused.get(reason, 0) + 1


class _BodyTooLarge(Exception):
    pass


def _inflate(data: bytes, limit: int) -> bytes:
    """gunzip ``data`` without ever holding more than ``limit`` + 1 bytes."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(data, limit + 1)
    if len(out) > limit or d.unconsumed_tail:
        raise _BodyTooLarge
    out += d.flush()
    if len(out) > limit:
        raise _BodyTooLarge
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", ctype: str = "text/plain; charset=utf-8",
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, json_ctype: bool,
               headers: dict[str, str] | None = None) -> None:
        """An error as google.rpc.Status, in the request's content type."""
        self.server.sidecar.counters.refuse(str(status))
        if json_ctype:
            body = json.dumps({"code": _grpc_code(status), "message": message}).encode()
            self._reply(status, body, "application/json", headers)
            return
        try:
            from google.rpc.status_pb2 import Status

            body = Status(code=_grpc_code(status), message=message).SerializeToString()
            self._reply(status, body, "application/x-protobuf", headers)
        except ImportError:
            self._reply(status, message.encode(), headers=headers)

    def _authorized(self) -> bool:
        token = self.server.sidecar.config.token
        if not token:
            return True
        import hmac

        got = self.headers.get("Authorization", "")
        return hmac.compare_digest(got.encode(), f"Bearer {token}".encode())

    def do_GET(self) -> None:
        sc = self.server.sidecar
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._reply(200, b"ok\n")
        elif path == "/readyz":
            ready = not sc.spool.is_full() and not sc.stopping.is_set()
            self._reply(200 if ready else 503, b"ready\n" if ready else b"not ready\n")
        elif path == "/status":
            if not self._authorized():
                self._reply(401, b"missing or wrong bearer token\n")
                return
            self._reply(200, json.dumps(sc.status(), indent=2).encode(), "application/json")
        elif path.startswith("/v1/"):
            self._reply(405, b"use POST\n", headers={"Allow": "POST"})
        else:
            self._reply(404, b"not found\n")

    def do_POST(self) -> None:
        sc = self.server.sidecar
        path = self.path.split("?", 1)[0].rstrip("/")
        signal_name = path.rsplit("/", 1)[-1] if path.startswith("/v1/") else ""
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        is_json = ctype == "application/json"
        length_h = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length_h is None:
            self.close_connection = True
            self._error(411, "Content-Length is required", is_json)
            return
        try:
            length = int(length_h)
        except ValueError:
            self.close_connection = True
            self._error(400, "bad Content-Length", is_json)
            return
        limit = sc.max_body
        if length > limit:  # do not even read it
            self.close_connection = True
            self._error(413, f"body of {length} bytes is over the {limit}-byte limit", is_json)
            return
        raw = self.rfile.read(length) if length else b""
        if signal_name not in SIGNALS:
            self._error(404, f"unknown path {self.path!r}: use /v1/traces, /v1/metrics or "
                             "/v1/logs", is_json)
            return
        if not self._authorized():
            self._error(401, "missing or wrong bearer token", is_json)
            return
        if ctype not in ("application/x-protobuf", "application/json"):
            self._error(415, f"unsupported Content-Type {ctype!r}: send application/x-protobuf "
                             "or application/json", is_json)
            return
        if sc.stopping.is_set():
            self._error(503, "sidecar is shutting down", is_json, {"Retry-After": "1"})
            return
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        gz = encoding == "gzip"
        if encoding not in ("gzip", "identity"):
            self._error(415, f"unsupported Content-Encoding {encoding!r}: use gzip or none",
                        is_json)
            return
        if not raw:
            self._ok(signal_name, is_json)
            return
        try:
            body = _inflate(raw, limit) if gz else raw
        except _BodyTooLarge:
            self._error(413, f"decompressed body is over the {limit}-byte limit", is_json)
            return
        except (zlib.error, EOFError):
            self._error(400, "Content-Encoding: gzip, but the body is not valid gzip", is_json)
            return
        if not body:
            self._ok(signal_name, is_json)
            return
        try:
            msg = decode(signal_name, body, ctype)
        except OTLPDecodeError as exc:
            self._error(400, str(exc), is_json)
            return
        if is_json:
            # forward what we understood, in the canonical encoding: protobuf
            stored, flags = msg.SerializeToString(), 0
        else:
            stored, flags = (raw, FLAG_GZIP) if gz else (body, 0)
        try:
            sc.spool.append(signal_name, stored, flags & ~FLAG_JSON)
        except SpoolFull as exc:
            self._error(503, f"{exc}; retry later", is_json, {"Retry-After": RETRY_AFTER_FULL})
            return
        except OSError as exc:
            _log.error("spool write failed: %s", exc)
            self._error(503, "spool write failed; retry later", is_json,
                        {"Retry-After": RETRY_AFTER_FULL})
            return
        sc.counters.add_received(signal_name, len(raw))
        self._ok(signal_name, is_json)

    def _ok(self, signal_name: str, is_json: bool) -> None:
        if is_json:
            self._reply(200, b"{}", "application/json")
        else:
            self._reply(200, response_class(signal_name)().SerializeToString(),
                        "application/x-protobuf")


def _grpc_code(status: int) -> int:
    return {400: 3, 401: 16, 403: 7, 404: 5, 411: 3, 413: 8, 415: 3, 429: 8,
            503: 14}.get(status, 2)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sidecar: Sidecar


class _Server6(_Server):
    address_family = socket.AF_INET6


class Sidecar:
    """Receiver + spool + shipper in one process. :meth:`run` blocks until a signal."""

    def __init__(self, config: SidecarConfig) -> None:
        config.validate()
        self.config = config
        self.max_body = int(config.max_body_mb * 1024 * 1024)
        self.spool = Spool(config.spool_dir or default_spool_dir(),
                           max_bytes=int(config.max_spool_mb * 1024 * 1024),
                           on_full=config.on_full, fsync=config.fsync)
        self.counters = _Counters()
        self.stopping = threading.Event()
        self.started = time.time()
        self._hist: Any = None
        self.shipper = Shipper(self.spool, config.upstream, send_timeout=config.send_timeout,
                               headers=config.upstream_headers, on_send=self._record_send)
        host, port = config.host_port()
        cls = _Server6 if ":" in host else _Server
        self.server = cls((host, port), _Handler)
        self.server.sidecar = self
        self._meter_provider: Any = None

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    # -- self-telemetry: OTel metrics written into our own spool -----------------------

    def _record_send(self, seconds: float, outcome: str) -> None:
        if self._hist is not None:
            self._hist.record(seconds, {sig.ATTR_SIDECAR_OUTCOME: outcome})

    def _start_self_metrics(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
        from opentelemetry.sdk.resources import Resource

        from routerscope.sidecar.selfmetrics import SpoolMetricExporter

        reader = PeriodicExportingMetricReader(
            SpoolMetricExporter(self.spool),
            export_interval_millis=self.config.self_metrics_interval * 1000)
        resource = Resource.create({"service.name": "routerscope-sidecar",
                                    "service.instance.id": f"{socket.gethostname()}:"
                                                           f"{self.address}"})
        mp = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False,
                           views=[View(instrument_name=sig.SIDECAR_SEND_DURATION.name,
                                       aggregation=ExplicitBucketHistogramAggregation(
                                           sig.SEND_BUCKETS))])
        meter = mp.get_meter("routerscope.sidecar")
        from opentelemetry.metrics import CallbackOptions, Observation

        def obs(fn: Any) -> Any:
            def cb(_o: CallbackOptions) -> list[Observation]:
                return [Observation(v, a) for v, a in fn()]
            return [cb]

        m = sig.SIDECAR_QUEUE_REQUESTS
        meter.create_observable_gauge(m.name, obs(lambda: [(self.spool.depth()[0], {})]),
                                      unit=m.unit, description=m.description)
        m = sig.SIDECAR_QUEUE_BYTES
        meter.create_observable_gauge(m.name, obs(lambda: [(self.spool.depth()[1], {})]),
                                      unit=m.unit, description=m.description)
        m = sig.SIDECAR_RECEIVED
        meter.create_observable_counter(m.name, obs(lambda: [
            (n, {sig.ATTR_SIDECAR_SIGNAL: s}) for s, n in self.counters.received.items()]),
            unit=m.unit, description=m.description)
        m = sig.SIDECAR_SHIPPED
        meter.create_observable_counter(m.name, obs(lambda: [
            (n, {sig.ATTR_SIDECAR_SIGNAL: s}) for s, n in self.shipper.stats.shipped.items()]),
            unit=m.unit, description=m.description)
        m = sig.SIDECAR_RETRIES
        meter.create_observable_counter(m.name, obs(lambda: [(self.shipper.stats.retries, {})]),
                                        unit=m.unit, description=m.description)
        m = sig.SIDECAR_DROPPED
        meter.create_observable_counter(m.name, obs(lambda: [
            (n, {sig.ATTR_SIDECAR_DROP_REASON: r}) for r, n in self._drops().items()]),
            unit=m.unit, description=m.description)
        m = sig.SIDECAR_SEND_DURATION
        self._hist = meter.create_histogram(m.name, unit=m.unit, description=m.description)
        self._meter_provider = mp

    def _drops(self) -> dict[str, int]:
        d = dict(self.shipper.stats.dropped)
        d["spool_full"] = self.spool.dropped_full
        d["drop_oldest"] = self.spool.dropped_oldest
        d["corrupt"] = self.spool.corrupt
        for k, v in self.counters.refused.items():
            if k not in ("503",):
                d[f"refused_{k}"] = v
        return d

    def status(self) -> dict[str, Any]:
        depth, size = self.spool.depth()
        sends = sorted(self.shipper.stats.send_seconds[-1000:])

        def q(p: float) -> float | None:
            return round(sends[min(len(sends) - 1, int(p * len(sends)))], 6) if sends else None

        return {
            "listen": self.address, "upstream": self.config.upstream,
            "spool": str(self.spool.dir), "uptime_s": round(time.time() - self.started, 1),
            "queue": {"requests": depth, "bytes": size,
                      "max_bytes": self.spool.max_bytes},
            "received": dict(self.counters.received),
            "received_bytes": self.counters.received_bytes,
            "shipped": dict(self.shipper.stats.shipped),
            "retries": self.shipper.stats.retries,
            "dropped": self._drops(),
            "rejected_items": dict(self.shipper.stats.rejected_items),
            "send_latency_s": {"p50": q(0.5), "p95": q(0.95), "p99": q(0.99)},
            "last_error": self.shipper.stats.last_error,
        }

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> Sidecar:
        """Start serving and shipping in background threads (tests and the demo use this)."""
        if self.config.self_metrics_interval > 0:
            self._start_self_metrics()
        self.shipper.start()
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                         name="routerscope-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop accepting, finish the in-flight send, keep the rest on disk."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        if self._meter_provider is not None:
            try:
                self._meter_provider.shutdown(timeout_millis=2000)
            except Exception:  # noqa: BLE001
                pass
        self.shipper.stop()
        self.spool.close()

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; exit code 0 after a clean stop."""
        done = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            done.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        _log.warning("routerscope sidecar listening on %s, shipping to %s, spool %s",
                     self.address, self.config.upstream, self.spool.dir)
        print(f"routerscope sidecar listening on {self.address}", flush=True)
        while not done.wait(1.0):
            pass
        self.stop()
        depth, size = self.spool.depth()
        print(f"routerscope sidecar stopped; {depth} requests ({size} bytes) kept in "
              f"{self.spool.dir}", flush=True)
        return 0
