"""The HTTP-level GenAI recorder every library hook shares.

A hook (requests, httpx, httpx2, aiohttp) calls :func:`start` with the
request's method, URL and body before it sends. For a request that is not an
LLM call (:func:`routerscope.core.genai.recognise`), that a layer above
already records (:func:`routerscope.core.genai.is_recording`), or that
telemetry itself sends (the SDK exports under ``suppress_instrumentation``),
it returns None after a few string checks. Otherwise it returns a
:class:`Tracked` call: the hook sends inside :meth:`Tracked.scope` (the span
is current, lower layers see the GenAI marker and the HTTP instrumentations
are suppressed, so one call gives one span whatever the stack), reports the
response head with :meth:`Tracked.response`, feeds the body bytes to
:meth:`Tracked.feed` as the application reads them, and ends with
:meth:`Tracked.finish` (end of body), :meth:`Tracked.close` (the body closed,
early or not) or :meth:`Tracked.fail` (an exception, the caller's unchanged).

Streamed bodies (``text/event-stream``) go through the one SSE parser
(:class:`routerscope.core.sse.SSEDecoder`) event by event: usage, finish
reasons, time to first chunk, and errors carried inside a 200 stream.

When the current span is the ``anthropic`` SDK's own span for this call, that
span is enriched (attributes, metrics) instead of a second one started.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import sys
import time
import weakref
from collections.abc import Iterator, MutableMapping
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace

from routerscope.core import leanjson, otel, signals
from routerscope.core.genai import (
    STREAM_CLOSED,
    LLMCall,
    Recognised,
    error_type_of,
    is_recording,
    provider_from_host,
    recognise,
    start_recording,
    stop_recording,
)
from routerscope.core.sse import DONE, SSEDecoder, json_data

__all__ = ["MAX_BODY_PARSE", "Tracked", "is_suppressed", "sdk_call", "set_capture_content", "start"]

_logger = logging.getLogger("routerscope.telemetry")
MAX_BODY_PARSE: Final = 4 * 1024 * 1024
"""Request or response bytes parsed as JSON at most; a larger body is timed but not read."""
ENRICHED_SCOPES: Final = frozenset({"com.anthropic.sdk.python"})
"""Instrumentation scopes of SDK spans that are enriched rather than nested under."""
_STREAM_END_EVENTS: Final = frozenset({"message_stop", "response.completed", "response.incomplete",
                                       "response.failed"})
MAX_CONTENT_ATTR: Final = 65536

# the keys of OpenTelemetry's context that switch instrumentation off (the API defines them;
# opentelemetry-instrumentation's helpers read the same keys)
_SUPPRESS_KEY: Final = otel_context._SUPPRESS_INSTRUMENTATION_KEY
_SUPPRESS_KEY_PLAIN: Final = "suppress_instrumentation"  # the older spelling, still honoured
_SUPPRESS_HTTP_KEY: Final = otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY

_capture_content = False


def set_capture_content(on: bool) -> None:
    """Record prompts and completions on spans (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``)."""
    global _capture_content
    _capture_content = on


def is_suppressed() -> bool:
    """True inside telemetry's own work (the SDK's exporters): such traffic is not the app's."""
    ctx = otel_context.get_current()  # one context read; the Context is a dict
    return bool(ctx.get(_SUPPRESS_KEY) or ctx.get(_SUPPRESS_KEY_PLAIN))


def _json(body: Any) -> dict[str, Any] | None:
    if isinstance(body, bytes | bytearray | memoryview | str):
        if len(body) > MAX_BODY_PARSE:
            return None
        try:
            if not _capture_content:  # the prompt and completion text is not decoded
                data = leanjson.loads(body if isinstance(body, bytes | str) else bytes(body))
            else:
                if not isinstance(body, str):
                    try:  # UTF-8 text (nearly every body): json.loads skips its encoding detection
                        body = bytes(body).decode("utf-8")
                    except UnicodeDecodeError:
                        body = bytes(body)  # UTF-16/32: json.loads detects the encoding
                data = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the decoder goes
            return None
        return data if isinstance(data, dict) else None
    return body if isinstance(body, dict) else None


def _sdk_span() -> Any:
    """The current span when it is an SDK's own span for this call (enriched, not nested)."""
    if "anthropic" not in sys.modules:  # the only SDK whose span is enriched
        return None
    span = trace.get_current_span()
    scope = getattr(span, "instrumentation_scope", None)
    if scope is not None and getattr(scope, "name", None) in ENRICHED_SCOPES and span.is_recording():
        return span
    return None


_inject: Any = None


def _load_inject() -> Any:
    global _inject
    from opentelemetry.propagate import inject  # after set-up: never at import

    _inject = inject
    return inject


class _Scope:
    """:meth:`Tracked.scope`: a plain context manager (no generator on the hot path)."""

    __slots__ = ("_headers", "_recording", "_span", "_token")

    def __init__(self, span: Any, headers: MutableMapping[str, str] | None) -> None:
        self._span = span
        self._headers = headers

    def __enter__(self) -> None:
        ctx = trace.set_span_in_context(self._span)
        ctx = otel_context.set_value(_SUPPRESS_HTTP_KEY, True, ctx)
        self._token = otel_context.attach(ctx)
        self._recording = start_recording()
        if self._headers is not None:
            try:
                (_inject or _load_inject())(self._headers)
            except Exception:  # noqa: BLE001 - the call goes out without trace context
                otel.swallowed("genai.inject")

    def __exit__(self, *exc: object) -> None:
        try:
            stop_recording(self._recording)
        finally:
            otel_context.detach(self._token)


class Tracked:
    """One LLM call seen at the HTTP layer, from request to the end of its body."""

    __slots__ = ("_body", "_buf", "_buf_len", "_done", "_error", "_http", "_retries", "_sse", "_start",
                 "_status", "_task", "call", "recognised")

    def __init__(self, call: LLMCall, recognised: Recognised, http_attrs: dict[str, Any],
                 retries: _Retries | None) -> None:
        self.call = call
        self.recognised = recognised
        self._http = http_attrs
        self._start = time.perf_counter()
        self._status: int | None = None
        self._sse: SSEDecoder | None = None
        self._buf: list[bytes] | None = None  # the body's chunks, joined once at its end
        self._buf_len = 0
        self._error: str | None = None
        self._done = False
        self._body: Any = None
        self._task: weakref.ref[asyncio.Task[Any]] | None = None
        self._retries = retries  # the SDK call this attempt belongs to, if any

    def bind_task(self) -> None:
        """Remember the asyncio task reading the body: cancelled, its close is ``CancelledError``."""
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop: a sync caller
            return
        if task is not None:
            self._task = weakref.ref(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """The task ended cancelled with the body still open: the call ends now, ``CancelledError``."""
        if task.cancelled() and not self._done and self._error is None:
            self._end(asyncio.CancelledError.__qualname__, asyncio.CancelledError())

    def _cancelled(self) -> bool:
        task = self._task() if self._task is not None else None
        if task is None:
            return False
        return bool(task.cancelling()) or (task.done() and task.cancelled())

    def scope(self, headers: MutableMapping[str, str] | None = None) -> _Scope:
        """Send inside this: the span is current, lower layers record nothing, trace context injected."""
        return _Scope(self.call.span, headers)

    def response(self, status: int, content_type: str | None) -> None:
        """The response head arrived: record the HTTP duration; choose how to read the body."""
        try:
            self._status = status
            a = dict(self._http)
            a[signals.HTTP_RESPONSE_STATUS_CODE] = status
            if status >= 400:
                a[signals.ERROR_TYPE] = str(status)
            otel.record_later(signals.HTTP_CLIENT_REQUEST_DURATION, time.perf_counter() - self._start, a,
                              span=self.call.span)
            if "text/event-stream" in (content_type or ""):
                self._sse = SSEDecoder()
            else:
                self._buf = []
        except Exception:  # noqa: BLE001 - telemetry never breaks the call
            otel.swallowed("genai.response")

    def feed(self, chunk: bytes) -> None:
        """Body bytes as the application (or its SDK) reads them."""
        if self._done:
            return
        try:
            if self._sse is not None:
                for event in self._sse.feed(bytes(chunk)):
                    self._event(event)
            elif self._buf is not None:
                self._buf_len += len(chunk)
                if self._buf_len <= MAX_BODY_PARSE:
                    self._buf.append(bytes(chunk))  # no copy for bytes
                else:
                    self._buf = None
        except Exception:  # noqa: BLE001
            otel.swallowed("genai.feed")

    def _event(self, event: Any) -> None:
        if event.data.strip() == DONE:
            self._done_stream()
            return
        try:
            data = json_data(event)
        except ValueError:
            return  # a non-JSON event is the application's business; usage is not in it
        if data is None:  # JSON null: nothing in it, and not the end of the stream
            return
        self.call.observe_chunk(data)
        if self._error is None:
            self._error = error_type_of(None, data)
        if isinstance(data, dict) and data.get("type") in _STREAM_END_EVENTS:
            self._done_stream()

    def _done_stream(self) -> None:
        self._sse = None  # the rest of the body (if any) is not read

    def finish(self) -> None:
        """The body was read to its end."""
        if self._done:
            return
        try:
            if self._sse is not None:
                for event in self._sse.close():
                    self._event(event)
            elif self._buf is not None:
                self._body = _json(b"".join(self._buf))  # one chunk: that object, no copy
                self._buf = None
                self.call.observe_body(self._body)
                if _capture_content and isinstance(self._body, dict):
                    self._capture_output(self._body)
        except Exception:  # noqa: BLE001
            otel.swallowed("genai.finish")
        self._end(self._error or error_type_of(self._status, self._body))

    def close(self) -> None:
        """The body was closed: before its end (and its last event) that is ``stream_closed``.

        Closed because the task reading it was cancelled, it is ``CancelledError``.
        """
        if self._done:
            return
        if self._status is not None and self._buf is None and self._sse is None:
            self._end(self._error)  # a stream whose last event was seen
            return
        if self._status is not None and self._status >= 400:
            self._end(str(self._status))
            return
        if self._error is None and self._task is not None and self._cancelled():
            self._end(asyncio.CancelledError.__qualname__, asyncio.CancelledError())
            return
        self._end(self._error or STREAM_CLOSED)

    def fail(self, exc: BaseException) -> None:
        """The request or the body failed with ``exc`` (which the caller gets unchanged)."""
        if self._done:
            return
        if self._status is None:  # no response: the HTTP record carries the error
            try:
                a = dict(self._http)
                a[signals.ERROR_TYPE] = type(exc).__qualname__
                otel.record_later(signals.HTTP_CLIENT_REQUEST_DURATION,
                                  time.perf_counter() - self._start, a, span=self.call.span)
            except Exception:  # noqa: BLE001
                otel.swallowed("genai.fail")
        self._end(type(exc).__qualname__, exc)

    def _end(self, error: str | None, exc: BaseException | None = None) -> None:
        self._done = True
        if self._task is not None:  # a long-lived task does not collect one callback per call
            task = self._task()
            self._task = None
            if task is not None and not task.done():
                task.remove_done_callback(self._task_done)
        attrs = {signals.HTTP_RESPONSE_STATUS_CODE: self._status} if self._status is not None else None
        # no response or an error status: an attempt an SDK may retry (it marks its own span if
        # the call finally fails); an error after a 2xx head ends the call
        attempt = self._status is None or self._status >= 400
        if attempt and error is not None and self._retries is not None:
            self._retries.hold(self.call, error, exc, attrs)  # the SDK may try again
            return
        self.call.end(error, exception=exc, span_attributes=attrs, attempt_failed=attempt)

    def _capture_output(self, body: dict[str, Any]) -> None:
        span = self.call.span
        if not span.is_recording():
            return
        out: Any = [c.get("message") or c.get("text") for c in body.get("choices") or []
                    if isinstance(c, dict)]
        if not out:
            out = body.get("content") or body.get("output")
        span.set_attribute(signals.GEN_AI_OUTPUT_MESSAGES, json.dumps(out)[:MAX_CONTENT_ATTR])


_redact: Any = None


def _load_redact() -> Any:
    global _redact
    from routerscope.telemetry import redact  # the telemetry layer: imported on the first call

    _redact = redact
    return redact


class _Retries:
    """The attempts of one SDK call (its client's own retry loop) share one :class:`LLMCall`.

    A failed attempt's call is held open instead of ended; the next attempt takes
    it over, so the span and the GenAI duration cover the whole call, and the last
    attempt decides its outcome. When the SDK gives up, :meth:`finish` ends the
    held call with the last attempt's error. HTTP durations stay per attempt.
    """

    __slots__ = ("_attrs", "_call", "_error", "_exc")

    def __init__(self) -> None:
        self._call: LLMCall | None = None
        self._error: str | None = None
        self._exc: BaseException | None = None
        self._attrs: dict[str, Any] | None = None

    def hold(self, call: LLMCall, error: str, exc: BaseException | None,
             attrs: dict[str, Any] | None) -> None:
        self._call, self._error, self._exc, self._attrs = call, error, exc, attrs

    def take(self) -> LLMCall | None:
        call, self._call = self._call, None
        return call

    def finish(self) -> None:
        call = self.take()
        if call is not None:
            call.end(self._error, exception=self._exc, span_attributes=self._attrs,
                     attempt_failed=True)


_RETRIES: contextvars.ContextVar[_Retries | None] = contextvars.ContextVar(
    "routerscope_sdk_call", default=None)


@contextlib.contextmanager
def sdk_call() -> Iterator[None]:
    """Around an SDK's ``request()``: its retried attempts are one LLM call (see :class:`_Retries`)."""
    retries = _Retries()
    token = _RETRIES.set(retries)
    try:
        yield
    finally:
        _RETRIES.reset(token)
        try:
            retries.finish()
        except Exception:  # noqa: BLE001 - instrumentation never breaks the call
            otel.swallowed("genai.retries")


_redacted_urls: dict[str, str] = {}
_REDACTED_URLS_MAX: Final = 512


def start(method: str, url: str, host: str, port: int | None, scheme: str, path: str,
          body: Any) -> Tracked | None:
    """A :class:`Tracked` call for an LLM request, or None (not one, already recorded, or telemetry's own)."""
    rec = recognise(path, method)
    if rec is None or is_recording() or is_suppressed():
        return None
    try:
        redact = _redact or _load_redact()
        data = _json(body)
        model = data.get("model") if data else None
        port = port or (443 if scheme == "https" else 80)
        http_attrs: dict[str, Any] = {
            signals.HTTP_REQUEST_METHOD: method, signals.SERVER_ADDRESS: host,
            signals.SERVER_PORT: port, signals.URL_SCHEME: scheme,
        }
        retries = _RETRIES.get()
        held = retries.take() if retries is not None else None
        if held is not None:  # the SDK retries a failed attempt: the same call goes on
            return Tracked(held, rec, http_attrs, retries)
        full = _redacted_urls.get(url)
        if full is None:
            full = redact(url)
            if len(_redacted_urls) < _REDACTED_URLS_MAX:  # a router calls a few URLs
                _redacted_urls[url] = full
        start_attrs = {**http_attrs, signals.URL_FULL: full}
        if _capture_content and data:
            msgs = data.get("messages", data.get("prompt", data.get("input")))
            start_attrs[signals.GEN_AI_INPUT_MESSAGES] = redact(json.dumps(msgs))[:MAX_CONTENT_ATTR]
        call = LLMCall(operation=rec.operation, model=model if isinstance(model, str) else None,
                       provider=provider_from_host(host), server_address=host, server_port=port,
                       request_params=data, span=_sdk_span(), span_attributes=start_attrs)
    except Exception:  # noqa: BLE001 - instrumentation never breaks the call
        otel.swallowed("genai.start")
        return None
    return Tracked(call, rec, http_attrs, retries)
