"""Structured events: JSON on the console, OTel log records linked to their trace."""

from __future__ import annotations

import json

from routerscope.testing import FakeProvider, OTLPReceiver, attrs_of

from .conftest import KEY, run_python

CODE = """
import logging, routerscope.auto, structlog
from opentelemetry import trace
from routerscope.telemetry import shutdown
log = structlog.get_logger("app")
with trace.get_tracer("t").start_as_current_span("work") as span:
    log.info("structured inside", model="m1", tokens=3)
    logging.getLogger("app.std").warning("stdlib inside %s", "span")
    print(format(span.get_span_context().trace_id, "032x"))
log.info("outside", key="{key}")
shutdown()
"""


def test_events_are_json_and_link_to_traces(receiver: OTLPReceiver,
                                            provider: FakeProvider) -> None:
    """structlog and stdlib records become JSON lines and OTel logs with the span's ids."""
    out = run_python(CODE.replace("{key}", KEY), {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                                                  "ROUTERSCOPE_MEMORY_MONITOR": "0"})
    assert out.returncode == 0, out.stderr
    trace_id = out.stdout.strip()
    lines = [json.loads(x) for x in out.stderr.splitlines() if x.startswith("{")]
    inside = next(x for x in lines if x["event"] == "structured inside")
    assert inside["trace_id"] == trace_id and inside["level"] == "info"
    assert inside["model"] == "m1" and "timestamp" in inside and len(inside["span_id"]) == 16
    recs = {r.body.string_value: r for _, r in receiver.logs()}
    s = recs["structured inside"]
    assert s.trace_id.hex() == trace_id and attrs_of(s.attributes)["tokens"] == 3
    assert recs["stdlib inside span"].trace_id.hex() == trace_id
    assert recs["stdlib inside span"].severity_text == "WARN"
    assert recs["outside"].trace_id == b""
    assert attrs_of(recs["outside"].attributes)["key"] == "REDACTED"
    assert KEY not in out.stderr
