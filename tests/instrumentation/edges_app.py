"""Calls that were recorded wrongly once, one per case span (run by ``test_edges.py``).

In-memory responses (``MockTransport``), a stream left early, ``GET`` on an LLM path,
``data: null`` in a stream, repeated request headers, an SDK retry, a task cancelled
while its stream is open. Prints ``ok <case> <result>`` for each case.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from opentelemetry import trace

BASE = os.environ.get("BASE", "http://127.0.0.1:9/v1")
EDGE = os.environ.get("EDGE", "http://127.0.0.1:9")
ANTHROPIC_BASE = os.environ.get("ANTHROPIC_BASE", "http://127.0.0.1:9")
BODY: dict[str, Any] = {
    "id": "x", "object": "chat.completion", "created": 1, "model": "m-resp",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}
REQ: dict[str, Any] = {"model": "mock", "messages": [{"role": "user", "content": "x"}], "max_tokens": 4}
STREAM: dict[str, Any] = {**REQ, "model": "streamed", "max_tokens": 8, "stream": True,
                          "stream_options": {"include_usage": True}}
tracer = trace.get_tracer("edges_app")


def httpx_mock_sync() -> Any:
    import httpx

    c = httpx.Client(transport=httpx.MockTransport(lambda req: httpx.Response(200, json=BODY)))
    return c.post("http://127.0.0.1:1/v1/chat/completions", json=REQ).json()["usage"]["total_tokens"]


async def httpx_mock_async() -> Any:
    import httpx

    async def answer(req: Any) -> Any:
        return httpx.Response(200, json=BODY)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as c:
        r = await c.post("http://127.0.0.1:1/v1/chat/completions", json=REQ)
        return r.json()["usage"]["total_tokens"]


def openai_mock() -> Any:
    import httpx2
    import openai

    client = httpx2.Client(transport=httpx2.MockTransport(lambda req: httpx2.Response(200, json=BODY)))
    c = openai.OpenAI(base_url="http://127.0.0.1:1/v1", api_key="k", http_client=client)
    usage = c.chat.completions.create(**REQ).usage
    return usage.total_tokens if usage else None


def openai_break_early() -> Any:
    import openai

    s = openai.OpenAI(base_url=BASE, api_key="k", max_retries=0).chat.completions.create(**STREAM)
    for _ in s:
        break
    s.close()
    return "closed"


def get_list_completions() -> Any:
    import httpx
    import requests

    a = httpx.get(f"{BASE}/chat/completions?limit=10").status_code
    b = requests.get(f"{BASE}/chat/completions?limit=10", timeout=10).status_code

    async def via_aiohttp() -> int:
        import aiohttp

        async with aiohttp.ClientSession() as s, s.get(f"{BASE}/chat/completions?limit=10") as r:
            await r.read()
            return r.status

    return f"{a},{b},{asyncio.run(via_aiohttp())}"


def sse_data_null() -> Any:
    import httpx

    with httpx.stream("POST", f"{EDGE}/null/v1/chat/completions", json=STREAM) as r:
        return sum(1 for _ in r.iter_lines())


async def aiohttp_dup_headers() -> Any:
    import aiohttp
    import multidict

    async with aiohttp.ClientSession() as s:
        for headers in (multidict.CIMultiDict([("X-Dup", "one"), ("X-Dup", "two")]),
                        [("X-Dup", "a"), ("X-Dup", "b")]):
            async with s.post(f"{EDGE}/dup/v1/chat/completions", json=REQ, headers=headers) as r:
                await r.read()
    return "sent"


def anthropic_retry() -> Any:
    import anthropic

    c = anthropic.Anthropic(base_url=ANTHROPIC_BASE, api_key="k", max_retries=2)
    m = c.messages.create(model="claude-demo", max_tokens=5,
                          messages=[{"role": "user", "content": "hi"}])
    return m.usage.output_tokens


async def cancelled_while_awaiting() -> Any:
    import openai

    client = openai.AsyncOpenAI(base_url=BASE, api_key="k", max_retries=0)
    first = asyncio.Event()
    never = asyncio.Event()

    async def consume() -> None:
        async for _ in await client.chat.completions.create(**STREAM):
            first.set()
            await never.wait()  # the task is cancelled here, not while reading the stream

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "not cancelled"


def secret_query() -> Any:
    import requests

    from routerscope.instrumentation import wait_instrumented

    assert wait_instrumented(10)  # the requests instrumentation gives the GET its HTTP span
    q = "subscription-key=SECRETAPIM1&code=SECRETFN2&X-Amz-Signature=SECRETSIG3&api-version=1"
    a = requests.post(f"{BASE}/chat/completions?{q}", json=REQ, timeout=10).status_code
    b = requests.get(f"{BASE}/models?access-token=SECRETDASH4", timeout=10).status_code
    return f"{a},{b}"


def requests_raw_read() -> Any:
    import json

    import requests

    r = requests.post(f"{BASE}/chat/completions", json=REQ, stream=True, timeout=10)
    data = r.raw.read()  # past requests, as shutil.copyfileobj(r.raw, f) reads
    r.close()
    return json.loads(data)["usage"]["completion_tokens"]


async def long_lived_task() -> Any:
    import httpx

    task = asyncio.current_task()
    assert task is not None
    before = len(task._callbacks)  # asyncio's own list (no public accessor)
    async with httpx.AsyncClient() as c:
        for _ in range(5):
            (await c.post(f"{BASE}/chat/completions", json=REQ)).raise_for_status()
    return len(task._callbacks) - before


CASES = [httpx_mock_sync, httpx_mock_async, openai_mock, openai_break_early, get_list_completions,
         sse_data_null, aiohttp_dup_headers, anthropic_retry, cancelled_while_awaiting,
         secret_query, requests_raw_read, long_lived_task]


def main() -> None:
    only = set(filter(None, os.environ.get("CASES", "").split(",")))
    for case in CASES:
        if only and case.__name__ not in only:
            continue
        with tracer.start_as_current_span(f"case {case.__name__}"):
            result = case()
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
            print("ok", case.__name__, result, flush=True)


if __name__ == "__main__":
    main()
