"""A router that calls its provider every way a Python router does, one call per case.

Run as a script by the tests (after ``import routerscope.auto`` or under
``opentelemetry-instrument``): each case runs inside its own span named
``case <name>``, so a test finds the GenAI span of each call by its parent.
Environment: BASE (OpenAI-compatible base URL), ANTHROPIC_BASE, CASES
(comma-separated names; default all).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import trace

BASE = os.environ.get("BASE", "http://127.0.0.1:9/v1")
ANTHROPIC_BASE = os.environ.get("ANTHROPIC_BASE", BASE)
MSGS = [{"role": "user", "content": "say something"}]
CHAT: dict[str, Any] = {"model": "demo/small", "messages": MSGS, "max_tokens": 5}
STREAM: dict[str, Any] = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
tracer = trace.get_tracer("clients_app")


def requests_plain() -> None:
    import requests

    requests.post(f"{BASE}/chat/completions", json=CHAT, timeout=10).json()


def requests_stream() -> None:
    import requests

    with requests.post(f"{BASE}/chat/completions", json=STREAM, stream=True, timeout=10) as r:
        for _ in r.iter_lines():
            pass


def httpx_sync() -> None:
    import httpx

    with httpx.Client() as c:
        c.post(f"{BASE}/chat/completions", json=CHAT).json()


async def httpx_async() -> None:
    import httpx

    async with httpx.AsyncClient() as c, c.stream("POST", f"{BASE}/chat/completions", json=STREAM) as r:
        async for _ in r.aiter_lines():
            pass


def httpx2_sync() -> None:
    import httpx2

    with httpx2.Client() as c, c.stream("POST", f"{BASE}/chat/completions", json=STREAM) as r:
        for _ in r.iter_lines():
            pass


async def httpx2_async() -> None:
    import httpx2

    async with httpx2.AsyncClient() as c:
        (await c.post(f"{BASE}/chat/completions", json=CHAT)).json()


async def aiohttp_plain() -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.post(f"{BASE}/chat/completions", json=CHAT) as r:
        await r.json()


async def aiohttp_stream() -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.post(f"{BASE}/chat/completions", json=STREAM) as r:
        async for _ in r.content:
            pass


def _openai() -> Any:
    import openai

    return openai.OpenAI(base_url=BASE, api_key="sk-test-key", max_retries=0)


def openai_sync() -> None:
    _openai().chat.completions.create(**CHAT)


def openai_stream() -> None:
    for _ in _openai().chat.completions.create(**STREAM):
        pass


def openai_raw() -> None:
    _openai().chat.completions.with_raw_response.create(**CHAT).parse()


def openai_stream_helper() -> None:
    with _openai().chat.completions.stream(model="demo/small", messages=MSGS, max_tokens=5,
                                           stream_options={"include_usage": True}) as s:
        for _ in s:
            pass


def openai_responses() -> None:
    _openai().responses.create(model="demo/small", input="hello", max_output_tokens=5)


def openai_responses_stream() -> None:
    with _openai().responses.stream(model="demo/small", input="hello", max_output_tokens=5) as s:
        for _ in s:
            pass


def openai_embeddings() -> None:
    _openai().embeddings.create(model="demo/embed", input=["a b c"])


async def openai_async() -> None:
    import openai

    c = openai.AsyncOpenAI(base_url=BASE, api_key="sk-test-key", max_retries=0)
    await c.chat.completions.create(**CHAT)


async def openai_async_stream() -> None:
    import openai

    c = openai.AsyncOpenAI(base_url=BASE, api_key="sk-test-key", max_retries=0)
    async for _ in await c.chat.completions.create(**STREAM):
        pass


def _anthropic() -> Any:
    import anthropic

    return anthropic.Anthropic(base_url=ANTHROPIC_BASE, api_key="sk-ant-test", max_retries=0)


def anthropic_create() -> None:
    _anthropic().messages.create(model="claude-demo", max_tokens=5, messages=MSGS)


def anthropic_stream() -> None:
    with _anthropic().messages.stream(model="claude-demo", max_tokens=5, messages=MSGS) as s:
        for _ in s.text_stream:
            pass


def litellm_completion() -> None:
    import litellm

    litellm.completion(model="openai/demo/small", api_base=BASE, api_key="sk-test", messages=MSGS,
                       max_tokens=5)


async def litellm_acompletion() -> None:
    import litellm

    await litellm.acompletion(model="openai/demo/small", api_base=BASE, api_key="sk-test",
                              messages=MSGS, max_tokens=5)


def litellm_stream() -> None:
    import litellm

    for _ in litellm.completion(model="openai/demo/small", api_base=BASE, api_key="sk-test",
                                messages=MSGS, max_tokens=5, stream=True,
                                stream_options={"include_usage": True}):
        pass


def plain_get() -> None:
    import httpx
    import requests

    requests.get(f"{BASE}/models", timeout=10)
    httpx.get(f"{BASE}/models")


CASES: dict[str, Callable[[], Any]] = {f.__name__: f for f in (
    requests_plain, requests_stream, httpx_sync, httpx_async, httpx2_sync, httpx2_async,
    aiohttp_plain, aiohttp_stream, openai_sync, openai_stream, openai_raw, openai_stream_helper,
    openai_responses, openai_responses_stream, openai_embeddings, openai_async,
    openai_async_stream, anthropic_create, anthropic_stream, litellm_completion,
    litellm_acompletion, litellm_stream, plain_get)}


def main() -> None:
    names = [n for n in os.environ.get("CASES", "").split(",") if n] or list(CASES)
    for name in names:
        with tracer.start_as_current_span(f"case {name}"):
            result = CASES[name]()
            if isinstance(result, Awaitable):
                asyncio.run(result)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
