"""The sidecar as a subprocess, against real receivers on loopback, with faults."""

from __future__ import annotations

import gzip
import json
import os
import stat
import threading
from pathlib import Path

import pytest
import requests

from routerscope.testing import Answer, OTLPReceiver, attrs_of

from .conftest import examples, free_port, jsonl, span_request, wait_until

pytestmark = pytest.mark.integration


def _names(rx: OTLPReceiver) -> list[str]:
    return [s.name for _, s in rx.spans()]


def test_spec_examples_accepted_and_forwarded(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """Every example of the specification is accepted and reaches the collector intact."""
    sc = sidecar_factory(upstream.url)
    ex = examples()
    route = {"trace": "traces", "metrics": "metrics", "logs": "logs", "events": "logs"}
    for stem, path in ex.items():
        r = sc.post(route[stem], path.read_bytes(), "application/json")
        assert r.status_code == 200, (stem, r.text)
        assert r.headers["Content-Type"] == "application/json" and r.json() == {}
    assert upstream.wait_for(lambda: sum(len(v) for v in upstream.requests.values()) == len(ex))
    span = next(s for _, s in upstream.spans())
    want = json.loads(ex["trace"].read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span.trace_id.hex() == want["traceId"].lower() and span.name == want["name"]


def test_json_encoding_rules(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """Hex ids in any case, int64 as string or number, enums as integers, unknown fields."""
    sc = sidecar_factory(upstream.url)
    body = {"resourceSpans": [{"resource": {"attributes": []}, "futureField": 1,
            "scopeSpans": [{"spans": [
                {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
                 "name": "upper", "kind": 2, "startTimeUnixNano": "1544712660000000000",
                 "endTimeUnixNano": 1544712661000000000, "unknownThing": {"x": 1}},
            ]}]}]}
    r = sc.post("traces", json.dumps(body).encode(), "application/json")
    assert r.status_code == 200, r.text
    assert upstream.wait_for(lambda: upstream.span_count() == 1)
    _, span = next(upstream.spans())
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert span.kind == 2 and span.end_time_unix_nano == 1544712661000000000


def test_real_sdk_exporter_with_gzip(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """The OTel SDK's own OTLP/HTTP exporter (protobuf, gzip) goes through unchanged."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    sc = sidecar_factory(upstream.url)
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{sc.url}/v1/traces", compression=Compression.Gzip)))
    with tp.get_tracer("t").start_as_current_span("from-sdk", attributes={"k": "v"}):
        pass
    tp.shutdown()
    assert upstream.wait_for(lambda: "from-sdk" in _names(upstream))
    assert upstream.headers[-1].get("Content-Encoding") == "gzip"
    _, span = next(upstream.spans())
    assert attrs_of(span.attributes) == {"k": "v"}


def test_bad_input_gets_clear_answers_and_never_crashes(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """400, 413 (incl. a gzip bomb and a chunked body), 415, 404, 405 and empty 200, then healthy."""
    sc = sidecar_factory(upstream.url, "--max-body-mb", "1")
    r = sc.post("traces", b"\xff\x00garbage not protobuf")
    assert r.status_code == 400
    from google.rpc.status_pb2 import Status

    msg = Status()
    msg.ParseFromString(r.content)
    assert "protobuf" in msg.message
    assert sc.post("traces", b"{nope", "application/json").json()["message"].startswith(
        "body is not JSON")
    assert sc.post("traces", b"x", "text/plain").status_code == 415
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # 50 MiB of zeros in ~50 KiB
    r = sc.post("traces", bomb, **{"Content-Encoding": "gzip"})
    assert r.status_code == 413 and len(bomb) < 1024 * 1024
    assert sc.post("traces", b"\0" * (2 * 1024 * 1024)).status_code == 413
    assert sc.post("traces", b"not gzip", **{"Content-Encoding": "gzip"}).status_code == 400
    assert sc.post("traces", b"").status_code == 200
    assert sc.post("nope", b"").status_code == 404
    assert requests.get(sc.url + "/v1/traces", timeout=5).status_code == 405
    chunked = requests.post(sc.url + "/v1/traces", data=iter([span_request("chunked")]),
                            timeout=5, headers={"Content-Type": "application/x-protobuf"})
    assert chunked.status_code == 200  # a chunked body is read, up to --max-body-mb
    huge = requests.post(sc.url + "/v1/traces", data=iter([b"\0" * 65536] * 40), timeout=5,
                         headers={"Content-Type": "application/x-protobuf"})
    assert huge.status_code == 413
    assert sc.healthy() and requests.get(sc.url + "/readyz", timeout=5).status_code == 200
    assert sc.post("traces", span_request("after-bad")).status_code == 200
    assert upstream.wait_for(lambda: "after-bad" in _names(upstream))
    assert upstream.errors == []  # nothing malformed was forwarded


def test_upstream_down_then_up_loses_nothing_in_order(sidecar_factory) -> None:  # type: ignore[no-untyped-def]
    """While the collector is down everything is acknowledged; when it is back, all arrive in order."""
    port = free_port()
    sc = sidecar_factory(f"http://127.0.0.1:{port}")
    for i in range(40):
        assert sc.post("traces", span_request(f"s{i:03d}")).status_code == 200
    assert wait_until(lambda: sc.status()["retries"] >= 2)
    assert sc.status()["queue"]["requests"] == 40
    with OTLPReceiver(port=port) as rx:
        assert rx.wait_for(lambda: len(set(_names(rx))) == 40, 60)
        names = _names(rx)
        assert [n for i, n in enumerate(names) if n not in names[:i]] == \
            [f"s{i:03d}" for i in range(40)]
        assert len(rx.requests["traces"]) < 40  # the backlog went up coalesced
    assert sc.status()["queue"]["requests"] == 0


def test_kill9_mid_send_then_restart_delivers_everything(sidecar_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """kill -9 while a send hangs, restart on the same spool: every acknowledged request arrives."""
    rx = OTLPReceiver().start()
    try:
        rx.answer(Answer(hang=True))
        sc = sidecar_factory(rx.url, "--send-timeout", "30")
        for i in range(25):
            assert sc.post("traces", span_request(f"k{i:02d}")).status_code == 200
        assert rx.wait_for(lambda: rx.hung == 1, 20)  # the first send is in flight, hanging
        sc.kill9()
        sc2 = sidecar_factory(rx.url, spool=sc.spool)
        assert rx.wait_for(lambda: {f"k{i:02d}" for i in range(25)} <= set(_names(rx)), 60)
        assert wait_until(lambda: sc2.status()["queue"]["requests"] == 0)
    finally:
        rx.stop()


def test_kill9_during_load_loses_nothing_acknowledged(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """Requests acknowledged before a kill -9 at an arbitrary moment are all delivered after restart."""
    sc = sidecar_factory(upstream.url)
    acked: list[str] = []
    for i in range(60):
        if sc.post("traces", span_request(f"L{i:03d}")).status_code == 200:
            acked.append(f"L{i:03d}")
        if i == 30:
            sc.kill9()
            break
    sc2 = sidecar_factory(upstream.url, spool=sc.spool)
    assert upstream.wait_for(lambda: set(acked) <= set(_names(upstream)), 60)
    assert sc2.healthy()


def test_spool_full_rejects_with_503_and_counts(sidecar_factory) -> None:  # type: ignore[no-untyped-def]
    """At the byte limit new requests get 503 + Retry-After; every refusal is counted."""
    sc = sidecar_factory(f"http://127.0.0.1:{free_port()}", "--max-spool-mb", "0.05")
    codes = [sc.post("traces", span_request(f"f{i}", 60)) for i in range(40)]
    refused = [r for r in codes if r.status_code == 503]
    assert refused and refused[0].headers["Retry-After"].isdigit()
    st = sc.status()
    assert st["dropped"]["spool_full"] == len(refused)
    assert st["queue"]["bytes"] <= 0.05 * 1024 * 1024
    assert requests.get(sc.url + "/readyz", timeout=5).status_code == 503


def test_spool_full_drop_oldest(sidecar_factory) -> None:  # type: ignore[no-untyped-def]
    """With --on-full drop-oldest every request is accepted and the oldest go, counted."""
    port = free_port()
    sc = sidecar_factory(f"http://127.0.0.1:{port}", "--max-spool-mb", "0.05",
                         "--on-full", "drop-oldest")
    for i in range(40):
        assert sc.post("traces", span_request(f"d{i:02d}", 60)).status_code == 200
    dropped = sc.status()["dropped"]["drop_oldest"]
    assert dropped > 0
    with OTLPReceiver(port=port) as rx:
        assert rx.wait_for(lambda: "d39" in _names(rx), 60)
        names = set(_names(rx))
        assert "d00" not in names and len(names) == 40 - dropped


def test_hanging_collector_is_timed_out_and_retried(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """A collector that accepts and never answers costs one send timeout, then delivery goes on."""
    upstream.answer(Answer(hang=True))
    sc = sidecar_factory(upstream.url, "--send-timeout", "1")
    assert sc.post("traces", span_request("after-hang")).status_code == 200
    assert upstream.wait_for(lambda: "after-hang" in _names(upstream), 30)
    assert sc.status()["retries"] >= 1


def test_429_retry_after_is_honoured(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """429 with Retry-After: 1 delays the retry by at least a second, then delivers."""
    import time

    upstream.answer(Answer(status=429, headers={"Retry-After": "1"}))
    sc = sidecar_factory(upstream.url)
    t0 = time.monotonic()
    assert sc.post("traces", span_request("r429")).status_code == 200
    assert upstream.wait_for(lambda: "r429" in _names(upstream), 30)
    assert time.monotonic() - t0 >= 1.0
    assert sc.status()["retries"] == 1


def test_400_from_collector_is_dropped_not_retried(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """A 400 upstream drops that request (counted, logged once) and the next one goes through."""
    upstream.answer(Answer(status=400, body=b"bad data"))
    sc = sidecar_factory(upstream.url)
    sc.post("traces", span_request("rejected"))
    sc.post("traces", span_request("accepted"))
    assert upstream.wait_for(lambda: "accepted" in _names(upstream), 30)
    assert upstream.attempts == 2 and "rejected" not in _names(upstream)
    st = sc.status()
    assert st["dropped"]["http_400"] == 1 and st["retries"] == 0


def test_partial_success_counts_rejected_items(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """A partial_success response is delivered and its rejected spans are counted."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    resp = ExportTraceServiceResponse()
    resp.partial_success.rejected_spans = 2
    resp.partial_success.error_message = "two too old"
    upstream.answer(Answer(status=200, body=resp.SerializeToString()))
    sc = sidecar_factory(upstream.url)
    sc.post("traces", span_request("partial", 5))
    assert wait_until(lambda: sc.status()["rejected_items"].get("traces") == 2)
    assert sc.status()["shipped"]["traces"] == 1


def test_twenty_concurrent_clients(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """20 clients posting at once: every request is acknowledged and delivered."""
    sc = sidecar_factory(upstream.url)
    codes: list[int] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        s = requests.Session()
        for i in range(15):
            r = s.post(f"{sc.url}/v1/traces", data=span_request(f"c{c:02d}-{i:02d}"),
                       headers={"Content-Type": "application/x-protobuf"}, timeout=30)
            with lock:
                codes.append(r.status_code)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert codes.count(200) == 300
    assert upstream.wait_for(lambda: len(set(_names(upstream))) == 300, 60)


def test_sigterm_exits_zero_and_keeps_the_spool(sidecar_factory) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM: exit 0, undelivered requests stay on disk for the next start; one INFO start line."""
    port = free_port()
    sc = sidecar_factory(f"http://127.0.0.1:{port}")
    for i in range(5):
        sc.post("traces", span_request(f"t{i}"))
    assert sc.terminate() == 0
    assert "5 requests" in sc.output()
    assert sc.output().count("routerscope sidecar: OTLP/HTTP on") == 1  # the start line, once
    assert " INFO routerscope sidecar: OTLP/HTTP on" in sc.output()
    with OTLPReceiver(port=port) as rx:
        sidecar_factory(f"http://127.0.0.1:{port}", spool=sc.spool)
        assert rx.wait_for(lambda: len(set(_names(rx))) == 5, 30)


def test_security_loopback_token_and_spool_mode(sidecar_factory, upstream, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Off loopback a token is required; with a token, requests without it get 401; spool is 0700."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "routerscope", "sidecar", "--listen",
                          "0.0.0.0:0", "--upstream", upstream.url, "--spool",
                          str(tmp_path / "x")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--token" in out.stderr
    sc = sidecar_factory(upstream.url, "--token", "s3cret")
    assert sc.post("traces", span_request("noauth")).status_code == 401
    assert sc.post("traces", span_request("auth"),
                   Authorization="Bearer s3cret").status_code == 200
    assert stat.S_IMODE(os.stat(sc.spool).st_mode) == 0o700


def test_corrupt_spool_file_is_skipped_and_counted(sidecar_factory, upstream, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A torn or corrupt segment does not stop start-up; good records still ship."""
    from routerscope.sidecar.spool import Spool

    spool_dir = tmp_path / "spool"
    sp = Spool(spool_dir, max_bytes=10 * 1024 * 1024)
    sp.append("traces", span_request("good-1"))
    sp.append("traces", span_request("good-2"))
    sp.close()
    seg = sorted(spool_dir.glob("seg-*.log"))[0]
    data = bytearray(seg.read_bytes())
    data[30] ^= 0xFF  # corrupt the first record's body
    seg.write_bytes(bytes(data) + b"RSP1\x00\x00\x10")  # and a torn tail
    sc = sidecar_factory(upstream.url, spool=spool_dir)
    assert upstream.wait_for(lambda: "good-2" in _names(upstream), 30)
    assert "good-1" not in _names(upstream)
    assert sc.status()["dropped"]["corrupt"] >= 1


def test_file_upstream_writes_otlp_json_lines(sidecar_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--upstream file://PATH.jsonl writes one OTLP JSON request per line, hex ids."""
    out = tmp_path / "out.jsonl"
    sc = sidecar_factory(f"file://{out}")
    sc.post("traces", span_request("to-file", 3))
    assert wait_until(lambda: out.exists() and out.stat().st_size > 0)
    line = jsonl(out)[0]
    spans = line["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert [s["name"] for s in spans] == ["to-file"] * 3
    assert len(spans[0]["traceId"]) == 32 and int(spans[0]["traceId"], 16) >= 0


def test_self_metrics_travel_through_the_sidecar(sidecar_factory, upstream, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Queue depth, received, shipped, send latency arrive upstream as OTel metrics."""
    from routerscope.core import signals

    sc = sidecar_factory(upstream.url, "--self-metrics-interval", "0.3",
                         spool=tmp_path / "spool-self")
    sc.post("traces", span_request("x"))
    want = {signals.SIDECAR_RECEIVED.name, signals.SIDECAR_SHIPPED.name,
            signals.SIDECAR_QUEUE_REQUESTS.name, signals.SIDECAR_SEND_DURATION.name}
    assert upstream.wait_for(lambda: want <= upstream.metric_names(), 30)
    res, _ = next(upstream.metrics())
    assert res["service.name"] == "routerscope-sidecar"


def test_status_command_prints_counters(sidecar_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """`routerscope sidecar --status` prints the running sidecar's counters."""
    import subprocess
    import sys

    sc = sidecar_factory(upstream.url)
    sc.post("traces", span_request("st"))
    assert upstream.wait_for(lambda: "st" in _names(upstream))
    out = subprocess.run([sys.executable, "-m", "routerscope", "sidecar", "--status",
                          "--listen", f"127.0.0.1:{sc.port}"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"traces": 1' in out.stdout and "queue" in out.stdout


def test_through_rotel_to_victoriametrics(sidecar_factory, upstream, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """SDK -> sidecar -> rotel -> VictoriaMetrics (PromQL) and an OTLP receiver (traces, logs)."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    from .conftest import Rotel, VictoriaMetrics

    vm = VictoriaMetrics(tmp_path / "vm")
    rotel = Rotel(tmp_path, metrics=vm.otlp_metrics, traces=f"{upstream.url}/v1/traces",
                  logs=f"{upstream.url}/v1/logs")
    try:
        sc = sidecar_factory(rotel.url)
        mp = MeterProvider(resource=Resource.create({"service.name": "via-rotel"}),
                           metric_readers=[PeriodicExportingMetricReader(
                               OTLPMetricExporter(endpoint=f"{sc.url}/v1/metrics"),
                               export_interval_millis=60_000)])
        mp.get_meter("m").create_counter("routerscope.cache.requests", unit="{request}").add(
            7, {"routerscope.cache.result": "hit"})
        mp.shutdown()
        sc.post("traces", span_request("via-rotel-span"))
        assert upstream.wait_for(lambda: "via-rotel-span" in _names(upstream), 30)
        assert wait_until(lambda: vm.query(
            'routerscope_cache_requests_total{service_name="via-rotel"}'), 60, 0.5)
        [series] = vm.query('routerscope_cache_requests_total{service_name="via-rotel"}')
        assert series["value"][1] == "7"
        assert series["metric"]["routerscope_cache_result"] == "hit"
    finally:
        rotel.stop()
        vm.stop()
