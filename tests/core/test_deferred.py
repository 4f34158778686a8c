"""The deferred metric recorder: records reach the SDK from its worker thread, none stranded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from routerscope.core import otel, signals
from tests._wait import wait_until


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryMetricReader]:
    rd = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[rd])
    monkeypatch.setattr(otel, "_meter", mp.get_meter(otel.SCOPE))
    monkeypatch.setattr(otel, "_sync", {})
    yield rd
    mp.shutdown()


def _count(rd: InMemoryMetricReader, name: str) -> int:
    data = rd.get_metrics_data()
    total = 0
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    total += sum(p.count for p in m.data.data_points)  # type: ignore[union-attr,misc]
    return total


def test_worker_applies_records_from_many_threads_without_drain(reader: InMemoryMetricReader) -> None:
    """Records from concurrent threads all reach the SDK by the worker alone (no drain() call)."""
    d = otel._Deferred()
    m = signals.HTTP_CLIENT_REQUEST_DURATION
    per_thread, threads = 400, 4

    def produce(i: int) -> None:
        attrs: dict[str, Any] = {signals.HTTP_REQUEST_METHOD: "POST", signals.SERVER_PORT: i}
        for k in range(per_thread):
            d.record(m, k / 1000, attrs, None)

    workers = [threading.Thread(target=produce, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert wait_until(lambda: _count(reader, m.name) == per_thread * threads, timeout=10)
    assert not d.queue


def test_idle_worker_wakes_for_a_later_record(reader: InMemoryMetricReader) -> None:
    """After a drained batch the worker sleeps, and a record made later still reaches the SDK."""
    d = otel._Deferred()
    m = signals.HTTP_CLIENT_REQUEST_DURATION
    d.record(m, 0.5, {signals.HTTP_REQUEST_METHOD: "GET"}, None)
    assert wait_until(lambda: _count(reader, m.name) == 1, timeout=10)
    assert wait_until(lambda: not d._wake.is_set(), timeout=10)  # nothing queued: asleep
    d.record(m, 0.7, {signals.HTTP_REQUEST_METHOD: "GET"}, None)
    assert wait_until(lambda: _count(reader, m.name) == 2, timeout=10)


def test_worker_that_cannot_start_leaves_nothing_queued_and_is_retried(
        reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed thread start raises before anything is queued; the next record starts the worker."""
    d = otel._Deferred()
    real_start = threading.Thread.start
    fails = [1]

    def start(self: threading.Thread) -> None:
        if fails:
            fails.pop()
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    ran: list[int] = []
    with pytest.raises(RuntimeError):
        d.later(ran.append, (1,))
    assert not d.queue and d._thread is None
    d.later(ran.append, (2,))
    assert wait_until(lambda: ran == [2], timeout=10)


def test_full_queue_runs_deferred_calls_on_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the queue full a deferred call runs at once (back-pressure), never dropped."""
    d = otel._Deferred()
    monkeypatch.setattr(otel, "MAX_DEFERRED", 3)
    d._thread = threading.current_thread()  # no worker: the queue only fills
    ran: list[int] = []
    for i in range(5):
        d.later(ran.append, (i,))
    assert ran == [3, 4] and len(d.queue) == 3
    d.drain()
    assert ran == [3, 4, 0, 1, 2]


def test_a_late_span_end_keeps_the_exception_as_the_caller_saw_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ended on the worker, the exception event has the stack and message of the call's end."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from routerscope.core.genai import LLMCall

    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(mem))
    monkeypatch.setattr(otel, "_tracer", tp.get_tracer("t"))
    monkeypatch.setattr(otel, "_end_later", True)
    call = LLMCall(operation="chat", model="m", provider="openai", server_address="h")

    def http_layer() -> None:
        try:
            raise ConnectionError("refused")
        except ConnectionError as exc:
            call.end("ConnectionError", exception=exc)
            raise

    def app_handler_far_up() -> None:
        try:
            http_layer()
        except ConnectionError as exc:
            exc.add_note("user secret note")
            raise

    with pytest.raises(ConnectionError):
        app_handler_far_up()
    assert not mem.get_finished_spans()  # still queued for the worker
    otel.drain()
    (span,) = mem.get_finished_spans()
    (event,) = span.events
    stack = str(dict(event.attributes or {})["exception.stacktrace"])
    assert "http_layer" in stack and "app_handler_far_up" not in stack
    assert "user secret note" not in stack
    assert span.end_time is not None and event.timestamp == span.end_time


def test_an_exception_whose_str_raises_still_fails_the_span(monkeypatch: pytest.MonkeyPatch) -> None:
    """The span of a call ended by such an exception is ERROR with error.type, on the worker or not."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode

    from routerscope.core.genai import LLMCall

    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(mem))
    monkeypatch.setattr(otel, "_tracer", tp.get_tracer("t"))
    for later in (True, False):
        monkeypatch.setattr(otel, "_end_later", later)
        LLMCall(operation="chat", model="m", provider="openai", server_address="h").end(
            "Weird", exception=Weird())
        otel.drain()
    spans = mem.get_finished_spans()
    assert len(spans) == 2
    for span in spans:
        assert span.status.status_code is StatusCode.ERROR
        assert dict(span.attributes or {})["error.type"] == "Weird"
