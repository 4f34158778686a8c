"""Fixtures for the sidecar's own tests: the integration fixtures, a rejecting upstream, a tmpfs."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from routerscope.testing import read_trace_request
from tests.integration.conftest import sidecar_factory  # noqa: F401 - a fixture, re-exported

__all__ = ["RejectingUpstream", "peak_rss_while", "raw_http"]


def peak_rss_while(proc: Any, work: Callable[[], object], clients: int = 8) -> int:
    """Run ``work`` on ``clients`` threads at once; the highest RSS of ``proc`` seen meanwhile."""
    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    peak = int(proc.memory_info().rss)
    while any(t.is_alive() for t in threads):
        peak = max(peak, int(proc.memory_info().rss))
        threads[0].join(0.01)
    return peak


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
        req, _ = read_trace_request(self)
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
