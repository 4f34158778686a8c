"""A pooled, instrumented client for OpenRouter and any OpenAI-compatible API."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from opentelemetry import trace

from routerscope.core import errors, signals
from routerscope.core.genai import LLMCall, body_error, provider_from_host, recording
from routerscope.core.pool import DEFAULT_TIMEOUT, pooled_session
from routerscope.core.sse import SSEDecoder, json_data

__all__ = ["API_KEY_ENV", "DEFAULT_BASE_URL", "OpenRouterClient"]

DEFAULT_BASE_URL: Final = "https://openrouter.ai/api/v1"
API_KEY_ENV: Final = "OPENROUTER_API_KEY"

Message = Mapping[str, Any]


def _retry_after(resp: requests.Response) -> float | None:
    """Seconds the provider asks to wait (``Retry-After``: seconds or an HTTP date), or None."""
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    from urllib3.exceptions import InvalidHeader
    from urllib3.util.retry import Retry

    try:
        return max(0.0, float(Retry().parse_retry_after(value)))
    except InvalidHeader:
        return None


def _error_message(body: Any) -> tuple[int | None, str | None]:
    """(code, message) of a provider error body, if it is one (:func:`genai.body_error`)."""
    code, msg, _ = body_error(body)
    return code, msg


class OpenRouterClient:
    """Chat completions, model list and key info over one pooled session.

    ``base_url`` defaults to OpenRouter; any OpenAI-compatible endpoint works.
    ``api_key`` comes from the argument or ``OPENROUTER_API_KEY``; it lives only
    in the session's ``Authorization`` header and never appears in a repr, a
    log line, a span attribute or an exception message.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] | None = DEFAULT_TIMEOUT,
        provider_name: str | None = None,
        app_name: str | None = None,
        app_url: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port
        self.provider_name = provider_name or provider_from_host(self._host)
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._has_key = bool(key)
        self._timeout = timeout
        self.session = session or pooled_session(timeout=timeout)
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"
        if app_url:
            self.session.headers["HTTP-Referer"] = app_url
        if app_name:
            self.session.headers["X-Title"] = app_name

    def __repr__(self) -> str:
        key = "set" if self._has_key else "missing"
        return f"OpenRouterClient(base_url={self.base_url!r}, api_key=<{key}>)"

    # -- plumbing ------------------------------------------------------------------

    def _raise_for(self, resp: requests.Response, model: str | None, body: Any) -> None:
        _, msg = _error_message(body)
        text = msg if msg is not None else (resp.text[:500] if resp.text else None)
        raise errors.error_for_status(
            resp.status_code,
            provider=self.provider_name,
            model=model,
            body=text,
            retry_after=_retry_after(resp),
        )

    def _request(
        self, method: str, path: str, *, model: str | None = None, json_body: Any = None, stream: bool = False
    ) -> requests.Response:
        url = f"{self.base_url}/{path.lstrip('/')}"
        try:
            with recording():  # routerscope.auto must not record this call a second time
                resp = self.session.request(method, url, json=json_body, stream=stream)
        except requests.Timeout as exc:
            raise errors.ProviderTimeoutError(
                f"{self.provider_name} did not answer within {self._timeout} s",
                provider=self.provider_name,
                model=model,
            ) from _scrub(exc)
        except requests.ConnectionError as exc:
            raise errors.ProviderConnectionError(
                f"could not reach {self.provider_name} at {self._host}: {type(exc).__name__}."
                " Check the base_url, the network and any proxy settings."
            ) from _scrub(exc)
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = None
            self._raise_for(resp, model, body)
        return resp

    def _get_json(self, path: str) -> Any:
        resp = self._request("GET", path)
        try:
            return resp.json()
        except ValueError as exc:
            raise errors.ProviderError(
                f"{self.provider_name} returned a non-JSON body for {path}",
                provider=self.provider_name,
            ) from exc

    # -- API -------------------------------------------------------------------------

    def list_models(self) -> list[dict[str, Any]]:
        """The provider's model list (``GET /models``), as dicts."""
        data = self._get_json("models")
        return list(data.get("data", [])) if isinstance(data, dict) else list(data)

    def key_info(self) -> dict[str, Any]:
        """Usage and limits of the API key (OpenRouter's ``GET /key``)."""
        data = self._get_json("key")
        return dict(data.get("data", data)) if isinstance(data, dict) else {}

    def chat(self, *, model: str, messages: Sequence[Message], stream: bool = False, **params: Any) -> Any:
        """Create a chat completion.

        Returns the response body as a dict; with ``stream=True``, an iterator of
        the streamed chunks (dicts) that raises a :class:`ProviderError` if the
        stream carries an error event. Errors raise the exceptions of
        :mod:`routerscope.core.errors`, including a 200 whose body is an error.
        """
        body: dict[str, Any] = {"model": model, "messages": list(messages), **params}
        call = LLMCall(
            operation=signals.OP_CHAT,
            model=model,
            provider=self.provider_name,
            server_address=self._host,
            server_port=self._port,
            request_params=params,
        )
        if stream:
            body["stream"] = True
            body.setdefault("stream_options", {"include_usage": True})
            return self._stream(call, model, body)
        try:
            with trace.use_span(call.span, end_on_exit=False):
                resp = self._request("POST", "chat/completions", model=model, json_body=body)
            try:
                data = resp.json()
            except ValueError as exc:
                raise errors.ProviderError(
                    f"{self.provider_name} returned a non-JSON body",
                    status_code=resp.status_code,
                    provider=self.provider_name,
                    model=model,
                ) from exc
            code, msg = _error_message(data)
            if msg is not None:
                raise errors.error_for_status(code or 500, provider=self.provider_name, model=model, body=msg)
            call.observe_body(data)
        except BaseException as exc:
            call.end(_error_type(exc), exception=exc)
            raise
        call.end()
        return data

    def _stream(self, call: LLMCall, model: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        try:
            with trace.use_span(call.span, end_on_exit=False):
                resp = self._request("POST", "chat/completions", model=model, json_body=body, stream=True)
        except BaseException as exc:
            call.end(_error_type(exc), exception=exc)
            raise
        return self._iter_events(call, model, resp)

    def _iter_events(self, call: LLMCall, model: str, resp: requests.Response) -> Iterator[dict[str, Any]]:
        error: BaseException | None = None
        try:
            for chunk in iter_sse(resp):
                code, msg = _error_message(chunk)
                if msg is not None:
                    raise errors.error_for_status(
                        code or 500, provider=self.provider_name, model=model, body=msg
                    )
                call.observe_body(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except requests.RequestException as exc:
            error = errors.ProviderConnectionError(
                f"the stream from {self.provider_name} broke: {type(exc).__name__}. Retry the call."
            )
            raise error from _scrub(exc)
        except BaseException as exc:
            error = exc
            raise
        finally:
            resp.close()
            call.end(_error_type(error) if error else None, exception=error)


def iter_sse(resp: requests.Response) -> Iterator[dict[str, Any]]:
    """Parse a ``text/event-stream`` body of JSON ``data:`` events until ``[DONE]``.

    One parser (:class:`routerscope.core.sse.SSEDecoder`): comment lines
    (``: OPENROUTER PROCESSING``) are skipped, multi-line data fields joined; a
    data field that is not JSON raises ``ProviderError``. After ``[DONE]`` the
    body is read to its end so the connection goes back to the pool.
    """
    decoder = SSEDecoder()
    done = False
    for raw in resp.iter_lines(decode_unicode=False):
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        event = decoder.feed_line(line)
        if event is None or done:
            continue
        try:
            data = json_data(event)
        except ValueError as exc:
            raise errors.ProviderError(f"malformed stream event: {event.data[:200]!r}") from exc
        if data is None:
            done = True
            continue
        yield data
    if done:
        return
    for event in decoder.close():
        try:
            data = json_data(event)
        except ValueError as exc:
            raise errors.ProviderError("malformed final stream event") from exc
        if data is not None:
            yield data


def _error_type(exc: BaseException) -> str:
    if isinstance(exc, errors.ProviderError) and exc.status_code is not None:
        return str(exc.status_code)
    return type(exc).__name__


def _scrub(exc: BaseException) -> BaseException:
    """Drop the request (and so its Authorization header) from a requests error."""
    if isinstance(exc, requests.RequestException):
        exc.request = None
        exc.response = None
    return exc
