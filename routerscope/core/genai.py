"""GenAI semantic-convention recording for OpenAI-compatible calls.

Shared by :class:`routerscope.core.openrouter.OpenRouterClient` and the
``requests`` hook of ``routerscope.auto``: a CLIENT span named
``"{operation} {model}"``, the ``gen_ai.client.operation.duration`` and
``gen_ai.client.token.usage`` histograms, and a structured event. Prompt and
completion text are never recorded here.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator
from typing import Any, Final

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from routerscope.core import otel, signals
from routerscope.core._log import get_logger

__all__ = ["LLMCall", "is_recording", "operation_from_path", "provider_from_host", "recording"]

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


def is_recording() -> bool:
    return _RECORDING.get()

_log = get_logger("routerscope.genai")
_std = logging.getLogger("routerscope.genai")


def _debug_on() -> bool:
    return _std.isEnabledFor(logging.DEBUG)

_PROVIDERS: Final = {
    "openrouter.ai": "openrouter",
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "api.mistral.ai": "mistral_ai",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "api.together.xyz": "together_ai",
    "api.fireworks.ai": "fireworks_ai",
}


def provider_from_host(host: str) -> str:
    """``gen_ai.provider.name`` for a host: the well-known value, else the host itself."""
    host = host.lower()
    for suffix, name in _PROVIDERS.items():
        if host == suffix or host.endswith("." + suffix):
            return name
    if host.endswith(".openai.azure.com"):
        return "azure.ai.openai"
    return host


def operation_from_path(path: str) -> str | None:
    """The GenAI operation of an OpenAI-compatible path, or None if it is not one."""
    path = path.rstrip("/")
    if path.endswith("/chat/completions"):
        return signals.OP_CHAT
    if path.endswith("/completions"):
        return signals.OP_TEXT_COMPLETION
    if path.endswith("/embeddings"):
        return signals.OP_EMBEDDINGS
    return None


class LLMCall:
    """One GenAI client call: start it, feed it the response, end it once."""

    __slots__ = ("_attrs", "_ended", "_finish", "_span", "_start", "response_id", "response_model",
                 "usage")

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
            ("temperature", signals.GEN_AI_REQUEST_TEMPERATURE),
            ("top_p", signals.GEN_AI_REQUEST_TOP_P),
        ):
            value = params.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                span_attrs[attr] = value
        if span is None:
            name = f"{operation} {model}" if model else operation
            span = otel.tracer().start_span(name, kind=SpanKind.CLIENT, attributes=span_attrs)
        else:
            span.set_attributes(span_attrs)
        self._span = span
        self._start = time.perf_counter()
        self._ended = False
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.usage: dict[str, int] = {}
        self._finish: list[str] = []

    @property
    def span(self) -> Span:
        return self._span

    def observe_body(self, body: Any) -> None:
        """Take model, id, finish reasons and usage from a response body or stream chunk."""
        if not isinstance(body, dict):
            return
        model = body.get("model")
        if isinstance(model, str) and model:
            self.response_model = model
        rid = body.get("id")
        if isinstance(rid, str) and rid:
            self.response_id = rid
        for choice in body.get("choices") or ():
            if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
                self._finish.append(choice["finish_reason"])
        usage = body.get("usage")
        if isinstance(usage, dict):
            inp = usage.get("prompt_tokens", usage.get("input_tokens"))
            out = usage.get("completion_tokens", usage.get("output_tokens"))
            if isinstance(inp, int):
                self.usage[signals.TOKEN_INPUT] = inp
            if isinstance(out, int):
                self.usage[signals.TOKEN_OUTPUT] = out

    def end(self, error_type: str | None = None, *, exception: BaseException | None = None,
            span_attributes: dict[str, Any] | None = None) -> None:
        """Record the duration and tokens and end the span; later calls do nothing.

        Metric records go to the deferred recorder (a deque append); the span
        gets its end attributes in one call; the per-call event is debug level.
        """
        if self._ended:
            return
        self._ended = True
        duration = time.perf_counter() - self._start
        attrs = self._attrs
        if self.response_model:
            attrs[signals.GEN_AI_RESPONSE_MODEL] = self.response_model
        if error_type:
            attrs[signals.ERROR_TYPE] = error_type
        span = self._span
        try:
            if span.is_recording():
                end_attrs: dict[str, Any] = dict(span_attributes or {})
                if self.response_model:
                    end_attrs[signals.GEN_AI_RESPONSE_MODEL] = self.response_model
                if self.response_id:
                    end_attrs[signals.GEN_AI_RESPONSE_ID] = self.response_id
                if self._finish:
                    end_attrs[signals.GEN_AI_RESPONSE_FINISH_REASONS] = self._finish
                if signals.TOKEN_INPUT in self.usage:
                    end_attrs[signals.GEN_AI_USAGE_INPUT_TOKENS] = self.usage[signals.TOKEN_INPUT]
                if signals.TOKEN_OUTPUT in self.usage:
                    end_attrs[signals.GEN_AI_USAGE_OUTPUT_TOKENS] = self.usage[signals.TOKEN_OUTPUT]
                if error_type:
                    end_attrs[signals.ERROR_TYPE] = error_type
                    if exception is not None:
                        span.record_exception(exception)
                    span.set_status(Status(StatusCode.ERROR, error_type))
                span.set_attributes(end_attrs)
            otel.record_later(signals.GEN_AI_CLIENT_OPERATION_DURATION, duration, attrs, span=span)
            for token_type, count in self.usage.items():
                otel.record_later(signals.GEN_AI_CLIENT_TOKEN_USAGE, count,
                                   {**attrs, signals.GEN_AI_TOKEN_TYPE: token_type}, span=span)
            if error_type or _debug_on():
                fields = {
                    "gen_ai.operation.name": attrs[signals.GEN_AI_OPERATION_NAME],
                    "gen_ai.provider.name": attrs[signals.GEN_AI_PROVIDER_NAME],
                    "gen_ai.request.model": attrs.get(signals.GEN_AI_REQUEST_MODEL),
                    "gen_ai.response.model": self.response_model,
                    "duration_s": round(duration, 6),
                    "input_tokens": self.usage.get(signals.TOKEN_INPUT),
                    "output_tokens": self.usage.get(signals.TOKEN_OUTPUT),
                }
                if error_type:
                    _log.warning(signals.EVENT_LLM_ERROR, **fields, **{"error.type": error_type})
                else:
                    _log.debug(signals.EVENT_LLM_CALL, **fields)
        except Exception:  # noqa: BLE001 - telemetry never breaks the call
            pass
        finally:
            span.end()
