"""The lazy OTLP/HTTP exporters on their own, against a real loopback receiver."""

from __future__ import annotations

import socket
import threading

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from routerscope.telemetry._exporters import (
    LazyOTLPLogExporter,
    LazyOTLPMetricExporter,
    LazyOTLPSpanExporter,
)
from routerscope.testing import OTLPReceiver

from .._wait import wait_until
from .conftest import run_python


def _free_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sdk_exporter_is_imported_on_first_export_only(receiver: OTLPReceiver) -> None:
    """Building the exporter imports nothing heavy; the first export imports, builds and sends."""
    code = (
        "import sys\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from routerscope.telemetry._exporters import LazyOTLPSpanExporter\n"
        "MOD = 'opentelemetry.exporter.otlp.proto.http.trace_exporter'\n"
        f"exp = LazyOTLPSpanExporter(endpoint={receiver.url + '/v1/traces'!r})\n"
        "print(MOD in sys.modules, exp.built)\n"
        "tp = TracerProvider(); tp.add_span_processor(SimpleSpanProcessor(exp))\n"
        "tp.get_tracer('t').start_span('first').end()\n"
        "print(MOD in sys.modules, exp.built)\n"
    )
    out = run_python(code, {})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["False False", "True True"]
    assert [s.name for _, s in receiver.spans()] == ["first"]


def test_spans_and_logs_arrive_gzipped_when_asked(receiver: OTLPReceiver) -> None:
    """Span and log exporters send to the given endpoint with the compression asked for."""
    spans = LazyOTLPSpanExporter(endpoint=receiver.url + "/v1/traces", compression="gzip",
                                 timeout=5)
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    tp.get_tracer("t").start_span("zipped").end()
    logs = LazyOTLPLogExporter(endpoint=receiver.url + "/v1/logs", compression="gzip")
    lp = LoggerProvider()
    lp.add_log_record_processor(SimpleLogRecordProcessor(logs))
    lp.get_logger("t").emit(body="a log body")
    tp.shutdown()
    lp.shutdown()
    assert [s.name for _, s in receiver.spans()] == ["zipped"]
    assert [r.body.string_value for _, r in receiver.logs()] == ["a log body"]
    assert {h.get("Content-Encoding") for h in receiver.headers} == {"gzip"}


def test_metric_exporter_honours_the_temporality_preference(receiver: OTLPReceiver) -> None:
    """With the `delta` preference counters and histograms arrive with DELTA temporality."""
    exp = LazyOTLPMetricExporter(endpoint=receiver.url + "/v1/metrics", temporality="delta")
    mp = MeterProvider(metric_readers=[PeriodicExportingMetricReader(
        exp, export_interval_millis=60_000)])
    m = mp.get_meter("t")
    m.create_counter("c").add(2)
    m.create_histogram("h").record(0.5)
    mp.shutdown()
    kinds = {metric.name: getattr(metric, metric.WhichOneof("data")).aggregation_temporality
             for _, metric in receiver.metrics()}
    assert kinds == {"c": 1, "h": 1}  # AGGREGATION_TEMPORALITY_DELTA


def test_endpoint_down_closes_the_exporter(receiver: OTLPReceiver) -> None:
    """Nothing listening: close_if_unreachable closes it and exports fail at once, unsent."""
    down = LazyOTLPSpanExporter(endpoint=f"http://127.0.0.1:{_free_port()}/v1/traces")
    up = LazyOTLPSpanExporter(endpoint=receiver.url + "/v1/traces")
    assert down.close_if_unreachable() is True and down.closed
    assert up.close_if_unreachable() is False and not up.closed
    assert down.export([]) is SpanExportResult.FAILURE
    assert not down.built  # closed before its first export: never imported or built


def test_malformed_endpoint_never_raises() -> None:
    """An endpoint passed by hand that is not a URL closes the exporter instead of raising."""
    exp = LazyOTLPSpanExporter(endpoint="http://[::1")
    assert exp.close_if_unreachable() is True
    assert exp.endpoint() == "http://[::1"


def _ended_span() -> ReadableSpan:
    tp = TracerProvider()
    span = tp.get_tracer("t").start_span("s")
    span.end()
    assert isinstance(span, ReadableSpan)
    return span


def test_closing_aborts_a_retry_in_progress() -> None:
    """An export retrying against a dead endpoint stops as soon as the exporter is closed."""
    exp = LazyOTLPSpanExporter(endpoint=f"http://127.0.0.1:{_free_port()}/v1/traces", timeout=20)
    result: list[SpanExportResult] = []
    started = threading.Event()

    def export() -> None:
        started.set()
        result.append(exp.export([_ended_span()]))

    t = threading.Thread(target=export)
    t.start()
    assert started.wait(5)
    assert wait_until(lambda: exp.built, 10)  # the first attempt was made: now in backoff
    assert exp.close_if_unreachable() is True
    t.join(5)
    assert not t.is_alive(), "the retry loop went on after close"
    assert result == [SpanExportResult.FAILURE]


def test_a_down_endpoint_is_said_once() -> None:
    """Repeated failed exports print the SDK's retry line once, not once per batch."""
    code = (
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from routerscope.telemetry._exporters import LazyOTLPSpanExporter\n"
        f"exp = LazyOTLPSpanExporter(endpoint='http://127.0.0.1:{_free_port()}/v1/traces', "
        "timeout=1.5)\n"
        "span = TracerProvider().get_tracer('t').start_span('s'); span.end()\n"
        "print([exp.export([span]).name for _ in range(3)])\n"
    )
    out = run_python(code, {})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['FAILURE', 'FAILURE', 'FAILURE']"
    assert out.stderr.count("Transient error") == 1, out.stderr
