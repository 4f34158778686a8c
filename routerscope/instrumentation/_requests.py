"""Instrumentation of an existing router's HTTP: GenAI calls, pool reuse, first request.

* :func:`patch_genai` wraps ``requests.Session.send`` *outside* the requests
  instrumentation: a call to an OpenAI-compatible ``.../chat/completions``,
  ``.../completions`` or ``.../embeddings`` gets a GenAI CLIENT span (parent of
  the HTTP span) and the GenAI metrics, with the model from the request body,
  the provider from the host and the tokens from the response's ``usage``
  (streamed SSE responses too, read as the application reads them). Other
  requests pass through after one string check.
* :func:`patch_urllib3_pools` counts connections opened and requests sent for
  every urllib3 pool in the process (our pooled sessions count themselves).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_http_instrumentation as _suppress_http
from opentelemetry.propagate import inject

from routerscope.core import signals
from routerscope.core.genai import LLMCall, is_recording, operation_from_path, provider_from_host
from routerscope.core.lazy import record_startup_phase
from routerscope.core.otel import record_later
from routerscope.core.pool import pool_stats, register_pool_observers
from routerscope.telemetry import redact

__all__ = ["patch_genai", "patch_urllib3_pools", "unpatch_genai", "unpatch_urllib3_pools"]

_logger = logging.getLogger("routerscope.telemetry")
_SUFFIXES: Final = ("completions", "embeddings", "completions/", "embeddings/")
_OTLP_PATHS: Final = ("/v1/traces", "/v1/metrics", "/v1/logs")
MAX_BODY_PARSE: Final = 4 * 1024 * 1024

_original_send: Any = None
_capture_content = False
_first_request_seen = False
_lock = threading.RLock()


def _note_first_request(url: str) -> None:
    global _first_request_seen
    if _first_request_seen:
        return
    if url.split("?", 1)[0].endswith(_OTLP_PATHS):  # our own exporter is not the router
        return
    _first_request_seen = True
    record_startup_phase(signals.PHASE_FIRST_REQUEST)


def _json_body(body: Any) -> dict[str, Any] | None:
    if body is None:
        return None
    if isinstance(body, bytes | bytearray):
        if len(body) > MAX_BODY_PARSE:
            return None
        try:
            data = json.loads(body)
        except ValueError:
            return None
    elif isinstance(body, str):
        try:
            data = json.loads(body)
        except ValueError:
            return None
    else:  # a file or generator body: not read, never consumed
        return None
    return data if isinstance(data, dict) else None


def _error_type_of(status: int, body: Any) -> str | None:
    if status >= 400:
        return str(status)
    if isinstance(body, dict) and body.get("error") is not None:
        err = body["error"]
        code = err.get("code") if isinstance(err, dict) else None
        return str(code) if code is not None else "provider_error"
    return None


def _sse_lines(call: LLMCall, lines: Iterator[Any]) -> Iterator[Any]:
    """Pass the application's SSE lines through, reading usage and errors on the way."""
    error: str | None = None
    try:
        for line in lines:
            text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
            if isinstance(text, str) and text.startswith("data:"):
                payload = text[5:].strip()
                if payload and payload != "[DONE]":
                    try:
                        chunk = json.loads(payload)
                    except ValueError:
                        chunk = None
                    if isinstance(chunk, dict):
                        call.observe_body(chunk)
                        error = error or _error_type_of(200, chunk)
            yield line
    except GeneratorExit:
        raise
    except BaseException as exc:
        call.end(type(exc).__name__, exception=exc)
        raise
    call.end(error)


def _send(self: Any, request: Any, **kwargs: Any) -> Any:
    send = _original_send
    url = request.url or ""
    if not _first_request_seen:
        _note_first_request(url)
    path = url.split("?", 1)[0]
    if not path.endswith(_SUFFIXES) or is_recording():  # not LLM, or already recorded
        return send(self, request, **kwargs)
    parts = urlsplit(url)
    op = operation_from_path(parts.path)
    if op is None:
        return send(self, request, **kwargs)
    try:
        body = _json_body(request.body)
        host = parts.hostname or ""
        model = body.get("model") if body else None
        http_attrs: dict[str, Any] = {
            "http.request.method": request.method or "POST", "server.address": host,
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
            "url.scheme": parts.scheme,
        }
        start_attrs = {**http_attrs, "url.full": redact(url)}
        if _capture_content and body:
            msgs = body.get("messages", body.get("prompt", body.get("input")))
            start_attrs[signals.GEN_AI_INPUT_MESSAGES] = json.dumps(msgs)[:65536]
        call = LLMCall(operation=op, model=model if isinstance(model, str) else None,
                       provider=provider_from_host(host), server_address=host,
                       server_port=parts.port, request_params=body,
                       span_attributes=start_attrs)
    except Exception:  # noqa: BLE001 - instrumentation never breaks the call
        return send(self, request, **kwargs)
    # One span for an LLM call: the GenAI span carries the HTTP attributes and the
    # requests instrumentation is suppressed inside it (so no second span is made).
    start = time.perf_counter()
    try:
        with trace.use_span(call.span, end_on_exit=False), _suppress_http():
            if request.headers is not None:
                inject(request.headers)
            resp = send(self, request, **kwargs)
    except BaseException as exc:
        _record_http(http_attrs, start, None, type(exc).__qualname__, call.span)
        call.end(type(exc).__name__, exception=exc)
        raise
    try:
        _record_http(http_attrs, start, resp.status_code, None, call.span)
        _observe_response(call, resp, bool(kwargs.get("stream")),
                          {"http.response.status_code": resp.status_code})
    except Exception:  # noqa: BLE001
        call.end()
    return resp


def _record_http(attrs: dict[str, Any], start: float, status: int | None,
                 error: str | None, span: Any = None) -> None:
    """http.client.request.duration (stable semconv) for an LLM call, off the hot path."""
    a = dict(attrs)
    if status is not None:
        a["http.response.status_code"] = status
        if status >= 400:
            a["error.type"] = str(status)
    if error is not None:
        a["error.type"] = error
    record_later(signals.HTTP_CLIENT_REQUEST_DURATION, time.perf_counter() - start, a, span=span)


def _observe_response(call: LLMCall, resp: Any, stream: bool,
                      end_attrs: dict[str, Any]) -> None:
    ctype = resp.headers.get("Content-Type", "")
    if stream and "text/event-stream" in ctype and resp.status_code < 400:
        original = resp.iter_lines

        def iter_lines(*args: Any, **kwargs: Any) -> Iterator[Any]:
            return _sse_lines(call, original(*args, **kwargs))

        call.span.set_attributes(end_attrs)
        resp.iter_lines = iter_lines
        weakref.finalize(resp, call.end)  # a stream the app abandons still ends the span
        return
    data = None
    if not stream and "json" in ctype:  # the body is already read when stream=False
        try:
            data = resp.json()
        except ValueError:
            data = None
        call.observe_body(data)
        if _capture_content and isinstance(data, dict) and call.span.is_recording():
            out = [c.get("message") or c.get("text") for c in data.get("choices") or []
                   if isinstance(c, dict)]
            call.span.set_attribute(signals.GEN_AI_OUTPUT_MESSAGES, json.dumps(out)[:65536])
    call.end(_error_type_of(resp.status_code, data), span_attributes=end_attrs)


def patch_genai(*, capture_content: bool = False) -> None:
    """Wrap ``requests.Session.send`` (outermost; calling it again re-wraps on top)."""
    global _original_send, _capture_content
    import requests

    with _lock:
        _capture_content = capture_content
        current = requests.Session.send
        if current is _send:
            return
        if _original_send is not None and getattr(current, "__wrapped__", None) is _send:
            return
        _original_send = current
        requests.Session.send = _send  # type: ignore[method-assign]


def instrument_beneath(instrument: Any) -> None:
    """Run ``instrument()`` (which wraps ``Session.send``) beneath our GenAI wrapper.

    The wrapper is taken off, ``instrument()`` wraps the original ``send``, and
    the wrapper goes back on top, all under one lock, so the GenAI span stays
    the outermost and no wrapper ever wraps itself.
    """
    with _lock:
        wrapped = _original_send is not None
        capture = _capture_content
        if wrapped:
            unpatch_genai()
        try:
            instrument()
        finally:
            if wrapped:
                patch_genai(capture_content=capture)


def unpatch_genai() -> None:
    global _original_send
    import requests

    with _lock:
        if requests.Session.send is _send and _original_send is not None:
            requests.Session.send = _original_send  # type: ignore[method-assign]
        _original_send = None


# --- every urllib3 pool ------------------------------------------------------------------

_pool_originals: dict[str, Any] = {}


def patch_urllib3_pools() -> None:
    """Count connections and requests of every urllib3 pool, per host and port."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool

    with _lock:
        if _pool_originals:
            return
        stats = pool_stats()
        orig_connect = HTTPConnection.connect
        orig_tls_connect = HTTPSConnection.connect
        orig_make = HTTPConnectionPool._make_request

        def connect(self: Any) -> None:
            orig_connect(self)
            if not getattr(self, "_routerscope_counted", False):
                stats.add_connection(self.host, self.port or 80)

        def tls_connect(self: Any) -> None:
            orig_tls_connect(self)
            if not getattr(self, "_routerscope_counted", False):
                stats.add_connection(self.host, self.port or 443)

        def make_request(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not getattr(self, "_routerscope_counted", False):
                stats.add_request(self.host, self.port or (443 if self.scheme == "https" else 80))
            return orig_make(self, *args, **kwargs)

        _pool_originals.update(connect=orig_connect, tls_connect=orig_tls_connect,
                               make=orig_make)
        HTTPConnection.connect = connect  # type: ignore[method-assign]
        HTTPSConnection.connect = tls_connect  # type: ignore[method-assign]
        HTTPConnectionPool._make_request = make_request  # type: ignore[method-assign]
    register_pool_observers()


def unpatch_urllib3_pools() -> None:
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool

    with _lock:
        if not _pool_originals:
            return
        HTTPConnection.connect = _pool_originals["connect"]  # type: ignore[method-assign]
        HTTPSConnection.connect = _pool_originals["tls_connect"]  # type: ignore[method-assign]
        HTTPConnectionPool._make_request = _pool_originals["make"]  # type: ignore[method-assign]
        _pool_originals.clear()
