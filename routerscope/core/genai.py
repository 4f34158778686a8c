"""GenAI semantic-convention recording for LLM calls: the one recogniser and recorder.

Shared by :class:`routerscope.core.openrouter.OpenRouterClient` and every hook
of ``routerscope.auto``: :func:`recognise` tells from a URL path whether a
request is an LLM call (and in which wire format), :func:`provider_from_host`
names the provider, and :class:`LLMCall` records it: a CLIENT span named
``"{operation} {model}"``, the ``gen_ai.client.operation.duration`` and
``gen_ai.client.token.usage`` histograms, for streams also
``gen_ai.client.operation.time_to_first_chunk`` and
``gen_ai.client.operation.time_per_output_chunk``, and a structured event.
:func:`body_error` is the one reader of provider error bodies. Prompt and
completion text are never recorded here.

Provider names
--------------
``gen_ai.provider.name`` takes the semantic conventions' well-known value of
the host (:data:`PROVIDER_HOSTS`; a host matches itself and its subdomains).
A host that is not in the table is named by its DNS name, lower-cased. A host
given as an IP address, ``localhost`` or a single-label name is a server of
one's own (vLLM, Ollama, a test double), never a provider's public API:
it is named ``self_hosted`` (:data:`SELF_HOSTED`), so a raw address never
becomes a provider name; ``server.address`` keeps the address.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import logging
import time
from collections.abc import Iterator
from typing import Any, Final, NamedTuple

from opentelemetry.trace import Span, SpanKind

from routerscope.core import otel, signals
from routerscope.core._log import get_logger

__all__ = [
    "ANTHROPIC",
    "OPENAI",
    "PROVIDER_HOSTS",
    "SELF_HOSTED",
    "STREAM_CLOSED",
    "LLMCall",
    "Recognised",
    "body_error",
    "error_type_of",
    "is_recording",
    "operation_from_path",
    "provider_from_host",
    "recognise",
    "recording",
    "start_recording",
    "stop_recording",
]

_RECORDING: contextvars.ContextVar[bool] = contextvars.ContextVar("routerscope_genai",
                                                                  default=False)


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Marks HTTP sent inside as already recorded by a GenAI call (no second record)."""
    token = _RECORDING.set(True)
    try:
        yield
    finally:
        _RECORDING.reset(token)


def start_recording() -> contextvars.Token[bool]:
    """:func:`recording` without the context manager (hot paths): pass the token to :func:`stop_recording`."""
    return _RECORDING.set(True)


def stop_recording(token: contextvars.Token[bool]) -> None:
    _RECORDING.reset(token)


def is_recording() -> bool:
    """True inside a call that a GenAI record already covers (a lower layer records nothing)."""
    return _RECORDING.get()


_log = get_logger("routerscope.genai")
_std = logging.getLogger("routerscope.genai")


def _debug_on() -> bool:
    return _std.isEnabledFor(logging.DEBUG)


OPENAI: Final = "openai"
"""The OpenAI-compatible wire format (chat/completions, completions, embeddings, responses)."""
ANTHROPIC: Final = "anthropic"
"""The Anthropic Messages wire format (``/v1/messages``)."""
SELF_HOSTED: Final = "self_hosted"
STREAM_CLOSED: Final = "stream_closed"
"""``error.type`` of a streamed response the reader closed before its end (logged at debug only)."""

PROVIDER_HOSTS: Final = {
    "openrouter.ai": "openrouter",
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "openai.azure.com": "azure.ai.openai",
    "services.ai.azure.com": "azure.ai.inference",
    "models.ai.azure.com": "azure.ai.inference",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "api.mistral.ai": "mistral_ai",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
    "cloud.ibm.com": "ibm.watsonx.ai",
    "api.together.xyz": "together_ai",
    "api.fireworks.ai": "fireworks_ai",
}
"""Host (and its subdomains) -> ``gen_ai.provider.name`` (semconv well-known values where one exists).

Regional hosts are matched by rule: ``*aiplatform.googleapis.com`` (``{region}-aiplatform``)
is ``gcp.vertex_ai``; ``bedrock*.amazonaws.com`` (``bedrock-runtime.{region}``) is ``aws.bedrock``.
"""


_provider_cache: dict[str, str] = {}
_PROVIDER_CACHE_MAX: Final = 1024


def provider_from_host(host: str) -> str:
    """``gen_ai.provider.name`` for a host (the rule is in the module docstring); remembered per host."""
    name = _provider_cache.get(host)
    if name is None:
        name = _provider_of(host)
        if len(_provider_cache) < _PROVIDER_CACHE_MAX:
            _provider_cache[host] = name
    return name


def _provider_of(host: str) -> str:
    host = host.lower().rstrip(".")
    for suffix, name in PROVIDER_HOSTS.items():
        if host == suffix or host.endswith("." + suffix):
            return name
    if host.endswith("aiplatform.googleapis.com"):
        return "gcp.vertex_ai"
    if host.startswith("bedrock") and host.endswith(".amazonaws.com"):
        return "aws.bedrock"
    if not host or host == "localhost" or "." not in host:
        return SELF_HOSTED
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    return SELF_HOSTED


class Recognised(NamedTuple):
    operation: str
    api: str  # OPENAI or ANTHROPIC: the wire format of request and response


_SUFFIXES: Final = (
    ("/chat/completions", signals.OP_CHAT, OPENAI),
    ("/completions", signals.OP_TEXT_COMPLETION, OPENAI),
    ("/embeddings", signals.OP_EMBEDDINGS, OPENAI),
    ("/responses", signals.OP_CHAT, OPENAI),
    ("/v1/messages", signals.OP_CHAT, ANTHROPIC),
)
_TAILS: Final = ("completions", "embeddings", "responses", "messages")


def recognise(path: str, method: str | None = None) -> Recognised | None:
    """What LLM call a URL path is, or None (one ``endswith`` for most other requests).

    With ``method``, only a ``POST`` is an LLM call (``GET /chat/completions`` lists stored ones).
    """
    path = path.split("?", 1)[0].rstrip("/")
    if not path.endswith(_TAILS):
        return None
    if method is not None and method.upper() != "POST":
        return None
    for suffix, op, api in _SUFFIXES:
        if path.endswith(suffix):
            return Recognised(op, api)
    return None


def operation_from_path(path: str) -> str | None:
    """The GenAI operation of an LLM API path, or None if it is not one."""
    r = recognise(path)
    return r.operation if r else None


def body_error(body: Any) -> tuple[int | None, str | None, str | None]:
    """(code, message, type) of a provider error body or stream event, all None if it is not one.

    OpenAI-style ``{"error": {"code", "message", "type"}}`` and Anthropic's
    ``{"type": "error", "error": {"type", "message"}}``; a bare string error is a message.
    """
    if not isinstance(body, dict):
        return None, None, None
    err = body.get("error")
    if err is None:
        if body.get("type") == "response.failed" and isinstance(body.get("response"), dict):
            err = body["response"].get("error") or {"message": "response failed"}
        else:
            return None, None, None
    if isinstance(err, dict):
        code = err.get("code")
        try:
            code_int = int(code) if code is not None else None
        except (TypeError, ValueError):
            code_int = None
        msg = err.get("message")
        etype = err.get("type") if isinstance(err.get("type"), str) else (
            str(code) if code is not None else None)
        return code_int, str(msg) if msg is not None else str(err)[:500], etype
    return None, str(err), None


def error_type_of(status: int | None, body: Any = None) -> str | None:
    """``error.type`` of a response: the HTTP status if >= 400, else an error in the body, else None."""
    if status is not None and status >= 400:
        return str(status)
    code, msg, etype = body_error(body)
    if msg is None and etype is None:
        return None
    if code is not None:
        return str(code)
    return etype or "provider_error"


def _tokens(usage: Any, into: dict[str, int]) -> None:
    if not isinstance(usage, dict):
        return
    inp = usage.get("prompt_tokens", usage.get("input_tokens"))
    out = usage.get("completion_tokens", usage.get("output_tokens"))
    # a count a provider got wrong (negative, not an integer) is no count: recorded, a
    # negative value would make the SDK warn on the app's stderr at every call
    if isinstance(inp, int) and not isinstance(inp, bool) and inp >= 0:
        into[signals.TOKEN_INPUT] = inp
    if isinstance(out, int) and not isinstance(out, bool) and out >= 0:
        into[signals.TOKEN_OUTPUT] = out


class _ExceptionEvent:
    """An exception as the caller saw it when the call ended, for a span ended later.

    The SDK formats an exception's stack trace when the event is recorded; on the
    deferred worker the traceback would by then hold the frames the exception
    passed through afterwards, and any notes added to it since. This keeps the
    caller's view: type, message and stack trace taken at the end of the call.
    """

    __slots__ = ("attributes", "exception")

    def __init__(self, exception: BaseException) -> None:
        import traceback

        self.exception = exception
        try:
            message = str(exception)
        except Exception:  # noqa: BLE001 - an exception whose str() raises
            message = f"<{type(exception).__qualname__}: str() failed>"
        try:
            stack = "".join(traceback.format_exception(type(exception), exception,
                                                       exception.__traceback__))
        except Exception:  # noqa: BLE001 - as above: the type and message still go out
            stack = message
        self.attributes = {"exception.message": message, "exception.stacktrace": stack}


def _exception_event(exception: BaseException | None) -> Any:
    return _ExceptionEvent(exception) if exception is not None else None


class LLMCall:
    """One GenAI client call: start it, feed it the response (or stream events), end it once.

    ``span``: enrich a span that someone else started and ends (the
    ``anthropic`` SDK's own span) instead of starting one; :meth:`end` then
    records the metrics and sets the attributes but leaves the span open.
    """

    __slots__ = ("_attrs", "_chunks", "_ended", "_finish_reasons", "_first", "_last", "_own", "_span",
                 "_start", "response_id", "response_model", "usage")

    def __init__(
        self,
        *,
        operation: str,
        model: str | None,
        provider: str,
        server_address: str,
        server_port: int | None = None,
        request_params: dict[str, Any] | None = None,
        span: Span | None = None,
        span_attributes: dict[str, Any] | None = None,
    ) -> None:
        self._attrs: dict[str, Any] = {
            signals.GEN_AI_OPERATION_NAME: operation,
            signals.GEN_AI_PROVIDER_NAME: provider,
            signals.SERVER_ADDRESS: server_address,
        }
        if model:
            self._attrs[signals.GEN_AI_REQUEST_MODEL] = model
        if server_port:
            self._attrs[signals.SERVER_PORT] = server_port
        span_attrs = {**self._attrs, **(span_attributes or {})}
        params = request_params or {}
        for key, attr in (
            ("max_tokens", signals.GEN_AI_REQUEST_MAX_TOKENS),
            ("max_output_tokens", signals.GEN_AI_REQUEST_MAX_TOKENS),
            ("temperature", signals.GEN_AI_REQUEST_TEMPERATURE),
            ("top_p", signals.GEN_AI_REQUEST_TOP_P),
        ):
            value = params.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                span_attrs[attr] = value
        self._own = span is None
        if span is None:
            name = f"{operation} {model}" if model else operation
            span = otel.tracer().start_span(name, kind=SpanKind.CLIENT, attributes=span_attrs)
        else:  # an SDK's span: its own GenAI attributes win, on the span and in the metrics
            have = getattr(span, "attributes", None) or {}
            for key in (signals.GEN_AI_PROVIDER_NAME, signals.GEN_AI_OPERATION_NAME,
                        signals.GEN_AI_REQUEST_MODEL):
                if isinstance(have.get(key), str):
                    self._attrs[key] = have[key]
            if span.is_recording():
                span.set_attributes({k: v for k, v in span_attrs.items() if k not in have})
        self._span = span
        self._start = time.perf_counter()
        self._ended = False
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.usage: dict[str, int] = {}
        self._finish_reasons: list[str] = []
        self._first = 0.0
        self._last = 0.0
        self._chunks = 0

    @property
    def span(self) -> Span:
        return self._span

    @property
    def ended(self) -> bool:
        return self._ended

    def observe_body(self, body: Any) -> None:
        """Take model, id, finish reasons and usage from a response body (any wire format)."""
        if not isinstance(body, dict):
            return
        kind = body.get("type")
        if kind == "message_start" or (isinstance(kind, str) and kind.startswith("response.")
                                       and isinstance(body.get("response"), dict)):
            body = body.get("message") or body.get("response") or {}
            if not isinstance(body, dict):
                return
        elif kind == "message_delta":  # Anthropic: the stop reason and the running usage
            delta = body.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self._finish_reasons.append(delta["stop_reason"])
            _tokens(body.get("usage"), self.usage)
            return
        model = body.get("model")
        if isinstance(model, str) and model:
            self.response_model = model
        rid = body.get("id")
        if isinstance(rid, str) and rid:
            self.response_id = rid
        for choice in body.get("choices") or ():
            if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
                self._finish_reasons.append(choice["finish_reason"])
        stop = body.get("stop_reason")  # Anthropic message
        if isinstance(stop, str):
            self._finish_reasons.append(stop)
        if body.get("object") == "response" and body.get("status") not in (None, "in_progress"):
            self._finish_reasons.append(str(body["status"]))  # Responses API
        _tokens(body.get("usage"), self.usage)

    def observe_chunk(self, event: Any) -> None:
        """One event of a streamed response: its content times the stream, the rest as a body."""
        if isinstance(event, dict):
            kind = event.get("type")
            if (event.get("choices") or kind == "content_block_delta"
                    or (isinstance(kind, str) and kind.endswith(".delta"))):
                now = time.perf_counter()
                if not self._chunks:
                    self._first = now
                self._last = now
                self._chunks += 1
            self.observe_body(event)

    def end(self, error_type: str | None = None, *, exception: BaseException | None = None,
            span_attributes: dict[str, Any] | None = None, attempt_failed: bool = False) -> None:
        """Record the duration, tokens and stream timing and end the span; later calls do nothing.

        ``attempt_failed``: the error is one HTTP attempt's (no response, or an error status),
        which an SDK may retry within its own span; such a span is not marked failed here
        (the SDK marks it if the call finally fails, so a retry that succeeds leaves no
        ``error.type``). A span of our own is always marked.

        The caller's thread takes the end time and the outcome and logs the per-call
        event (debug; warning on failure, except ``stream_closed``). The rest (the
        span's end attributes in one call, its status, the metric records and the
        span's end at that end time) is done off the caller's thread
        (:func:`routerscope.core.otel.later`) where routerscope's own TracerProvider
        exports the span (:func:`routerscope.core.otel.spans_end_later`). An app's own
        provider sees the span end before this returns; an SDK's own span, which its
        SDK ends right after this returns, is enriched now.
        """
        if self._ended:
            return
        self._ended = True
        duration = time.perf_counter() - self._start
        end_ns = time.time_ns()
        attrs = self._attrs
        if self.response_model:
            attrs[signals.GEN_AI_RESPONSE_MODEL] = self.response_model
        if error_type:
            attrs[signals.ERROR_TYPE] = error_type
        if self._own and otel.spans_end_later():
            try:
                otel.later(self._complete, duration, end_ns, error_type, _exception_event(exception),
                           span_attributes)
            except Exception:  # noqa: BLE001 - no worker to be had: the caller's thread does it
                otel.swallowed("genai.later")
                self._complete(duration, end_ns, error_type, exception, span_attributes,
                               otel.record_later)
        elif self._own:  # the app's TracerProvider: its processors see the span end on return
            self._complete(duration, end_ns, error_type, exception, span_attributes, otel.record_later)
        else:  # the SDK ends its span when this returns: its attributes now, the records later
            self._enrich(error_type, exception, span_attributes, attempt_failed)
            try:
                otel.later(self._record, duration)
            except Exception:  # noqa: BLE001 - no worker to be had: recorded the slower way
                otel.swallowed("genai.later")
                self._record(duration, otel.record_later)
        if error_type or _debug_on():
            try:
                fields = {
                    "gen_ai.operation.name": attrs[signals.GEN_AI_OPERATION_NAME],
                    "gen_ai.provider.name": attrs[signals.GEN_AI_PROVIDER_NAME],
                    "gen_ai.request.model": attrs.get(signals.GEN_AI_REQUEST_MODEL),
                    "gen_ai.response.model": self.response_model,
                    "duration_s": round(duration, 6),
                    "input_tokens": self.usage.get(signals.TOKEN_INPUT),
                    "output_tokens": self.usage.get(signals.TOKEN_OUTPUT),
                }
                if error_type == STREAM_CLOSED:  # the reader stopped early: normal use
                    _log.debug(signals.EVENT_LLM_ERROR, **fields, **{"error.type": error_type})
                elif error_type:
                    _log.warning(signals.EVENT_LLM_ERROR, **fields, **{"error.type": error_type})
                else:
                    _log.debug(signals.EVENT_LLM_CALL, **fields)
            except Exception:  # noqa: BLE001 - telemetry never breaks the call
                otel.swallowed("genai.end.log")

    def _complete(self, duration: float, end_ns: int, error_type: str | None,
                  exception: BaseException | _ExceptionEvent | None,
                  span_attributes: dict[str, Any] | None, record: Any = otel.record_now) -> None:
        """Our own span: its end attributes and status, the metric records, its end at ``end_ns``."""
        try:
            self._enrich(error_type, exception, span_attributes, False, end_ns)
            self._record(duration, record)
        finally:
            self._span.end(end_time=end_ns)

    def _enrich(self, error_type: str | None, exception: BaseException | _ExceptionEvent | None,
                span_attributes: dict[str, Any] | None, attempt_failed: bool,
                end_ns: int | None = None) -> None:
        """The span's end attributes in one call, and its failure."""
        span = self._span
        try:
            if not span.is_recording():
                return
            end_attrs: dict[str, Any] = dict(span_attributes or {})
            if self.response_model:
                end_attrs[signals.GEN_AI_RESPONSE_MODEL] = self.response_model
            if self.response_id:
                end_attrs[signals.GEN_AI_RESPONSE_ID] = self.response_id
            if self._finish_reasons:
                end_attrs[signals.GEN_AI_RESPONSE_FINISH_REASONS] = self._finish_reasons
            if signals.TOKEN_INPUT in self.usage:
                end_attrs[signals.GEN_AI_USAGE_INPUT_TOKENS] = self.usage[signals.TOKEN_INPUT]
            if signals.TOKEN_OUTPUT in self.usage:
                end_attrs[signals.GEN_AI_USAGE_OUTPUT_TOKENS] = self.usage[signals.TOKEN_OUTPUT]
            span.set_attributes(end_attrs)
            if error_type and (self._own or not attempt_failed):
                if isinstance(exception, _ExceptionEvent):  # taken when the call ended
                    otel.fail_span(span, error_type, exception.exception,
                                   attributes=exception.attributes, timestamp=end_ns)
                else:
                    otel.fail_span(span, error_type, exception)
        except Exception:  # noqa: BLE001 - telemetry never breaks the call
            otel.swallowed("genai.end")

    def _record(self, duration: float, record: Any = otel.record_now) -> None:
        """Duration, tokens and stream timing, with the span for exemplars.

        ``record``: :func:`routerscope.core.otel.record_now` on the worker,
        :func:`routerscope.core.otel.record_later` on the caller's thread.
        """
        attrs, span = self._attrs, self._span
        try:
            record(signals.GEN_AI_CLIENT_OPERATION_DURATION, duration, attrs, span=span)
            for token_type, count in self.usage.items():
                record(signals.GEN_AI_CLIENT_TOKEN_USAGE, count,
                       {**attrs, signals.GEN_AI_TOKEN_TYPE: token_type}, span=span)
            if self._chunks:
                record(signals.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
                       self._first - self._start, attrs, span=span)
                if self._chunks > 1:
                    record(signals.GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK,
                           (self._last - self._first) / (self._chunks - 1), attrs, span=span)
        except Exception:  # noqa: BLE001 - telemetry never breaks the call
            otel.swallowed("genai.record")
