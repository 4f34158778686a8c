"""The fast OTLP trace encoder writes what the SDK's encoder writes, and the exporter uses it."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from routerscope.core import signals
from routerscope.core.otel import internal_errors
from routerscope.telemetry import _otlp_encode, _otlp_span_exporter
from routerscope.telemetry._otlp_encode import (
    ATTRIBUTE_CACHE_SIZE,
    attribute_cache_size,
    clear_attribute_cache,
    encode_spans_bytes,
)
from routerscope.telemetry._otlp_span_exporter import FastOTLPSpanExporter
from routerscope.testing import FakeProvider, OTLPReceiver, attrs_of

from .conftest import run_python

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
RES = Resource({"service.name": "router", "host.name": "h1", "process.pid": 4242},
               schema_url="https://opentelemetry.io/schemas/1.21.0")
SCOPE = InstrumentationScope("routerscope", "1.2.3", "https://example.test/schema",
                             {"scope.attr": "x", "n": 3})


def _ctx(span_id: int, *, remote: bool = False, trace_state: TraceState | None = None,
         trace_id: int = TRACE_ID) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=remote, trace_flags=TraceFlags(1),
                       trace_state=trace_state)


def _span(name: str = "chat demo/small", *, attributes: Any = None,
          resource: Resource = RES, scope: InstrumentationScope | None = SCOPE,
          **kwargs: Any) -> ReadableSpan:
    kwargs.setdefault("context", _ctx(0x00F067AA0BA902B7))
    kwargs.setdefault("start_time", 1_700_000_000_000_000_000)
    kwargs.setdefault("end_time", 1_700_000_000_250_000_000)
    return ReadableSpan(name, attributes=attributes, resource=resource,
                        instrumentation_scope=scope, **kwargs)


def _same(spans: Sequence[ReadableSpan]) -> None:
    """Ours decodes equal to the SDK's message and is byte for byte its deterministic form."""
    sdk = encode_spans(spans)
    ours = encode_spans_bytes(spans)
    assert ExportTraceServiceRequest.FromString(ours) == sdk
    assert ours == sdk.SerializeToString(deterministic=True)


EVERY_VALUE: dict[str, Any] = {
    "str": "chat", "empty.str": "", "unicode": "żółw 🐢 \u0000 tab\t",
    "true": True, "false": False,
    "zero": 0, "int": 8080, "negative": -1, "int64.min": -(2**63), "int64.max": 2**63 - 1,
    "float": 0.25, "float.zero": 0.0, "float.negzero": -0.0, "nan": math.nan,
    "inf": math.inf, "-inf": -math.inf,
    "bytes": b"\x00\xff\x10", "empty.bytes": b"",
    "strs": ("stop", "length", ""), "bools": (True, False), "ints": (0, -5, 2**40),
    "floats": (1.5, -0.0), "bytess": (b"a", b""), "empty.seq": (), "list": [1, 2],
    "none": None, "nones": (None, "a"), "nested": [["a", 1], {"k": 2.5}],
    "mapping": {"a": 1, 2: "b", "c": [True]}, "": "empty key",
}


def test_every_value_type_encodes_as_the_sdk_does() -> None:
    """Attributes of every type the SDK takes, on a span, event, link, resource and scope."""
    link = Link(_ctx(0x1111, remote=True), EVERY_VALUE)
    event = Event("exception", EVERY_VALUE, timestamp=1_700_000_000_100_000_000)
    resource = Resource(EVERY_VALUE)
    scope = InstrumentationScope("s", None, None, EVERY_VALUE)
    _same([_span(attributes=EVERY_VALUE, events=[event], links=[link], resource=resource,
                 scope=scope)])


def test_every_span_field_encodes_as_the_sdk_does() -> None:
    """Ids, trace state, parents local and remote, kinds, times, status, dropped counts, flags."""
    state = TraceState([("vendor", "a=1"), ("other", "x")])
    bounded = BoundedAttributes(maxlen=2, attributes={"a": 1, "b": 2, "c": 3, "d": 4})
    events = BoundedList.from_seq(1, [Event("one", {"k": "v"}, 5), Event("two", None, 6)])
    links = BoundedList.from_seq(1, [Link(_ctx(7, trace_state=state), bounded),
                                     Link(_ctx(8, remote=True))])
    spans = [
        _span(context=_ctx(1, trace_state=state), parent=_ctx(2, remote=True),
              kind=SpanKind.SERVER, attributes=bounded, events=events, links=links,
              status=Status(StatusCode.ERROR, "it broke")),
        _span("", context=_ctx(3), parent=_ctx(4), kind=SpanKind.CLIENT, start_time=None,
              end_time=None, status=Status(StatusCode.OK)),
        _span("p", context=_ctx(5, trace_id=1), kind=SpanKind.PRODUCER, start_time=0, end_time=1,
              status=Status(StatusCode.ERROR)),
        _span("c", context=_ctx(2**64 - 1, trace_id=2**128 - 1), kind=SpanKind.CONSUMER,
              events=[Event("", BoundedAttributes(0, {"x": 1}), 0)],
              links=[Link(_ctx(0, trace_id=0), {})]),
        _span("i", context=_ctx(6), kind=SpanKind.INTERNAL, scope=None,
              resource=Resource({}), status=None),
    ]
    assert spans[0].dropped_attributes == 2 and spans[0].dropped_events == 1
    _same(spans)


class _PlainMapping(Mapping[str, Any]):
    """A read-only mapping with no copy(): walked through items() as the SDK walks it."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_span_attributes_in_any_mapping_encode_as_the_sdk_does() -> None:
    """Attributes in a dict, in BoundedAttributes, and in a mapping without copy()."""
    values: dict[str, Any] = {"a": "x", "b": 2, "c": (True,)}
    _same([_span(attributes=values), _span(attributes=BoundedAttributes(None, values)),
           _span(attributes=_PlainMapping(values))])


def test_resources_and_scopes_group_as_the_sdk_groups_them() -> None:
    """Spans of several resources and scopes, interleaved, equal copies grouped together."""
    other = Resource({"service.name": "other"})
    equal_copy = Resource(dict(RES.attributes), RES.schema_url)
    scopes = [SCOPE, InstrumentationScope("requests", "0.1"), None,
              InstrumentationScope("routerscope", "1.2.3", "https://example.test/schema",
                                   {"scope.attr": "x", "n": 3})]  # equal to SCOPE
    spans = [_span(f"s{i}", context=_ctx(i + 1), resource=(RES, other, equal_copy)[i % 3],
                   scope=scopes[i % 4]) for i in range(24)]
    _same(spans)
    groups = ExportTraceServiceRequest.FromString(encode_spans_bytes(spans)).resource_spans
    assert [len(g.scope_spans) for g in groups] == [3, 3]


def test_values_the_sdk_cannot_encode_are_left_out_as_it_does(
        caplog: pytest.LogCaptureFixture) -> None:
    """An int beyond int64, a lone surrogate, an unknown type or key: that attribute only goes."""
    bad: dict[Any, Any] = {"ok.before": 1, "big": 2**63, "small": -(2**63) - 1, "surrogate": "\ud800",
           "in.seq": ("a", "\udfff"), "object": object(), "set": {1}, 7: "int key",
           "\ud800": "bad key", "ok.after": "kept"}
    spans = [_span(attributes=bad, events=[Event("e", bad)], links=[Link(_ctx(9), bad)])]
    with caplog.at_level(logging.ERROR):
        _same(spans)
    span = ExportTraceServiceRequest.FromString(encode_spans_bytes(spans)) \
        .resource_spans[0].scope_spans[0].spans[0]
    assert [kv.key for kv in span.attributes] == ["ok.before", "ok.after"]
    assert any("Failed to encode key big" in r.getMessage() and r.name == _otlp_encode.__name__
               for r in caplog.records)


def test_a_batch_the_sdk_rejects_is_rejected() -> None:
    """An unknown span kind or an id out of range fails the whole batch, as in the SDK."""
    for span in (_span(kind="not a kind"),
                 _span(context=_ctx(2**64)), _span(start_time=-1), _span(name=3)):  # type: ignore[arg-type]
        with pytest.raises(Exception):  # noqa: B017 - the SDK raises several types
            encode_spans([span])
        with pytest.raises(Exception):  # noqa: B017
            encode_spans_bytes([span])


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 2 else 6)
    if kind == 0:
        return rng.choice(["chat", "", "demo/small", "ü" * rng.randrange(5), "x" * 300])
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, 1, -1, 2**63 - 1, -(2**63), rng.randrange(-(2**40), 2**40)])
    if kind == 3:
        return rng.choice([0.0, -0.0, rng.uniform(-1e6, 1e6), math.inf])
    if kind == 4:
        return rng.randbytes(rng.randrange(4))
    if kind == 5:
        return None
    if kind == 6:
        return tuple(rng.choice(["stop", "length", "a"]) for _ in range(rng.randrange(4)))
    if kind == 7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randrange(3))}


def _random_attributes(rng: random.Random) -> dict[str, Any]:
    keys = ["gen_ai.operation.name", "server.address", "server.port", "gen_ai.request.model",
            "x", "y", "z", ""]
    return {rng.choice(keys) + str(rng.randrange(3)): _random_value(rng)
            for _ in range(rng.randrange(8))}


def _random_spans(rng: random.Random, n: int) -> Iterator[ReadableSpan]:
    resources = [RES, Resource({"service.name": "b"}), Resource({}, "https://s"),
                 Resource(dict(RES.attributes), RES.schema_url)]
    scopes = [SCOPE, None, InstrumentationScope("a"), InstrumentationScope("b", "2", "u", {"q": 1})]
    for i in range(n):
        parent = rng.choice([None, _ctx(rng.getrandbits(64)), _ctx(rng.getrandbits(64), remote=True)])
        state = rng.choice([None, TraceState([("k", str(i))])])
        yield _span(
            rng.choice(["chat m", "", "POST", f"span {i}"]),
            context=_ctx(rng.getrandbits(64), trace_id=rng.getrandbits(128), trace_state=state),
            parent=parent, kind=rng.choice(list(SpanKind)),
            attributes=_random_attributes(rng), resource=rng.choice(resources),
            scope=rng.choice(scopes),
            start_time=rng.choice([None, 0, rng.getrandbits(63)]),
            end_time=rng.choice([None, rng.getrandbits(64)]),
            events=[Event(f"e{j}", _random_attributes(rng), rng.getrandbits(60))
                    for j in range(rng.randrange(3))],
            links=[Link(_ctx(rng.getrandbits(64), remote=rng.random() < 0.5),
                        _random_attributes(rng)) for _ in range(rng.randrange(3))],
            status=rng.choice([Status(StatusCode.UNSET), Status(StatusCode.OK),
                               Status(StatusCode.ERROR, rng.choice(["boom", ""]))]),
        )


def test_random_spans_encode_as_the_sdk_does() -> None:
    """300 seeded random spans, span by span and as batches of mixed resources and scopes."""
    rng = random.Random(15)
    spans = list(_random_spans(rng, 300))
    for span in spans:
        _same([span])
    for start in range(0, 300, 60):
        _same(spans[start:start + 60])


def test_the_cache_does_not_change_the_output() -> None:
    """The same pairs again, True next to 1, and a cache that fills and empties: same bytes."""
    clear_attribute_cache()
    common = {"gen_ai.operation.name": "chat", "server.port": 443, "stream": True,
              "finish": ("stop",)}
    _same([_span(attributes=common)])
    assert attribute_cache_size() == 4
    _same([_span(attributes=common), _span(attributes=common)])
    _same([_span(attributes={"k": True}), _span(attributes={"k": 1}), _span(attributes={"k": 1.0}),
           _span(attributes={"k": ("1",)}), _span(attributes={"k": "1"})])
    many = {f"id.{i}": f"value {i}" for i in range(ATTRIBUTE_CACHE_SIZE + 100)}
    _same([_span(attributes=many), _span(attributes=many)])
    assert 0 < attribute_cache_size() <= ATTRIBUTE_CACHE_SIZE
    _same([_span(attributes=common)])


def _fast_exporter(receiver: OTLPReceiver) -> FastOTLPSpanExporter:
    exp = FastOTLPSpanExporter(endpoint=receiver.url + "/v1/traces", timeout=5)
    assert exp.fast
    return exp


def test_a_fast_encoder_error_falls_back_to_the_sdk_encoder(
        receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the fast encoder raises, the SDK's encodes the batch: it arrives, and it is counted."""
    def broken(spans: Sequence[ReadableSpan]) -> bytes:
        raise RuntimeError("encoder bug")

    monkeypatch.setattr("routerscope.telemetry._otlp_span_exporter.encode_spans_bytes", broken)
    before = internal_errors().get("otlp.encode", 0)
    exp = _fast_exporter(receiver)
    assert exp.export([_span(attributes={"gen_ai.operation.name": "chat"})]) \
        is SpanExportResult.SUCCESS
    exp.shutdown()
    assert [attrs_of(s.attributes) for _, s in receiver.spans()] == [
        {"gen_ai.operation.name": "chat"}]
    assert internal_errors()["otlp.encode"] == before + 1


def test_an_sdk_without_the_private_parts_exports_the_sdk_way(
        receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lacking a private part the mirrored export uses, the exporter uses the SDK's export."""
    exp = FastOTLPSpanExporter(endpoint=receiver.url + "/v1/traces", timeout=5)
    del exp._max_request_size
    assert not _otlp_span_exporter._has_private_parts(exp)
    monkeypatch.setattr(_otlp_span_exporter, "_HELPERS", None)  # an SDK without its helpers
    sdk_way = FastOTLPSpanExporter(endpoint=receiver.url + "/v1/traces", timeout=5)
    assert not sdk_way.fast
    assert sdk_way.export([_span()]) is SpanExportResult.SUCCESS
    sdk_way.shutdown()
    assert [s.name for _, s in receiver.spans()] == ["chat demo/small"]


def test_the_size_limit_and_shutdown_behave_as_the_sdk_exporter(receiver: OTLPReceiver) -> None:
    """A batch over max_request_size is dropped unsent; after shutdown exports fail."""
    exp = FastOTLPSpanExporter(endpoint=receiver.url + "/v1/traces", timeout=5,
                               max_request_size=400)
    assert exp.fast
    assert exp.export([_span(attributes={"big": "x" * 500})]) is SpanExportResult.FAILURE
    assert exp.export([_span()]) is SpanExportResult.SUCCESS
    exp.shutdown()
    assert exp.export([_span()]) is SpanExportResult.FAILURE
    assert [s.name for _, s in receiver.spans()] == ["chat demo/small"]


AUTO = """
import requests, routerscope.auto
from opentelemetry.exporter.otlp.proto.http import trace_exporter

def unusable(spans):
    raise AssertionError("the SDK exporter's module-global encoder was used")

trace_exporter.encode_spans = unusable  # routerscope's exporter must not need it
from routerscope.instrumentation import wait_instrumented
wait_instrumented(5)
body = {"model": "demo/small", "messages": [{"role": "user", "content": "hi"}]}
for _ in range(3):
    requests.post(URL + "/chat/completions", json=body, timeout=10).json()
"""


def test_auto_set_up_delivers_spans_through_the_fast_encoder(
        receiver: OTLPReceiver, provider: FakeProvider) -> None:
    """`import routerscope.auto`: GenAI spans reach a real receiver without the SDK's encode_spans."""
    out = run_python(f"URL = {provider.base_url!r}\n" + AUTO,
                     {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "enc",
                      "OTEL_BSP_SCHEDULE_DELAY": "100", "ROUTERSCOPE_MEMORY_MONITOR": "0"})
    assert out.returncode == 0, out.stderr
    chat = [(res, s) for res, s in receiver.spans() if s.name == "chat demo/small"]
    assert len(chat) == 3
    res, span = chat[0]
    a = attrs_of(span.attributes)
    assert res["service.name"] == "enc"
    assert a[signals.GEN_AI_OPERATION_NAME] == "chat"
    assert a[signals.GEN_AI_REQUEST_MODEL] == "demo/small"
    assert a[signals.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert span.flags == 0x100 and len(span.trace_id) == 16 and span.end_time_unix_nano > 0
    assert "AssertionError" not in out.stderr
