"""The one GenAI recogniser, provider table and SSE parser, on their own."""

from __future__ import annotations

import pytest

from routerscope.core import signals
from routerscope.core.genai import (
    ANTHROPIC,
    OPENAI,
    SELF_HOSTED,
    error_type_of,
    provider_from_host,
    recognise,
)
from routerscope.core.sse import SSEDecoder, json_data


@pytest.mark.parametrize(("path", "want"), [
    ("/api/v1/chat/completions", (signals.OP_CHAT, OPENAI)),
    ("/v1/completions/", (signals.OP_TEXT_COMPLETION, OPENAI)),
    ("/v1/embeddings?x=1", (signals.OP_EMBEDDINGS, OPENAI)),
    ("/v1/responses", (signals.OP_CHAT, OPENAI)),
    ("/v1/messages", (signals.OP_CHAT, ANTHROPIC)),
    ("/v1/models", None),
    ("/inbox/messages", None),
])
def test_recognise(path: str, want: tuple[str, str] | None) -> None:
    """LLM API paths are recognised with their operation and wire format; others are not."""
    got = recognise(path)
    assert (tuple(got) if got else None) == want


@pytest.mark.parametrize(("host", "want"), [
    ("api.openai.com", "openai"), ("myres.openai.azure.com", "azure.ai.openai"),
    ("bedrock-runtime.us-east-1.amazonaws.com", "aws.bedrock"), ("openrouter.ai", "openrouter"),
    ("us-central1-aiplatform.googleapis.com", "gcp.vertex_ai"), ("API.MISTRAL.AI", "mistral_ai"),
    ("127.0.0.1", SELF_HOSTED), ("::1", SELF_HOSTED), ("10.1.2.3", SELF_HOSTED),
    ("localhost", SELF_HOSTED), ("vllm", SELF_HOSTED), ("llm.corp.example", "llm.corp.example"),
])
def test_provider_names(host: str, want: str) -> None:
    """Hosts map to semconv provider names; addresses and loopback names never become one."""
    assert provider_from_host(host) == want


def test_sse_chunks_cut_anywhere() -> None:
    """Events split across chunks, CRLF line ends, comments and named events decode the same."""
    raw = (b": OPENROUTER PROCESSING\r\n\r\nevent: message_start\r\ndata: {\"a\": 1}\r\n\r\n"
           b"data: {\"b\":\r\ndata: 2}\r\n\r\ndata: [DONE]\r\n\r\n")
    for cut in range(1, len(raw)):
        dec = SSEDecoder()
        events = dec.feed(raw[:cut]) + dec.feed(raw[cut:]) + dec.close()
        assert [e.event for e in events] == ["message_start", "message", "message"], cut
        assert [json_data(e) for e in events] == [{"a": 1}, {"b": 2}, None], cut


def test_error_bodies() -> None:
    """OpenAI and Anthropic error bodies give error.type; a normal body gives none."""
    assert error_type_of(200, {"error": {"code": 502, "message": "x"}}) == "502"
    assert error_type_of(200, {"type": "error", "error": {"type": "overloaded_error"}}) == "overloaded_error"
    assert error_type_of(429, None) == "429"
    assert error_type_of(200, {"choices": []}) is None


@pytest.mark.parametrize(("method", "want"), [("POST", True), ("post", True), ("GET", False),
                                             ("DELETE", False), (None, True)])
def test_recognise_only_post(method: str | None, want: bool) -> None:
    """Only a POST to an LLM path is an LLM call (GET /chat/completions lists stored ones)."""
    assert (recognise("/v1/chat/completions?limit=10", method) is not None) == want


def test_a_wrong_token_count_is_no_count() -> None:
    """Negative or non-integer usage counts from a provider are dropped, valid ones kept."""
    from routerscope.core.genai import LLMCall

    call = LLMCall(operation="chat", model="m", provider="openai", server_address="h")
    call.observe_body({"usage": {"prompt_tokens": -3, "completion_tokens": 5}})
    assert call.usage == {signals.TOKEN_OUTPUT: 5}
    call.observe_body({"usage": {"prompt_tokens": 2.5, "completion_tokens": True}})
    assert call.usage == {signals.TOKEN_OUTPUT: 5}
    call.end(None)
