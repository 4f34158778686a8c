"""OTLP/gRPC into the same spool: the real OTel gRPC exporter, the token, the status codes."""

from __future__ import annotations

import grpc
import pytest
import requests

from tests.integration.conftest import free_port, span_request

from .conftest import peak_rss_while

pytestmark = pytest.mark.integration

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _export(tp_endpoint: str, name: str, headers: dict[str, str] | None = None) -> bool:
    """One span through the SDK's OTLP/gRPC exporter (gzip); True when the export succeeded."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    exporter = OTLPSpanExporter(endpoint=tp_endpoint, insecure=True, headers=headers,
                                compression=grpc.Compression.Gzip, timeout=5)
    tp = TracerProvider()
    with tp.get_tracer("t").start_as_current_span(name) as span:
        pass
    ok = exporter.export([span]) == SpanExportResult.SUCCESS  # type: ignore[list-item]
    exporter.shutdown()
    tp.shutdown()
    return ok


def _raw_call(endpoint: str, body: bytes, token: str | None = None) -> grpc.RpcError | None:
    with grpc.insecure_channel(endpoint) as ch:
        call = ch.unary_unary(EXPORT)
        md = [("authorization", f"Bearer {token}")] if token else None
        try:
            call(body, timeout=5, metadata=md)
        except grpc.RpcError as err:
            return err
    return None


def test_real_grpc_exporter_reaches_the_upstream(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """The OTel SDK's gRPC exporter (gzip) goes through the sidecar's spool to the collector."""
    gport = free_port()
    sc = sidecar_factory(upstream.url, "--grpc-listen", f"127.0.0.1:{gport}")
    assert sc.status()["grpc_listen"] == f"127.0.0.1:{gport}"
    assert _export(f"127.0.0.1:{gport}", "via-grpc")
    assert upstream.wait_for(lambda: "via-grpc" in {s.name for _, s in upstream.spans()})


def test_grpc_token_limits_and_status_codes(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """UNAUTHENTICATED without the token (any-case Bearer works), INVALID_ARGUMENT for garbage,
    RESOURCE_EXHAUSTED over --max-body-mb, UNAVAILABLE with RetryInfo when the spool is full."""
    from google.rpc.error_details_pb2 import RetryInfo

    gport = free_port()
    sc = sidecar_factory(f"http://127.0.0.1:{free_port()}", "--grpc-listen",
                         f"127.0.0.1:{gport}", "--max-body-mb", "0.5", "--max-spool-mb", "0.02",
                         "--token", "tok")
    ep = f"127.0.0.1:{gport}"
    assert not _export(ep, "no-token")
    assert _export(ep, "with-token", {"authorization": "bearer tok"})
    err = _raw_call(ep, span_request("x"))
    assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED
    err = _raw_call(ep, b"\xff\x00garbage", "tok")
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = _raw_call(ep, span_request("big", 20000), "tok")
    assert err is not None and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for _ in range(20):  # fill the 20 KB spool (the upstream is down)
        err = _raw_call(ep, span_request("fill", 50), "tok")
        if err is not None:
            break
    assert err is not None and err.code() == grpc.StatusCode.UNAVAILABLE
    info = RetryInfo.FromString(dict(err.trailing_metadata())["google.rpc.retryinfo-bin"])
    assert info.retry_delay.seconds > 0
    st = requests.get(sc.url + "/status", headers={"Authorization": "Bearer tok"}, timeout=5).json()
    assert st["received"]["traces"] >= 2 and st["dropped"]["refused_grpc_unauthenticated"] >= 2
    assert st["dropped"]["spool_full"] >= 1


def test_unauthenticated_grpc_messages_are_not_taken_into_memory(sidecar_factory) -> None:  # type: ignore[no-untyped-def]
    """8 calls of 30 MB each without the token: UNAUTHENTICATED, and the RSS barely moves."""

    import psutil

    gport = free_port()
    sc = sidecar_factory("file:///dev/null", "--grpc-listen", f"127.0.0.1:{gport}",
                         "--token", "tok")
    proc = psutil.Process(sc.proc.pid)
    rss0 = proc.memory_info().rss
    body = b"\x0a" + bytes(30 * 1024 * 1024)
    codes: list[grpc.StatusCode] = []

    def call() -> None:
        opts = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        with grpc.insecure_channel(f"127.0.0.1:{gport}", options=opts) as ch:
            try:
                ch.unary_unary(EXPORT)(body, timeout=20)
            except grpc.RpcError as err:
                codes.append(err.code())

    peak = peak_rss_while(proc, call)
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 8
    assert peak < rss0 + 60 * 1024 * 1024
