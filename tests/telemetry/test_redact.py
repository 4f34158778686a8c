"""Secret redaction in strings, spans and log records."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from routerscope.telemetry._redact import RedactingFilter, RedactingSpanExporter, redact


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
    tp.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(mem)))
    t = tp.get_tracer("t")
    with t.start_as_current_span("s", attributes={"url.full": "http://u:sk-0123456789abc@h/"}) as s:
        s.add_event("e", {"msg": "Bearer sk-0123456789abcdef"})
    with t.start_as_current_span("clean", attributes={"a": "b"}):
        pass
    dirty, clean = mem.get_finished_spans()
    assert dict(dirty.attributes or {})["url.full"] == "http://REDACTED:REDACTED@h/"
    assert "sk-" not in str(dict(dirty.events[0].attributes or {})["msg"])
    assert dict(clean.attributes or {})["a"] == "b"


@pytest.mark.parametrize("where", ["list_attribute", "event_name", "event_list", "status", "name"])
def test_span_processor_finds_a_secret_in_each_place(where: str) -> None:
    """The one pre-check sees a secret wherever a span holds it alone: the exported copy is redacted."""
    key = "sk-or-v1-0123456789abcdef"
    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(mem)))
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
    rec.api = "Bearer sk-abcdef0123456789"  # an `extra` field
    assert RedactingFilter().filter(rec)
    assert rec.getMessage() == "calling with REDACTED"
    assert "sk-" not in rec.__dict__["api"]


SECRET_QUERIES = [
    "subscription-key=S1", "code=S2", "X-Amz-Credential=S3", "X-Amz-Signature=S4",
    "X-Amz-Security-Token=S5", "password=S6", "client_secret=S7", "auth=S8", "access-token=S9",
    "sig=S10", "Signature=S11", "AWSAccessKeyId=S12", "X-Goog-Signature=S13", "key=S14",
    "api_key=S15", "token=S16", "api-key=S17", "access_token=S18",
]


def test_secret_query_parameter_values_redacted() -> None:
    """The values of secret query parameters become REDACTED; the names and other parameters stay."""
    for q in SECRET_QUERIES:
        name = q.split("=")[0]
        url = f"https://h/v1/chat/completions?api-version=2024-10-21&{q}&limit=10"
        assert redact(url) == (f"https://h/v1/chat/completions?api-version=2024-10-21&{name}=REDACTED"
                               "&limit=10"), q
        assert redact(f"https://h/x?{q}") == f"https://h/x?{name}=REDACTED", q
    assert redact("https://h/x?model=m&limit=10&design=1") == "https://h/x?model=m&limit=10&design=1"


PREFIXED_KEYS = [
    "gsk_DDDDKEYFOUR0123456789abcdef", "hf_abcdefghijklmnopqrstuvwxyzABCD",
    "AIzaSyA1234567890abcdefghijklmnopqrstu", "xai-abcdefghijklmnopqrstuvwx",
    "sk-ant-api03-abcdefghijklmnop", "pplx-abcdefghijklmnopqrstuvwx", "r8_abcdefghijklmnopqrstuvwx",
    "ghp_abcdefghijklmnopqrstuvwxyz0123", "github_pat_11ABCDEFG0123456789abcdef",
    "AKIAIOSFODNN7EXAMPLE",
]


def test_provider_keys_by_prefix_redacted_in_spans_and_logs() -> None:
    """Groq, Hugging Face, Google, xAI, Perplexity, Replicate, GitHub and AWS keys leave no trace."""
    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(mem)))
    for key in PREFIXED_KEYS:
        assert redact(f"using {key} now") == "using REDACTED now", key
        with tp.get_tracer("t").start_as_current_span("s", attributes={"note": f"key {key}"}):
            pass
        rec = logging.LogRecord("x", logging.WARNING, "f", 1, "groq key %s", (key,), None)
        assert RedactingFilter().filter(rec)
        assert key not in rec.getMessage(), key
    assert all(dict(s.attributes or {})["note"] == "key REDACTED" for s in mem.get_finished_spans())
    assert redact("hf_hub_download_timeout_seconds=5") == "hf_hub_download_timeout_seconds=5"
    assert len(mem.get_finished_spans()) == len(PREFIXED_KEYS)


def test_strings_found_clean_never_hide_a_later_secret() -> None:
    """Clean strings are remembered (and forgotten when too many); a secret next to them is still redacted."""
    from routerscope.telemetry import _redact

    key = "sk-or-v1-0123456789abcdef"
    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(mem)))
    t = tp.get_tracer("t")
    with t.start_as_current_span("chat m", attributes={"model": "m", "host": "h"}):
        pass
    assert {"chat m", "m", "h"} <= _redact._found_clean
    with t.start_as_current_span("chat m", attributes={"prompt": "x" * 10_000}):
        pass
    assert "x" * 10_000 not in _redact._found_clean  # long strings are never kept
    for i in range(_redact._CLEAN_MAX + 10):  # fills the set: it is emptied, not grown
        with t.start_as_current_span("chat m", attributes={"id": f"id-{i}"}):
            pass
    assert len(_redact._found_clean) <= _redact._CLEAN_MAX
    for _ in range(2):  # a string that held a secret is never taken for clean
        with t.start_as_current_span("chat m", attributes={"model": "m", "host": "h",
                                                          "auth": f"Bearer {key}", "reasons": ["stop", key]}):
            pass
    for last in mem.get_finished_spans()[-2:]:
        assert key not in repr(dict(last.attributes or {}))
        assert dict(last.attributes or {})["model"] == "m"
