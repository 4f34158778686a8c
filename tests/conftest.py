"""Shared fixtures: in-memory OpenTelemetry, captured log records, loopback servers."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from routerscope.core import otel as core_otel
from routerscope.testing import FakeProvider, OTLPReceiver

_SPANS = InMemorySpanExporter()
_READER = InMemoryMetricReader()
_installed = False


def _install_otel() -> None:
    global _installed
    if _installed:
        return
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(_SPANS))
    trace.set_tracer_provider(tp)
    metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    _installed = True


def span_attrs(span: ReadableSpan) -> dict[str, Any]:
    """A finished span's attributes as a plain dict (empty when it has none)."""
    return dict(span.attributes or {})


class Telemetry:
    """What the SDK recorded during one test."""

    def __init__(self) -> None:
        core_otel.drain()  # what earlier tests left on the deferred worker ends before the clear
        _SPANS.clear()

    def spans(self) -> list[ReadableSpan]:
        core_otel.drain()  # LLM call spans end on the deferred worker
        return list(_SPANS.get_finished_spans())

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, point) of every data point of metric ``name`` (cumulative)."""
        core_otel.drain()
        data = _READER.get_metrics_data()
        out: list[tuple[dict[str, Any], Any]] = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        out.extend((dict(p.attributes or {}), p) for p in m.data.data_points)
        return out

    def units(self) -> dict[str, str]:
        data = _READER.get_metrics_data()
        out: dict[str, str] = {}
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out[m.name] = m.unit or ""
        return out


@pytest.fixture
def otel() -> Telemetry:
    _install_otel()
    return Telemetry()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def dump(self) -> str:
        """Every record with every field, as text (to search for secrets)."""
        return "\n".join(repr(r.__dict__) for r in self.records)


@pytest.fixture
def logs() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("routerscope")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as p:
        yield p


@pytest.fixture(scope="session")
def tls_pair() -> tuple[ssl.SSLContext, str]:
    """A server context and the CA bundle path a client should trust."""
    trustme = pytest.importorskip("trustme", reason="trustme (dev extra) makes the test CA")
    import tempfile

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as bundle:
        bundle.write(ca.cert_pem.bytes())
    return server_ctx, bundle.name


@pytest.fixture
def tls_provider(tls_pair: tuple[ssl.SSLContext, str]) -> Iterator[FakeProvider]:
    with FakeProvider(tls=tls_pair[0]) as p:
        yield p


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    """A real OTLP/HTTP receiver on 127.0.0.1 that decodes what it gets."""
    with OTLPReceiver() as rx:
        yield rx


@pytest.fixture
def upstream(receiver: OTLPReceiver) -> OTLPReceiver:
    """The sidecar's upstream collector: the same receiver, named for its role."""
    return receiver

