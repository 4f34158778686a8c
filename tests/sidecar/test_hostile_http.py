"""The sidecar's HTTP receiver against hostile input: poison bodies, bad headers, slow peers."""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
import zlib
from pathlib import Path

import psutil
import pytest
import requests

from routerscope.testing import OTLPReceiver
from tests.integration.conftest import span_request, wait_until

from .conftest import peak_rss_while, raw_http

pytestmark = pytest.mark.integration


def _names(rx: OTLPReceiver) -> list[str]:
    return [s.name for _, s in rx.spans()]


def _head(port: int, body_len: str, extra: str = "", method: str = "POST") -> bytes:
    return (f"{method} /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/x-protobuf\r\nContent-Length: {body_len}\r\n"
            f"Connection: close\r\n{extra}\r\n").encode()


def _status(resp: bytes) -> int:
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.") else 0


def test_poison_gzip_bodies_get_400_and_never_reach_the_queue(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """Trailing bytes, a second gzip member, an unfinished deflate stream: 400 each; good ones ship."""
    sc = sidecar_factory(upstream.url)
    good = span_request("poisoned")
    unfinished = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    flushed = unfinished.compress(good) + unfinished.flush(zlib.Z_SYNC_FLUSH)
    bodies = {"trailing": gzip.compress(good) + b"GARBAGE!",
              "second member": gzip.compress(good) + gzip.compress(os.urandom(64)),
              "unfinished": flushed}
    for what, body in bodies.items():
        r = sc.post("traces", body, **{"Content-Encoding": "gzip"})
        assert r.status_code == 400, what
    for i in range(5):
        assert sc.post("traces", gzip.compress(span_request(f"ok{i}")),
                       **{"Content-Encoding": "gzip"}).status_code == 200
    assert upstream.wait_for(lambda: {f"ok{i}" for i in range(5)} <= set(_names(upstream)))
    assert "poisoned" not in _names(upstream) and upstream.errors == []
    assert sc.status()["dropped"]["refused_400"] == 3


def test_malformed_content_length_and_methods(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """Negative or non-numeric Content-Length 400; PUT/DELETE 405 with Allow; deep JSON 400."""
    sc = sidecar_factory(upstream.url)
    assert _status(raw_http(sc.port, _head(sc.port, "-1") + b"x" * 100)) == 400
    assert _status(raw_http(sc.port, _head(sc.port, "abc") + b"x" * 100)) == 400
    for method in ("PUT", "DELETE", "PATCH"):
        r = requests.request(method, sc.url + "/v1/traces", data=b"", timeout=5)
        assert r.status_code == 405 and r.headers["Allow"] == "POST"
    deep = ("[" * 10_000 + "]" * 10_000).encode()
    r = sc.post("traces", b'{"resourceSpans": ' + deep + b"}", "application/json")
    assert r.status_code == 400 and "nested too deeply" in r.json()["message"]
    assert sc.healthy()


def test_short_body_is_never_acknowledged(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """A Content-Length larger than the body, then FIN: 400, and nothing is shipped."""
    sc = sidecar_factory(upstream.url)
    body = span_request("short")
    resp = raw_http(sc.port, _head(sc.port, str(len(body) + 100)) + body, shut=True)
    assert _status(resp) == 400 and b"Content-Length says" in resp
    assert sc.post("traces", span_request("after-short")).status_code == 200
    assert upstream.wait_for(lambda: "after-short" in _names(upstream))
    assert "short" not in _names(upstream)


def test_oversized_body_refused_before_it_is_sent(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """Content-Length over --max-body-mb gets 413 from the headers alone; no body is read."""
    sc = sidecar_factory(upstream.url, "--max-body-mb", "1")
    t0 = time.monotonic()
    resp = raw_http(sc.port, _head(sc.port, str(100 * 1024 * 1024)))
    assert _status(resp) == 413 and time.monotonic() - t0 < 4


def test_token_checked_before_the_body_and_bearer_in_any_case(sidecar_factory, upstream,  # type: ignore[no-untyped-def]
                                                              tmp_path: Path) -> None:
    """Without the token, a 60 MB body is refused from its headers (RSS stays low); 'bearer' works."""
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    sc = sidecar_factory(upstream.url, "--token-file", str(token))
    rss0 = psutil.Process(sc.proc.pid).memory_info().rss
    results: list[int] = []

    def big() -> None:
        with socket.create_connection(("127.0.0.1", sc.port), timeout=5) as s:
            s.sendall(_head(sc.port, str(60 * 1024 * 1024)))
            sent = 0
            try:
                while sent < 60 * 1024 * 1024:
                    sent += s.send(b"\0" * 65536)
            except OSError:
                pass  # the server answered and closed: that is the point
            results.append(sent)

    threads = [threading.Thread(target=big) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 16 and max(results) < 60 * 1024 * 1024
    assert psutil.Process(sc.proc.pid).memory_info().rss < rss0 + 30 * 1024 * 1024
    assert sc.post("traces", span_request("x"), Authorization="Bearer s3cret").status_code == 200
    assert sc.post("traces", span_request("y"), Authorization="bearer s3cret").status_code == 200
    assert sc.post("traces", span_request("z"), Authorization="Bearer wrong").status_code == 401
    assert upstream.wait_for(lambda: {"x", "y"} <= set(_names(upstream)))


def test_idle_half_sent_and_slow_body_connections_are_closed(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """An idle connection and one whose headers never finish are closed within --idle-timeout;
    a body that stops half-way gets 408 after --body-timeout."""
    sc = sidecar_factory(upstream.url, "--idle-timeout", "1", "--body-timeout", "1")
    t0 = time.monotonic()
    assert raw_http(sc.port, b"", timeout=10) == b""
    assert raw_http(sc.port, b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n", timeout=10) == b""
    assert _status(raw_http(sc.port, _head(sc.port, "100") + b"x" * 10, timeout=10)) == 408
    assert time.monotonic() - t0 < 9


def test_slowloris_and_the_connection_cap(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """200 half-sent connections: those over --max-connections get 503; once the rest time out a
    normal client is served."""
    sc = sidecar_factory(upstream.url, "--max-connections", "150", "--idle-timeout", "2")
    socks = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", sc.port), timeout=5)
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Le")
            socks.append(s)
        refused = 0
        for s in socks[150:]:
            if s.recv(200).startswith(b"HTTP/1.1 503"):
                refused += 1
        assert refused == 50
        assert wait_until(lambda: sc.post("traces", span_request("served")).status_code == 200,
                          15, 0.2)
    finally:
        for s in socks:
            s.close()
    assert upstream.wait_for(lambda: "served" in _names(upstream))
    assert sc.status()["dropped"]["refused_connections"] >= 50


def test_credentials_redacted_and_self_upstream_refused(sidecar_factory, upstream,  # type: ignore[no-untyped-def]
                                                        tmp_path: Path) -> None:
    """user:pw@ never appears in logs, /status or --status; shipping to itself is refused."""
    import subprocess
    import sys

    from tests.integration.conftest import free_port

    url = upstream.url.replace("http://", "http://alice:hunter2@")
    sc = sidecar_factory(url)
    assert sc.post("traces", span_request("cred")).status_code == 200
    assert upstream.wait_for(lambda: "cred" in _names(upstream))
    assert upstream.headers[-1]["Authorization"].startswith("Basic ")
    st = json.dumps(sc.status())
    out = subprocess.run([sys.executable, "-m", "routerscope", "sidecar", "--status", "--listen",
                          f"127.0.0.1:{sc.port}"], capture_output=True, text=True, timeout=60)
    assert "***@" in st and "***@" in out.stdout
    assert sc.terminate() == 0
    assert all("hunter2" not in x for x in (st, out.stdout, out.stderr, sc.output()))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    for up in (f"http://127.0.0.1:{port}", f"http://localhost:{port}/"):
        out = subprocess.run([sys.executable, "-m", "routerscope", "sidecar", "--listen",
                              f"127.0.0.1:{port}", "--upstream", up, "--grpc-listen", "off",
                              "--spool", str(tmp_path / "s")], capture_output=True, text=True,
                             timeout=60, env=env)
        assert out.returncode == 2 and "ship to itself" in out.stderr
    out = subprocess.run([sys.executable, "-m", "routerscope", "sidecar", "--listen",
                          f"127.0.0.1:{port}", "--spool", str(tmp_path / "s")],
                         capture_output=True, text=True, timeout=60,
                         env={**env, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"})
    assert out.returncode == 2 and "OTEL_EXPORTER_OTLP_ENDPOINT is not read" in out.stderr


def test_loopback_check_parses_addresses() -> None:
    """Loopback means an address (or a name resolving only to ones) in 127/8 or ::1."""
    from routerscope.sidecar import SidecarConfig
    from routerscope.sidecar.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("127.attacker.example") and not is_loopback("0.0.0.0")
    assert not is_loopback("10.1.2.3") and not is_loopback("")
    with pytest.raises(ValueError, match="not a loopback"):
        SidecarConfig(upstream="file:///dev/null", listen="127.attacker.example:4318").validate()


def test_concurrent_gzip_bombs_keep_memory_bounded(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """8 gzip bombs of 100 MiB at once: each refused (413, or 503 while another holds the
    inflate budget), and the RSS grows by far less than what they inflate to."""
    sc = sidecar_factory(upstream.url)
    proc = psutil.Process(sc.proc.pid)
    rss0 = proc.memory_info().rss
    bomb = gzip.compress(bytes(100 * 1024 * 1024), 1)
    codes: list[int] = []

    def send() -> None:
        codes.append(sc.post("traces", bomb, **{"Content-Encoding": "gzip"}).status_code)

    peak = peak_rss_while(proc, send)
    assert len(codes) == 8 and set(codes) <= {413, 503} and 413 in codes
    assert peak < rss0 + 200 * 1024 * 1024
    assert sc.post("traces", span_request("after-bombs")).status_code == 200
