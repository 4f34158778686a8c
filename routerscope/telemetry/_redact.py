"""Secrets out of telemetry: API keys, bearer tokens, credentials in URLs.

* :func:`redact` rewrites a string: ``sk-...``/``sk-or-...`` keys and other
  providers' keys by prefix (``gsk_``, ``hf_``, ``AIza``, ``xai-``, ``AKIA``...),
  ``Bearer`` tokens, ``user:password@`` in URLs and the values of secret query
  parameters (``key=``, ``api_key=``, ``subscription-key=``, ``code=``,
  ``X-Amz-Signature=``, ``password=``... see ``_SECRET_PARAM``) become ``REDACTED``.
* :class:`RedactingSpanExporter` wraps the span exporter and hands it a
  redacted copy of any span whose attributes or events hold a secret.
* :class:`RedactingFilter` does the same for log records (message, args and
  the structured ``extra`` fields) on the handlers routerscope installs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from routerscope.core import otel

__all__ = ["REDACTED", "RedactingFilter", "RedactingSpanExporter", "has_secret", "redact",
           "redact_value"]

from routerscope.telemetry._secrets import _QUICK, REDACTED, has_secret, redact, redact_value

_found_clean: set[str] = set()
"""Strings a search found no secret in (a span's model, host, URL... repeat on every call)."""
_CLEAN_MAX: Final = 4096
_CLEAN_MAX_LEN: Final = 256
"""Longer strings are searched every time, never kept: the set holds at most ~1 MB."""


def _strings(attrs: Mapping[str, Any] | None, parts: list[str]) -> None:
    """Append the string values of ``attrs`` (and the strings inside list values) to ``parts``."""
    if not attrs:
        return
    # the SDK's BoundedAttributes keeps a plain dict: its values() runs in C, the Mapping's in Python
    inner = getattr(attrs, "_dict", None)
    clean = _found_clean
    for v in (inner if isinstance(inner, dict) else attrs).values():
        if isinstance(v, str):
            if v not in clean:
                parts.append(v)
        elif isinstance(v, tuple | list):
            parts.extend(x for x in v if isinstance(x, str) and x not in clean)


def _span_has_secret(span: ReadableSpan) -> bool:
    """One regex search over the span's name, status and every attribute and event string.

    Strings already found clean are skipped; the short ones searched now are
    remembered when nothing is found (a match inside one string is a match in the
    joined text, since the pattern looks at no context; the set is emptied when
    it is full).
    """
    parts: list[str] = [] if span.name in _found_clean else [span.name]
    _strings(getattr(span, "_attributes", None) or span.attributes, parts)  # no read-only proxy
    for e in span.events:
        parts.append(e.name)
        _strings(e.attributes, parts)
    description = span.status.description
    if description is not None:
        parts.append(description)
    if not parts:
        return False
    if _QUICK.search("\n".join(parts)) is not None:
        return True
    short = [p for p in parts if len(p) <= _CLEAN_MAX_LEN]  # not prompts, stack traces...
    if len(_found_clean) + len(short) > _CLEAN_MAX:
        _found_clean.clear()
    _found_clean.update(short)
    return False


def _clean(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: redact_value(v) for k, v in (attrs or {}).items()}


class RedactingSpanExporter(SpanExporter):
    """Exports through ``inner``, a redacted copy of each span that carries a secret.

    It runs where the batch processor exports (its worker thread), not where a
    span ends: the application's thread pays nothing for the check. A span whose
    copy cannot be made is dropped rather than exported unredacted.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        out: list[ReadableSpan] = []
        for span in spans:
            if _span_has_secret(span):
                try:
                    span = _redacted_copy(span)
                except Exception:  # noqa: BLE001 - better to drop than to leak
                    otel.swallowed("traces.redact")
                    continue
            out.append(span)
        return self.inner.export(out)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _redacted_copy(span: ReadableSpan) -> ReadableSpan:
    from opentelemetry.trace import Status

    status = span.status
    if status.description:
        status = Status(status.status_code, redact(status.description))
    events = tuple(Event(redact(e.name), _clean(e.attributes), e.timestamp) for e in span.events)
    return ReadableSpan(
        name=redact(span.name), context=span.context, parent=span.parent,
        resource=span.resource, attributes=_clean(span.attributes), events=events,
        links=span.links, kind=span.kind, status=status, start_time=span.start_time,
        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope,
    )


_RECORD_FIELDS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


class RedactingFilter(logging.Filter):
    """Redacts a record's message, args and extra fields; fails closed.

    Every redacted value is computed first and applied only if all succeeded:
    on an internal error the record is dropped (``False``), never passed on
    partly redacted, as :class:`RedactingSpanExporter` drops a span.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = redact(record.msg) if isinstance(record.msg, str) else record.msg
            args: Any = record.args
            if args:
                if isinstance(args, Mapping):
                    args = {k: redact_value(v) for k, v in args.items()}
                else:
                    args = tuple(redact_value(a) for a in args)
            extras = {k: redact_value(v) for k, v in vars(record).items()
                      if k not in _RECORD_FIELDS and isinstance(v, str | list | tuple)}
        except Exception:  # noqa: BLE001 - better to drop than to leak
            otel.swallowed("logs.redact")
            return False
        record.msg, record.args = msg, args
        for k, v in extras.items():
            setattr(record, k, v)
        return True
