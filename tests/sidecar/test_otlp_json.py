"""The OTLP JSON codec on its own: the specification's examples and its encoding rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routerscope.otlp_json import OTLPDecodeError, decode, from_json, to_json

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "otlp-examples"
ROUTE = {"trace": "traces", "metrics": "metrics", "logs": "logs", "events": "logs"}


def _examples() -> list[Path]:
    if not EXAMPLES.is_dir():
        pytest.skip(f"the specification's OTLP examples are not here ({EXAMPLES}); "
                    "they come with ../shared/testdata")
    return sorted(EXAMPLES.glob("*.json"))


def test_spec_examples_round_trip() -> None:
    """Each example parses, and JSON -> protobuf -> JSON -> protobuf gives the same message."""
    for path in _examples():
        signal = ROUTE[path.stem]
        msg = from_json(signal, path.read_bytes())
        again = from_json(signal, to_json(msg))
        assert again == msg and msg.ByteSize() > 0, path.name
        assert decode(signal, msg.SerializeToString(), "application/x-protobuf") == msg


def test_ids_are_hex_in_any_case_and_written_lower() -> None:
    """Trace/span ids are read as hex in either case and written back as lower-case hex."""
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "eee19b7ec3c1b174",
         "name": "s", "startTimeUnixNano": "1", "endTimeUnixNano": 2}]}]}]}
    msg = from_json("traces", json.dumps(body))
    span = msg.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    out = json.loads(to_json(msg))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert out["traceId"] == "5b8efff798038103d269b633813fc60c"
    assert out["spanId"] == "eee19b7ec3c1b174" and out["endTimeUnixNano"] == "2"


@pytest.mark.parametrize(("body", "message"), [
    (b"{nope", "body is not JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "not hex"),
    (b'{"resourceSpans": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested too deeply"),
    (b'{"resourceSpans": "x"}', "not an OTLP traces request"),
])
def test_bad_json_is_a_decode_error_with_a_reason(body: bytes, message: str) -> None:
    """Malformed or pathological JSON raises OTLPDecodeError saying what is wrong."""
    with pytest.raises(OTLPDecodeError, match=message):
        from_json("traces", body)


def test_bad_protobuf_is_a_decode_error() -> None:
    """Bytes that are not the signal's protobuf raise OTLPDecodeError."""
    with pytest.raises(OTLPDecodeError, match="protobuf"):
        decode("traces", b"\xff\x00garbage", "application/x-protobuf")
