"""Fixtures for the sidecar's own tests: the integration fixtures, a rejecting upstream, a tmpfs."""

from __future__ import annotations

import contextlib
import gzip
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import sidecar_factory  # noqa: F401 - a fixture, re-exported

__all__ = ["RejectingUpstream", "raw_http"]


def raw_http(port: int, data: bytes, *, shut: bool = False, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := s.recv(65536):
                out += chunk
        return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        return None  # the test reads what it needs from the upstream's attributes

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        req = ExportTraceServiceRequest()
        req.ParseFromString(raw)
        names = [sp.name for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans]
        up: RejectingUpstream = self.server.upstream
        with up.lock:
            up.attempts += 1
            bad = up.reject in names
            if not bad:
                up.names.extend(names)
        status = 400 if bad else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class RejectingUpstream:
    """An OTLP/HTTP trace receiver on loopback that answers 400 to any request holding a span
    named ``reject`` (as a collector does for data it cannot take), 200 to the rest."""

    def __init__(self, reject: str, port: int = 0) -> None:
        self.reject = reject
        self.lock = threading.Lock()
        self.names: list[str] = []
        self.attempts = 0
        self.srv = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.srv.daemon_threads = True
        self.srv.upstream = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted for this test (a real full disk), always unmounted after."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
