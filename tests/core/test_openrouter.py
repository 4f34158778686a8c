"""OpenRouterClient against an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import pytest

from routerscope.core import errors, signals
from routerscope.core.openrouter import OpenRouterClient
from routerscope.testing import FakeProvider, Fault
from tests.conftest import Records, Telemetry, span_attrs

KEY = "sk-or-v1-0123456789abcdef0123456789abcdef"
MSGS = [{"role": "user", "content": "hello there, router"}]


@pytest.fixture
def client(provider: FakeProvider) -> OpenRouterClient:
    return OpenRouterClient(provider.base_url, api_key=KEY, provider_name="openrouter")


def test_chat_returns_completion_and_sends_key(client: OpenRouterClient, provider: FakeProvider) -> None:
    """A plain chat call returns the body and sends the key as a Bearer token."""
    out = client.chat(model="demo/small", messages=MSGS, max_tokens=7)
    assert out["choices"][0]["message"]["role"] == "assistant"
    assert out["usage"]["completion_tokens"] == 7
    assert provider.seen[0].headers["Authorization"] == f"Bearer {KEY}"


def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch, provider: FakeProvider) -> None:
    """With no api_key argument the key comes from OPENROUTER_API_KEY."""
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    OpenRouterClient(provider.base_url).list_models()
    assert provider.seen[0].headers["Authorization"] == f"Bearer {KEY}"


def test_chat_records_genai_span_and_metrics(otel: Telemetry, client: OpenRouterClient) -> None:
    """Each call makes a CLIENT span and the GenAI duration and token histograms."""
    client.chat(model="demo/small", messages=MSGS, max_tokens=5, temperature=0.2)
    span = next(s for s in otel.spans() if s.name == "chat demo/small")
    attrs = dict(span.attributes or {})
    assert attrs[signals.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[signals.GEN_AI_PROVIDER_NAME] == "openrouter"
    assert attrs[signals.GEN_AI_RESPONSE_MODEL] == "demo/small"
    assert attrs[signals.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert attrs[signals.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    dur = [
        a
        for a, _ in otel.points(signals.GEN_AI_CLIENT_OPERATION_DURATION.name)
        if a.get(signals.GEN_AI_REQUEST_MODEL) == "demo/small"
    ]
    assert dur and dur[0][signals.SERVER_ADDRESS] == "127.0.0.1"
    tokens = {
        a[signals.GEN_AI_TOKEN_TYPE]: p
        for a, p in otel.points(signals.GEN_AI_CLIENT_TOKEN_USAGE.name)
        if a.get(signals.GEN_AI_REQUEST_MODEL) == "demo/small"
    }
    assert set(tokens) == {"input", "output"} and tokens["output"].sum >= 5
    units = otel.units()
    assert units[signals.GEN_AI_CLIENT_OPERATION_DURATION.name] == "s"
    assert units[signals.GEN_AI_CLIENT_TOKEN_USAGE.name] == "{token}"


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (402, errors.InsufficientCreditsError),
        (429, errors.RateLimitError),
        (502, errors.ProviderUnavailableError),
        (503, errors.ProviderUnavailableError),
    ],
)
def test_errors_map_to_the_tree(
    client: OpenRouterClient, provider: FakeProvider, status: int, exc: type[Exception]
) -> None:
    """Each error status maps to its exception, whose message says what to do."""
    provider.enqueue(*[Fault(status=status, headers={"Retry-After": "0"})] * 4)
    with pytest.raises(exc) as info:
        client.chat(model="demo/small", messages=MSGS)
    assert isinstance(info.value, errors.ProviderError)
    assert info.value.status_code == status
    assert info.value.hint in str(info.value)


def test_error_span_and_metric_carry_error_type(
    otel: Telemetry, client: OpenRouterClient, provider: FakeProvider
) -> None:
    """A failed call sets error.type on the span and the duration metric."""
    provider.enqueue(Fault(status=400))
    with pytest.raises(errors.BadRequestError):
        client.chat(model="demo/bad", messages=MSGS)
    span = next(s for s in otel.spans() if s.name == "chat demo/bad")
    assert span_attrs(span)[signals.ERROR_TYPE] == "400"
    assert any(
        a.get(signals.ERROR_TYPE) == "400"
        for a, _ in otel.points(signals.GEN_AI_CLIENT_OPERATION_DURATION.name)
    )


def test_200_with_error_body_is_an_error(client: OpenRouterClient, provider: FakeProvider) -> None:
    """A 200 whose body carries an error raises the mapped exception."""
    provider.enqueue(Fault(status=200, body={"error": {"code": 429, "message": "slow down"}}))
    with pytest.raises(errors.RateLimitError, match="slow down"):
        client.chat(model="demo/small", messages=MSGS)


def test_stream_yields_chunks_and_usage(otel: Telemetry, client: OpenRouterClient) -> None:
    """stream=True yields parsed SSE chunks (comments skipped) and records usage at the end."""
    chunks = list(client.chat(model="demo/small", messages=MSGS, stream=True, max_tokens=4))
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"])
    assert text == "token " * 4
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    span = next(s for s in otel.spans() if s.name == "chat demo/small")
    assert span_attrs(span)[signals.GEN_AI_USAGE_OUTPUT_TOKENS] == 4


def test_stream_error_event_mid_stream(
    otel: Telemetry, client: OpenRouterClient, provider: FakeProvider
) -> None:
    """An error event inside a 200 stream raises, after the chunks before it."""
    provider.enqueue(Fault(stream_error_after=2))
    got = []
    with pytest.raises(errors.ProviderUnavailableError, match="mid-stream"):
        for chunk in client.chat(model="demo/streamfail", messages=MSGS, stream=True, max_tokens=6):
            got.append(chunk)
    assert len(got) == 2
    span = next(s for s in otel.spans() if s.name == "chat demo/streamfail")
    assert span_attrs(span)[signals.ERROR_TYPE] == "502"


def test_timeout_raises_provider_timeout(provider: FakeProvider) -> None:
    """A provider that never answers raises ProviderTimeoutError, not a hang."""
    provider.enqueue(Fault(hang=True))
    c = OpenRouterClient(provider.base_url, api_key=KEY, timeout=(1, 0.3))
    with pytest.raises(errors.ProviderTimeoutError):
        c.chat(model="demo/small", messages=MSGS)


def test_unreachable_raises_connection_error() -> None:
    """A closed port raises ProviderConnectionError with a hint."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = OpenRouterClient(f"http://127.0.0.1:{port}/v1", api_key=KEY)
    c.session.adapters["http://"].max_retries.total = 0  # type: ignore[attr-defined]
    with pytest.raises(errors.ProviderConnectionError, match="base_url"):
        c.list_models()


def test_models_and_key_info(client: OpenRouterClient) -> None:
    """list_models() and key_info() return the provider's data."""
    assert [m["id"] for m in client.list_models()][:1] == ["demo/small"]
    assert client.key_info()["label"] == "demo"


def test_api_key_never_leaks(
    otel: Telemetry,
    logs: Records,
    client: OpenRouterClient,
    provider: FakeProvider,
) -> None:
    """The key is in no span, metric attribute, log record, repr or exception message."""
    client.chat(model="demo/small", messages=MSGS)
    list(client.chat(model="demo/small", messages=MSGS, stream=True))
    provider.enqueue(Fault(status=401), Fault(status=503, headers={"Retry-After": "0"}), Fault(status=200))
    messages = []
    with pytest.raises(errors.AuthenticationError) as e1:
        client.chat(model="demo/small", messages=MSGS)
    messages.append(str(e1.value))
    client.chat(model="demo/small", messages=MSGS)
    assert KEY not in repr(client)
    assert "api_key=<set>" in repr(client)
    for span in otel.spans():
        assert KEY not in repr(dict(span.attributes or {}))
        assert all(KEY not in repr(dict(ev.attributes or {})) for ev in span.events)
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: F401

    for name in (
        signals.GEN_AI_CLIENT_OPERATION_DURATION.name,
        signals.POOL_RETRIES.name,
        signals.POOL_REQUESTS.name,
    ):
        assert all(KEY not in repr(a) for a, _ in otel.points(name))
    assert logs.records, "the calls emitted events"
    assert KEY not in logs.dump()
    assert all(KEY not in m for m in messages)


def test_bad_base_url_is_refused() -> None:
    """A base_url that is not http(s) fails at construction."""
    with pytest.raises(ValueError, match="base_url"):
        OpenRouterClient("ftp://example.invalid")


@pytest.mark.parametrize(("header", "expected"), [
    ("7", 7.0),
    ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),  # a date in the past: no wait
    ("soon", None),
])
def test_retry_after_seconds_or_http_date(header: str, expected: float | None) -> None:
    """Retry-After is read as urllib3 reads it: seconds or an HTTP date; garbage is no hint."""
    import requests

    from routerscope.core.openrouter import _retry_after

    resp = requests.Response()
    resp.headers["Retry-After"] = header
    assert _retry_after(resp) == expected
