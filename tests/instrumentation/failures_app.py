"""Streams that end badly, one per case span: closed early, an exception mid-stream, a task cancelled.

Run by ``test_failures.py`` after ``import routerscope.auto``; prints ``ok <case> <exception>``
for each case whose caller saw exactly the exception it raised (or none).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from opentelemetry import trace

BASE = os.environ.get("BASE", "http://127.0.0.1:9/v1")
STREAM: dict[str, Any] = {"model": "demo/small", "messages": [{"role": "user", "content": "hi"}],
          "max_tokens": 8, "stream": True, "stream_options": {"include_usage": True}}
tracer = trace.get_tracer("failures_app")


class AppError(Exception):
    pass


def openai_closed_early() -> None:
    import openai

    s = openai.OpenAI(base_url=BASE, api_key="k", max_retries=0).chat.completions.create(**STREAM)
    next(iter(s))
    s.close()


def httpx2_app_raises() -> None:
    import httpx2

    with httpx2.Client() as c, c.stream("POST", f"{BASE}/chat/completions", json=STREAM) as r:
        for _ in r.iter_lines():
            raise AppError("the app gave up")


def requests_closed_early() -> None:
    import requests

    r = requests.post(f"{BASE}/chat/completions", json=STREAM, stream=True, timeout=10)
    next(r.iter_lines())
    r.close()


async def aiohttp_closed_early() -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.post(f"{BASE}/chat/completions", json=STREAM) as r:
        await r.content.readline()


async def openai_async_cancelled() -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=BASE, api_key="k", max_retries=0)
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in await client.chat.completions.create(**STREAM):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


def provider_error_event() -> None:
    import openai

    try:
        for _ in openai.OpenAI(base_url=BASE, api_key="k", max_retries=0).chat.completions.create(**STREAM):
            pass
    except openai.APIError:
        pass


CASES = [openai_closed_early, httpx2_app_raises, requests_closed_early, aiohttp_closed_early,
         openai_async_cancelled, provider_error_event]


def main() -> None:
    for case in CASES:
        with tracer.start_as_current_span(f"case {case.__name__}"):
            try:
                result = case()
                if asyncio.iscoroutine(result):
                    asyncio.run(result)
                print("ok", case.__name__, None)
            except AppError as exc:
                print("ok", case.__name__, type(exc).__name__)


if __name__ == "__main__":
    main()
