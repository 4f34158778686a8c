"""Secret redaction in strings, spans and log records."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from routerscope.telemetry._redact import RedactingFilter, RedactingSpanProcessor, redact


def test_redact_patterns() -> None:
    """Keys, bearer tokens, URL credentials and key= query values are replaced."""
    assert redact("key sk-or-v1-abcdef0123456789 used") == "key REDACTED used"
    assert redact("Authorization: Bearer abc.def-ghi_jkl") == "Authorization: Bearer REDACTED"
    assert redact("https://bob:pw1234@host/x") == "https://REDACTED:REDACTED@host/x"
    assert redact("https://h/p?api_key=zzz&x=1") == "https://h/p?api_key=REDACTED&x=1"
    assert redact("nothing secret here") == "nothing secret here"


def test_span_processor_redacts_a_copy() -> None:
    """Spans with secrets reach the exporter redacted; clean spans pass untouched."""
    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(RedactingSpanProcessor(SimpleSpanProcessor(mem)))
    t = tp.get_tracer("t")
    with t.start_as_current_span("s", attributes={"url.full": "http://u:sk-0123456789abc@h/"}) as s:
        s.add_event("e", {"msg": "Bearer sk-0123456789abcdef"})
    with t.start_as_current_span("clean", attributes={"a": "b"}):
        pass
    dirty, clean = mem.get_finished_spans()
    assert dirty.attributes["url.full"] == "http://REDACTED:REDACTED@h/"
    assert "sk-" not in dirty.events[0].attributes["msg"]
    assert clean.attributes["a"] == "b"


@pytest.mark.parametrize("where", ["list_attribute", "event_name", "event_list", "status", "name"])
def test_span_processor_finds_a_secret_in_each_place(where: str) -> None:
    """The one pre-check sees a secret wherever a span holds it alone: the exported copy is redacted."""
    key = "sk-or-v1-0123456789abcdef"
    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(RedactingSpanProcessor(SimpleSpanProcessor(mem)))
    name = f"call {key}" if where == "name" else "call"
    with tp.get_tracer("t").start_as_current_span(name, attributes={"clean": "x"}) as s:
        if where == "list_attribute":
            s.set_attribute("gen_ai.response.finish_reasons", ["stop", key])
        elif where == "event_name":
            s.add_event(f"retry with {key}")
        elif where == "event_list":
            s.add_event("e", {"keys": ["a", key]})
        elif where == "status":
            s.set_status(Status(StatusCode.ERROR, f"bad key {key}"))
    (span,) = mem.get_finished_spans()
    text = repr((span.name, dict(span.attributes or {}), span.status.description,
                 [(e.name, dict(e.attributes or {})) for e in span.events]))
    assert key not in text and "REDACTED" in text


def test_log_filter_redacts_message_args_and_extras() -> None:
    """A record's message, args and extra fields are redacted in place."""
    rec = logging.LogRecord("x", logging.INFO, "f", 1, "calling with %s", ("sk-abcdef0123456789",),
                            None)
    rec.api = "Bearer sk-abcdef0123456789"
    assert RedactingFilter().filter(rec)
    assert rec.getMessage() == "calling with REDACTED"
    assert "sk-" not in rec.api
