"""OTLP protobuf <-> OTLP JSON (the specification's JSON encoding).

OTLP JSON differs from protobuf's canonical JSON mapping: trace and span ids
are hex strings (not base64), field names are lowerCamelCase, enums are
integers, and 64-bit integers may be strings or numbers. Receivers must
accept ids in any case and ignore unknown fields.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

__all__ = ["SIGNALS", "OTLPDecodeError", "decode", "from_json", "request_class", "to_json"]

SIGNALS: Final = ("traces", "metrics", "logs")
_ID_KEYS: Final = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id",
                             "parent_span_id"})


class OTLPDecodeError(ValueError):
    """A body that is not a valid OTLP request for its signal."""


def request_class(signal: str) -> Any:
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
        return ExportTraceServiceRequest
    if signal == "metrics":
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )
        return ExportMetricsServiceRequest
    if signal == "logs":
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
        return ExportLogsServiceRequest
    raise ValueError(f"unknown signal {signal!r}")


def response_class(signal: str) -> Any:
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )
        return ExportTraceServiceResponse
    if signal == "metrics":
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceResponse,
        )
        return ExportMetricsServiceResponse
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
    return ExportLogsServiceResponse


def _ids_to(obj: Any, conv: Any) -> Any:
    if isinstance(obj, dict):
        return {k: (conv(v) if k in _ID_KEYS and isinstance(v, str) else _ids_to(v, conv))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_ids_to(v, conv) for v in obj]
    return obj


def _b64_to_hex(v: str) -> str:
    return base64.b64decode(v).hex()


def _hex_to_b64(v: str) -> str:
    if v == "":
        return ""
    try:
        raw = bytes.fromhex(v)
    except ValueError:
        raise OTLPDecodeError(f"trace/span id {v[:40]!r} is not hex") from None
    return base64.b64encode(raw).decode()


def to_json_obj(message: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    d = MessageToDict(message, use_integers_for_enums=True, preserving_proto_field_name=False)
    return _ids_to(d, _b64_to_hex)  # type: ignore[no-any-return]


def to_json(message: Any) -> str:
    """An OTLP request message as one line of OTLP JSON."""
    return json.dumps(to_json_obj(message), separators=(",", ":"))


def from_json(signal: str, text: str | bytes) -> Any:
    """Parse OTLP JSON into the request message of ``signal`` (unknown fields ignored)."""
    from google.protobuf.json_format import ParseDict, ParseError

    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OTLPDecodeError(f"body is not JSON: {exc}") from None
    except RecursionError:
        raise OTLPDecodeError("body is not OTLP JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise OTLPDecodeError("body must be a JSON object")
    msg = request_class(signal)()
    try:
        ParseDict(_ids_to(data, _hex_to_b64), msg, ignore_unknown_fields=True)
    except (ParseError, binascii.Error, TypeError, ValueError) as exc:
        raise OTLPDecodeError(f"not an OTLP {signal} request: {exc}") from None
    except RecursionError:
        raise OTLPDecodeError(f"not an OTLP {signal} request: nested too deeply") from None
    return msg


def decode(signal: str, body: bytes, content_type: str) -> Any:
    """Decode a request body (protobuf or JSON) into its request message."""
    if "json" in content_type:
        return from_json(signal, body)
    from google.protobuf.message import DecodeError

    msg = request_class(signal)()
    try:
        msg.ParseFromString(body)
    except (DecodeError, ValueError) as exc:
        raise OTLPDecodeError(f"body is not an OTLP {signal} protobuf: {exc}") from None
    return msg
