"""The SDK's OTLP/HTTP span exporter, encoding with :mod:`._otlp_encode`.

:class:`FastOTLPSpanExporter` is the SDK's ``OTLPSpanExporter`` (its HTTP client,
retries, compression, headers, self-metrics, request size limit and shutdown),
with ``export`` mirroring the SDK's method body but serialising with
:func:`~routerscope.telemetry._otlp_encode.encode_spans_bytes` instead of the
module-global ``encode_spans``, which stays untouched for the host.

The mirrored body uses private parts of the SDK exporter (``_client``,
``_metrics``, ``_max_request_size``, ``_shutdown`` and two helpers of its
``_common`` module). Built against an SDK without them, the exporter says so
once at debug and exports with the SDK's own ``export``. If the fast encoder
raises for a batch, that batch is encoded by the SDK's encoder (and the error
counted as ``otlp.encode``), so no batch is lost to it.

Imported on the first export only (it imports the SDK exporter and protobuf).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import trace_exporter as _sdk
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

from routerscope.core.otel import swallowed
from routerscope.telemetry._otlp_encode import encode_spans_bytes

__all__ = ["FastOTLPSpanExporter"]

_logger = logging.getLogger(__name__)
# the SDK exporter's own logger: its lines read the same, and routerscope's filter on it applies
_sdk_logger = logging.getLogger(_sdk.__name__)

_said_fallback = False


def _sdk_helpers() -> tuple[Any, Any] | None:
    """The SDK's request size check and its error class, if this SDK has them."""
    try:
        common = importlib.import_module("opentelemetry.exporter.otlp.proto.http._common")
        return common._is_request_too_large, common.RequestPayloadTooLargeError
    except (ImportError, AttributeError):
        return None


_HELPERS = _sdk_helpers()


def _has_private_parts(exporter: OTLPSpanExporter) -> bool:
    """Whether the built SDK exporter has what the mirrored ``export`` uses."""
    return (_HELPERS is not None
            and callable(getattr(getattr(exporter, "_client", None), "export", None))
            and callable(getattr(getattr(exporter, "_metrics", None), "export_operation", None))
            and isinstance(getattr(exporter, "_max_request_size", None), int)
            and isinstance(getattr(exporter, "_shutdown", None), bool))


class FastOTLPSpanExporter(OTLPSpanExporter):
    """``OTLPSpanExporter`` whose requests are encoded by :func:`encode_spans_bytes`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        global _said_fallback
        super().__init__(*args, **kwargs)
        self._fast = _has_private_parts(self)
        if not self._fast and not _said_fallback:
            _said_fallback = True
            _logger.debug("routerscope: this OTLPSpanExporter lacks the parts the fast encoder "
                          "relies on; spans are encoded by the SDK's own export")

    @property
    def fast(self) -> bool:
        """Whether exports encode with the fast encoder (False: the SDK's own export)."""
        return self._fast

    def shutdown(self) -> None:
        """The SDK exporter's shutdown (typed here)."""
        super().shutdown()  # type: ignore[no-untyped-call]

    def _encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        try:
            return encode_spans_bytes(spans)
        except Exception:  # noqa: BLE001 - the SDK's encoder takes the batch instead
            swallowed("otlp.encode")
        return encode_spans(spans).SerializePartialToString()  # type: ignore[no-any-return]

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self._fast:
            return super().export(spans)
        if self._shutdown:
            _sdk_logger.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        assert _HELPERS is not None  # checked with the private parts
        too_large, too_large_error = _HELPERS
        with self._metrics.export_operation(len(spans)) as result:
            try:
                serialized_data = self._encode(spans)
            except Exception as error:  # noqa: BLE001 - as the SDK: a batch it cannot encode fails
                _sdk_logger.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE

            if too_large(serialized_data, self._max_request_size):
                _sdk_logger.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size "
                    "%d bytes.", len(serialized_data), self._max_request_size)
                result.error = too_large_error(
                    f"Serialized span request size {len(serialized_data)} bytes exceeds "
                    f"max_request_size {self._max_request_size} bytes.")
                return SpanExportResult.FAILURE

            export_result = self._client.export(serialized_data)
            if not export_result.success:
                result.error = export_result.error
                result.error_attrs = (
                    {HTTP_RESPONSE_STATUS_CODE: export_result.status_code}
                    if export_result.status_code is not None else None)
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
