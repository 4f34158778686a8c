"""The sidecar process: OTLP/HTTP (aiohttp) and OTLP/gRPC receivers, spool, shipper, signals.

HTTP receiver rules:

* ``POST /v1/traces|metrics|logs``, ``application/x-protobuf`` or
  ``application/json`` (else 415), optional ``Content-Encoding: gzip`` (exactly
  one gzip member); other methods 405 with ``Allow``.
* The bearer token (when set) is checked before the body is read (401); a
  declared ``Content-Length`` over ``--max-body-mb`` is refused before the body
  is read (413), and a chunked body is cut off at the limit (413). A malformed
  ``Content-Length`` is a 400 (aiohttp's parser), and so is a body shorter than
  declared (the client closed its side early).
* The body is fully decompressed, parsed and written to the spool **before** the
  200 (see :mod:`routerscope.sidecar.ingest`); the answer is the OTLP response
  message in the request's content type. A malformed body is a 400 with a
  message, a full spool or a failed write a 503 with ``Retry-After``.
* Connections: at most ``--max-connections`` at once (more get a 503 and are
  closed); a connection idle for ``--idle-timeout`` seconds, or whose headers
  are not complete by then, is closed; a body not read within
  ``--body-timeout`` seconds is a 408.
* ``GET /healthz`` (alive), ``/readyz`` (503 while the spool is full, writes
  fail or the sidecar stops), ``/status`` (counters, JSON: what
  ``routerscope sidecar --status`` prints).

The gRPC receiver (:mod:`routerscope.sidecar.grpc_server`) shares the spool,
the limits and the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from routerscope.core import signals as sig
from routerscope.otlp_json import SIGNALS, response_class
from routerscope.sidecar import defaults
from routerscope.sidecar.ingest import BodyRejected, InflateBudget, validate
from routerscope.sidecar.shipper import Shipper, redact_url
from routerscope.sidecar.spool import Spool, SpoolFull

__all__ = ["Sidecar", "SidecarConfig", "default_spool_dir", "is_loopback"]

_log = logging.getLogger("routerscope.sidecar")

#: bytes of request bodies held in memory at once, over all connections (at least one body)
INFLIGHT_BODY_BYTES: Final = 32 * 1024 * 1024
#: decompressed bytes held at once, over all requests (at least one body of --max-body-mb)
INFLATE_BYTES: Final = 64 * 1024 * 1024
#: threads that validate and spool bodies (they also wait on the shared fsync)
INGEST_THREADS: Final = 8
#: how long a thread may hold the GIL while another waits (Python's default is 5 ms): the
#: receiver's event loop gets it back quickly from the shipper and ingest threads, so a
#: request does not wait milliseconds for the GIL (set by :meth:`Sidecar.run`, the daemon)
SWITCH_INTERVAL_S: Final = 0.001
_GRPC_CODE: Final = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 408: 4, 411: 3, 413: 8, 415: 3,
                     429: 8, 503: 14}


def default_spool_dir() -> Path:
    """``$XDG_STATE_HOME/routerscope/spool`` (``~/.local/state/routerscope/spool``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "routerscope" / "spool"


def split_host_port(addr: str, what: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{what} must be HOST:PORT, got {addr!r}")
    return host.strip("[]"), int(port)


def _addresses(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The IP addresses ``host`` stands for (an address, or a name resolved); empty if none."""
    with contextlib.suppress(ValueError):  # not an address literal: a name to resolve
        return {ipaddress.ip_address(host)}
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return set()
    out: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for info in infos:
        with contextlib.suppress(ValueError):  # a scoped IPv6 literal: not loopback
            out.add(ipaddress.ip_address(str(info[4][0])))
    return out


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names (parsed, or resolved) is a loopback address."""
    addrs = _addresses(host)
    return bool(addrs) and all(a.is_loopback for a in addrs)


@dataclass
class SidecarConfig:
    upstream: str
    listen: str = defaults.LISTEN
    spool_dir: Path | None = None
    max_spool_mb: float = defaults.MAX_SPOOL_MB
    on_full: str = defaults.ON_FULL
    fsync: str = defaults.FSYNC
    max_body_mb: float = defaults.MAX_BODY_MB
    token: str | None = None
    send_timeout: float = defaults.SEND_TIMEOUT
    self_metrics_interval: float = defaults.SELF_METRICS_INTERVAL
    upstream_headers: dict[str, str] | None = None
    grpc_listen: str | None = None  # None: no gRPC receiver (the CLI defaults to GRPC_LISTEN)
    grpc_required: bool = True  # False: a busy default gRPC port is a warning, not an error
    idle_timeout: float = defaults.IDLE_TIMEOUT
    body_timeout: float = defaults.BODY_TIMEOUT
    max_connections: int = defaults.MAX_CONNECTIONS
    dead_letter_mb: float = defaults.DEAD_LETTER_MB

    def host_port(self) -> tuple[str, int]:
        return split_host_port(self.listen, "--listen")

    def validate(self) -> None:
        """Refuse, with a message that says how to fix it, a configuration that cannot work."""
        listens = [("--listen", self.listen)]
        if self.grpc_listen:
            listens.append(("--grpc-listen", self.grpc_listen))
        for opt, addr in listens:
            host, _ = split_host_port(addr, opt)
            if not is_loopback(host) and not self.token:
                raise ValueError(f"{opt} {addr} is not a loopback address: set a token "
                                 f"(--token-file or ${defaults.TOKEN_ENV}; clients then send "
                                 "'Authorization: Bearer TOKEN')")
        if self.max_body_mb <= 0 or self.max_spool_mb <= 0:
            raise ValueError("--max-body-mb and --max-spool-mb must be > 0")
        if self.idle_timeout <= 0 or self.body_timeout <= 0 or self.max_connections < 1:
            raise ValueError("--idle-timeout, --body-timeout and --max-connections must be > 0")
        self._refuse_self_upstream(listens)

    def _refuse_self_upstream(self, listens: list[tuple[str, str]]) -> None:
        parts = urlsplit(self.upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return
        try:
            up_port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"--upstream has a bad port: {redact_url(self.upstream)}") from None
        up_addrs = _addresses(parts.hostname)
        for opt, addr in listens:
            host, port = split_host_port(addr, opt)
            if port != up_port or port == 0:
                continue
            mine = _addresses(host)
            wildcard = any(a.is_unspecified for a in mine)
            if (mine & up_addrs) or (wildcard and any(a.is_loopback or a.is_unspecified
                                                      for a in up_addrs)):
                raise ValueError(f"--upstream {redact_url(self.upstream)} is this sidecar's own "
                                 f"{opt} {addr}: it would ship to itself forever. Pass the "
                                 "collector's address (e.g. http://collector:4318)")


def _allow_files(need: int) -> None:
    """Raise the soft open-files limit towards ``need`` (up to the hard limit) for the sockets."""
    try:
        import resource
    except ImportError:  # not POSIX: the platform's limit applies
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        target = soft
        _log.debug("sidecar: cannot raise the open-files limit: %s", exc)
    if target < need:
        _log.warning("sidecar: the open-files limit (%d) is below --max-connections + 256; "
                     "raise it (ulimit -n) or lower --max-connections", target)


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


class _Refuse(asyncio.Protocol):
    """A connection over the cap: one 503 and close."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                        b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        transport.close()


def _counting_server(handler: Any, **kwargs: Any) -> Any:
    """aiohttp's low-level server, with two changes:

    * it counts its connections from the moment they are accepted (``connections``
      only lists them once their protocol has started), for the connection cap;
    * a client that half-closes (FIN) in the middle of a body gets an answer: the
      body ends there, the handler sees it short of its ``Content-Length`` and
      answers 400 (aiohttp alone would close the connection without a word).
    """
    from aiohttp import web
    from aiohttp.web_protocol import RequestHandler

    class _Handler(RequestHandler):
        # asyncio's protocol contract: True keeps the half-closed transport open for the answer
        def eof_received(self) -> bool:  # type: ignore[override]
            waiter = getattr(self, "_waiter", None)
            if waiter is not None and not waiter.done() and not getattr(self, "_messages", ()):
                return False  # idle between requests: close, as aiohttp does
            if not self._end_bodies():
                # the request's task is created but has not started yet: after its first step
                self._loop.call_soon(self._end_bodies)
            self.close()  # after this answer: the client sends nothing more
            return True

        def _end_bodies(self) -> bool:
            """End every body still being received here; False when none was found."""
            request = getattr(self, "_current_request", None)
            payloads = [p for _, p in getattr(self, "_messages", ())]
            if request is not None:
                payloads.append(request.content)
            for payload in payloads:
                if not payload.is_eof():
                    payload.feed_eof()  # the body ends here, short of its Content-Length
            return bool(payloads)

    class _Server(web.Server):
        open = 0

        def __call__(self) -> RequestHandler:
            return _Handler(self, loop=self._loop, **self._kwargs)

        def connection_lost(self, handler: Any, exc: BaseException | None = None) -> None:
            self.open -= 1
            super().connection_lost(handler, exc)

    return _Server(handler, **kwargs)


class _HttpReceiver:
    """OTLP/HTTP on aiohttp's low-level server, run on its own event-loop thread."""

    def __init__(self, sc: Sidecar, sock: socket.socket) -> None:
        self.sc = sc
        self.sock = sock
        self.loop = asyncio.new_event_loop()
        self.pool = ThreadPoolExecutor(INGEST_THREADS, thread_name_prefix="routerscope-ingest")
        self.budget = max(sc.max_body, INFLIGHT_BODY_BYTES)
        self.inflight = 0  # body bytes held; only touched on the loop thread
        self.server = _counting_server(self.handle, keepalive_timeout=sc.config.idle_timeout,
                                       access_log=None, auto_decompress=False,
                                       lingering_time=0, loop=self.loop)
        self._aserver: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    def _protocol(self) -> asyncio.Protocol:
        if self.server.open >= self.sc.config.max_connections:
            self.sc.counters.refuse("connections")
            return _Refuse()
        self.server.open += 1
        return self.server()  # type: ignore[no-any-return]

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self._aserver = self.loop.run_until_complete(
                self.loop.create_server(self._protocol, sock=self.sock))
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=serve, name="routerscope-receiver", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        async def shut() -> None:
            if self._aserver is not None:
                self._aserver.close()
            await self.server.shutdown(2.0)

        if self._thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(shut(), self.loop).result(5)
        except Exception:  # noqa: BLE001 - stopping must finish whatever the loop does
            _log.debug("sidecar: HTTP shutdown did not finish cleanly", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()
        self.pool.shutdown(wait=True)

    # -- requests ----------------------------------------------------------------------

    def _reply(self, status: int, body: bytes = b"", ctype: str = "text/plain",
               headers: dict[str, str] | None = None, close: bool = False) -> Any:
        from aiohttp import web

        resp = web.Response(status=status, body=body, headers=headers)
        resp.content_type = ctype
        if ctype.startswith("text/"):
            resp.charset = "utf-8"
        if close:
            resp.force_close()
        return resp

    def _error(self, status: int, message: str, is_json: bool, *, close: bool = False,
               headers: dict[str, str] | None = None, reason: str | None = None) -> Any:
        """An error as google.rpc.Status, in the request's content type."""
        self.sc.counters.refuse(reason or str(status))
        code = _GRPC_CODE.get(status, 2)
        if is_json:
            return self._reply(status, json.dumps({"code": code, "message": message}).encode(),
                               "application/json", headers, close)
        from google.rpc.status_pb2 import Status

        return self._reply(status, Status(code=code, message=message).SerializeToString(),
                           "application/x-protobuf", headers, close)

    async def handle(self, request: Any) -> Any:
        path = request.path
        if path in ("/healthz", "/readyz", "/status"):
            if request.method not in ("GET", "HEAD"):
                return self._reply(405, b"use GET\n", headers={"Allow": "GET, HEAD"})
            return self._get(path, request)
        signal_name = path.rstrip("/")[4:] if path.startswith("/v1/") else ""
        if signal_name not in SIGNALS:
            return self._reply(404, b"unknown path: use POST /v1/traces, /v1/metrics or "
                                    b"/v1/logs\n", close=request.method == "POST")
        if request.method != "POST":
            return self._reply(405, b"use POST\n", headers={"Allow": "POST"})
        return await self._post(request, signal_name)

    def _get(self, path: str, request: Any) -> Any:
        sc = self.sc
        if path == "/healthz":
            return self._reply(200, b"ok\n")
        if path == "/readyz":
            why = sc.not_ready()
            return self._reply(503 if why else 200, f"not ready: {why}\n".encode() if why
                               else b"ready\n")
        if not sc.authorized(request.headers.get("Authorization")):
            return self._reply(401, b"missing or wrong bearer token\n")
        return self._reply(200, json.dumps(sc.status(), indent=2).encode(), "application/json")

    async def _post(self, request: Any, signal_name: str) -> Any:
        sc = self.sc
        ctype = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        is_json = ctype == "application/json"
        if not sc.authorized(request.headers.get("Authorization")):
            return self._error(401, "missing or wrong bearer token", is_json, close=True)
        if ctype not in ("application/x-protobuf", "application/json"):
            return self._error(415, f"unsupported Content-Type {ctype!r}: send "
                                    "application/x-protobuf or application/json", is_json,
                               close=True)
        encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("gzip", "identity"):
            return self._error(415, f"unsupported Content-Encoding {encoding!r}: use gzip or "
                                    "none", is_json, close=True)
        if sc.stopping.is_set():
            return self._error(503, "sidecar is shutting down", is_json, close=True,
                               headers={"Retry-After": "1"})
        limit = sc.max_body
        length = request.content_length
        if length is not None and length > limit:  # refused before reading a byte of it
            return self._error(413, f"body of {length} bytes is over the {limit}-byte limit "
                                    "(--max-body-mb)", is_json, close=True)
        reserve = length if length is not None else 0
        if self.inflight + reserve > self.budget:
            return self._error(503, "too many bodies in flight; retry later", is_json,
                               close=True, headers={"Retry-After": "1"}, reason="busy")
        self.inflight += reserve
        try:
            return await self._read_and_store(request, signal_name, is_json, encoding == "gzip",
                                              length)
        finally:
            self.inflight -= reserve

    async def _read_and_store(self, request: Any, signal_name: str, is_json: bool, gz: bool,
                              length: int | None) -> Any:
        sc = self.sc
        limit = sc.max_body
        chunks: list[bytes] = []
        size = 0
        extra = 0  # bytes of a chunked body reserved as they arrive
        try:
            async with asyncio.timeout(sc.config.body_timeout):
                while True:
                    chunk = await request.content.readany()
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        return self._error(413, f"body is over the {limit}-byte limit "
                                                "(--max-body-mb)", is_json, close=True)
                    if length is None:
                        if self.inflight + len(chunk) > self.budget:
                            return self._error(503, "too many bodies in flight; retry later",
                                               is_json, close=True,
                                               headers={"Retry-After": "1"}, reason="busy")
                        self.inflight += len(chunk)
                        extra += len(chunk)
                    chunks.append(chunk)
        except TimeoutError:
            return self._error(408, f"body not received within {sc.config.body_timeout} s",
                               is_json, close=True)
        except Exception as exc:  # noqa: BLE001 - aiohttp's payload errors have no common base
            # the client went away or sent less than its Content-Length: nothing is acknowledged
            sc.counters.refuse("incomplete_body")
            _log.debug("sidecar: incomplete request body (%s)", type(exc).__name__)
            return self._error(400, "request body incomplete (shorter than Content-Length)",
                               is_json, close=True, reason="incomplete_body")
        finally:
            self.inflight -= extra
        if length is not None and size != length:
            return self._error(400, f"body of {size} bytes, but Content-Length says {length}",
                               is_json, close=True)
        raw = b"".join(chunks)
        del chunks
        if not raw:
            return self._ok(signal_name, is_json)
        loop = asyncio.get_running_loop()
        status, message = await loop.run_in_executor(self.pool, sc.ingest, signal_name, raw,
                                                     is_json, gz)
        if status == 200:
            return self._ok(signal_name, is_json)
        headers = {"Retry-After": str(defaults.RETRY_AFTER_S)} if status == 503 else None
        return self._error(status, message, is_json, headers=headers)

    def _ok(self, signal_name: str, is_json: bool) -> Any:
        if is_json:
            return self._reply(200, b"{}", "application/json")
        return self._reply(200, response_class(signal_name)().SerializeToString(),
                           "application/x-protobuf")


class Sidecar:
    """Receivers + spool + shipper in one process. :meth:`run` blocks until a signal."""

    def __init__(self, config: SidecarConfig) -> None:
        config.validate()
        self.config = config
        self.max_body = int(config.max_body_mb * 1024 * 1024)
        self.inflate_budget = InflateBudget(max(self.max_body, INFLATE_BYTES))
        max_bytes = int(config.max_spool_mb * 1024 * 1024)
        self.spool = Spool(config.spool_dir or default_spool_dir(), max_bytes=max_bytes,
                           on_full=config.on_full, fsync=config.fsync,
                           segment_bytes=min(defaults.SEGMENT_BYTES,
                                             max(1024 * 1024, max_bytes // 8)),
                           dead_letter_bytes=int(config.dead_letter_mb * 1024 * 1024))
        self.counters = _Counters()
        self.stopping = threading.Event()
        self.started = time.time()
        self._hist: Any = None
        self._warned: set[str] = set()
        self.shipper = Shipper(self.spool, config.upstream, send_timeout=config.send_timeout,
                               headers=config.upstream_headers, on_send=self._record_send,
                               max_body=self.max_body)
        _allow_files(config.max_connections + 256)
        host, port = config.host_port()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._sock = sock
        self.http = _HttpReceiver(self, sock)
        self.grpc: Any = None
        self.grpc_address: str | None = None
        if config.grpc_listen:
            from routerscope.sidecar.grpc_server import GrpcReceiver

            try:
                self.grpc = GrpcReceiver(self, config.grpc_listen)
                self.grpc_address = self.grpc.address
            except OSError as exc:
                if config.grpc_required:
                    raise
                _log.warning("gRPC receiver off: %s (pass --grpc-listen HOST:PORT or off)", exc)
        self._meter_provider: Any = None

    @property
    def address(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"{host!s}:{port}"

    # -- what both receivers share ---------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        """``Authorization: Bearer <token>`` (scheme in any case), compared in constant time."""
        token = self.config.token
        if not token:
            return True
        import hmac

        scheme, _, value = (header or "").strip().partition(" ")
        ok = hmac.compare_digest(value.strip().encode(), token.encode())
        return scheme.lower() == "bearer" and ok

    def ingest(self, signal_name: str, raw: bytes, is_json: bool, gz: bool) -> tuple[int, str]:
        """Validate and spool one body (on an ingest thread): (HTTP status, message)."""
        try:
            stored, flags = validate(signal_name, raw, json=is_json, gzip=gz,
                                     limit=self.max_body, budget=self.inflate_budget)
        except BodyRejected as exc:
            return exc.status, exc.message
        return self.store(signal_name, stored, len(raw), flags)

    def store(self, signal_name: str, stored: bytes, received: int,
              flags: int = 0) -> tuple[int, str]:
        """Append a validated body to the spool: (200, "") or (503, why)."""
        if self.stopping.is_set():
            return 503, "sidecar is shutting down"
        try:
            self.spool.append(signal_name, stored, flags)
        except SpoolFull as exc:
            return 503, f"{exc}; retry later"
        except OSError as exc:
            self._warn_once(f"write:{exc.errno}", f"spool write failed ({exc}); answering 503 "
                                                  "until writes succeed again")
            return 503, "spool write failed; retry later"
        self.counters.add_received(signal_name, received)
        return 200, ""

    def not_ready(self) -> str:
        """Why the sidecar should not get traffic now ('' when ready)."""
        if self.stopping.is_set():
            return "stopping"
        if self.spool.is_full():
            return "spool full"
        if not self.spool.is_writable():
            return f"spool writes fail ({self.spool.last_write_error})"
        return ""

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            _log.warning(message)

    # -- self-telemetry: OTel metrics written into our own spool -----------------------

    def _record_send(self, seconds: float, outcome: str) -> None:
        if self._hist is not None:
            self._hist.record(seconds, {sig.ATTR_SIDECAR_OUTCOME: outcome})

    def _start_self_metrics(self) -> None:
        from opentelemetry.metrics import CallbackOptions, Observation
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource

        from routerscope.sidecar.selfmetrics import SpoolMetricExporter

        reader = PeriodicExportingMetricReader(
            SpoolMetricExporter(self.spool),
            export_interval_millis=self.config.self_metrics_interval * 1000)
        resource = Resource.create({"service.name": "routerscope-sidecar",
                                    "service.instance.id": f"{socket.gethostname()}:"
                                                           f"{self.address}"})
        mp = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
        meter = mp.get_meter("routerscope.sidecar")

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
        self._hist = meter.create_histogram(m.name, unit=m.unit, description=m.description,
                                            explicit_bucket_boundaries_advisory=m.buckets)
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
        from routerscope.report.quantiles import nearest_rank

        depth, size = self.spool.depth()
        sends = self.shipper.stats.send_seconds[-1000:]

        def q(p: float) -> float | None:
            return round(nearest_rank(sends, p), 6) if sends else None

        return {
            "listen": self.address, "grpc_listen": self.grpc_address,
            "upstream": redact_url(self.config.upstream),
            "spool": str(self.spool.dir), "uptime_s": round(time.time() - self.started, 1),
            "ready": self.not_ready() or "ready",
            "queue": {"requests": depth, "bytes": size,
                      "max_bytes": self.spool.max_bytes},
            "received": dict(self.counters.received),
            "received_bytes": self.counters.received_bytes,
            "shipped": dict(self.shipper.stats.shipped),
            "retries": self.shipper.stats.retries,
            "dropped": self._drops(),
            "dead_letter": {"records": dict(self.spool.dead_lettered),
                            "not_kept": self.spool.dead_letter_overflow,
                            "file": str(self.spool.dir / "dead-letter.jsonl")},
            "spool_write_errors": self.spool.write_errors,
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
        self.http.start()
        if self.grpc is not None:
            self.grpc.start()
        return self

    def stop(self) -> None:
        """Stop accepting, finish the in-flight send, keep the rest on disk. Never raises."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        steps: list[tuple[str, Any]] = [("http", self.http.stop)]
        if self.grpc is not None:
            steps.append(("grpc", self.grpc.stop))
        if self._meter_provider is not None:
            steps.append(("self-metrics",
                          lambda: self._meter_provider.shutdown(timeout_millis=2000)))
        steps += [("shipper", self.shipper.stop), ("spool", self.spool.close)]
        for name, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - a clean stop goes on step by step
                _log.warning("sidecar: stopping the %s failed: %s", name, exc)
        self._sock.close()

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; exit code 0 after a stop."""
        done = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            done.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.start()
        grpc = f", OTLP/gRPC on {self.grpc_address}" if self.grpc_address else ""
        _log.info("routerscope sidecar: OTLP/HTTP on %s%s, shipping to %s, spool %s",
                  self.address, grpc, redact_url(self.config.upstream), self.spool.dir)
        while not done.wait(1.0):
            pass
        self.stop()
        depth, size = self.spool.depth()
        _log.info("routerscope sidecar stopped; %d requests (%d bytes) kept in %s", depth, size,
                  self.spool.dir)
        return 0
