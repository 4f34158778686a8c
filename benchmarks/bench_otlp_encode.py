"""OTLP trace encoding: routerscope's protobuf writer against the SDK's encoder.

Both encode the same batches of ended SDK spans (a GenAI-like client span: 18
attributes, 12 of them strings that repeat on every call, ints, a float, a
tuple of str, and a token count that changes) into the bytes of an ``ExportTraceServiceRequest``:

* ours: :func:`routerscope.telemetry._otlp_encode.encode_spans_bytes`;
* the SDK: ``encode_spans(spans).SerializePartialToString()``, what the SDK's
  ``OTLPSpanExporter.export`` runs (opentelemetry-exporter-otlp-proto-common).

The two outputs are checked equal before timing. Rows: a batch of 100 spans and
a batch of one span (what a ``BatchSpanProcessor`` sends when calls are sparse).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from benchmarks._common import Row, per_call_us


def _spans(n: int) -> list[Any]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind

    tracer = TracerProvider(resource=Resource.create({"service.name": "router"})) \
        .get_tracer("routerscope", "0.1.0")
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "demo/small", "gen_ai.response.model": "demo/small-2026",
        "server.address": "127.0.0.1", "http.request.method": "POST",
        "url.full": "http://127.0.0.1:8080/v1/chat/completions", "url.scheme": "http",
        "network.protocol.version": "1.1", "user_agent.original": "python-requests/2.32",
        "gen_ai.output.type": "text", "routerscope.pool.reused": "true",
        "server.port": 8080, "http.response.status_code": 200,
        "gen_ai.usage.input_tokens": 12, "gen_ai.request.temperature": 0.2,
        "gen_ai.response.finish_reasons": ("stop",),
    }
    spans = []
    for i in range(n):
        span = tracer.start_span("chat demo/small", kind=SpanKind.CLIENT, attributes=attributes)
        span.set_attribute("gen_ai.usage.output_tokens", i)  # one value new on most spans
        span.end()
        spans.append(span)
    return spans


def _sdk_bytes(spans: list[Any]) -> bytes:
    """What the SDK's ``OTLPSpanExporter.export`` sends."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return encode_spans(spans).SerializePartialToString()  # type: ignore[no-any-return]


def run(quick: bool = False) -> list[Row]:
    from routerscope.telemetry._otlp_encode import encode_spans_bytes

    rows = []
    for size, calls in ((100, 40 if quick else 200), (1, 2000 if quick else 10_000)):
        spans = _spans(size)
        if encode_spans_bytes(spans) != _sdk_bytes(spans):
            raise AssertionError("the fast encoder's bytes differ from the SDK's")
        ours = per_call_us(functools.partial(encode_spans_bytes, spans), calls)
        sdk = per_call_us(functools.partial(_sdk_bytes, spans), calls)
        rows.append(Row("otlp_encode", f"OTLP encoding of {size} span(s) with 18 attributes",
                        "encode_spans_bytes", ours, "SDK encode_spans + serialise", sdk,
                        "µs/batch", sdk / ours))
    return rows


if __name__ == "__main__":
    t = time.perf_counter()
    for r in run(quick=True):
        print(r)
    print(f"{time.perf_counter() - t:.1f} s")
