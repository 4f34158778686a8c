"""An SDK call its client retries is still one GenAI span and one GenAI duration record."""

from __future__ import annotations

import sys

from routerscope.core import signals
from routerscope.testing import FakeProvider, Fault, OTLPReceiver

from .conftest import Seen, count, env_for, run

APP = """
import routerscope.auto
import asyncio, os, openai
from opentelemetry import trace
t = trace.get_tracer("app")
base = os.environ["BASE"]
msgs = [{"role": "user", "content": "hi"}]
with t.start_as_current_span("case retried_then_ok"):
    openai.OpenAI(base_url=base, api_key="k", max_retries=2).chat.completions.create(
        model="demo/small", messages=msgs)
with t.start_as_current_span("case retried_async"):
    async def go():
        await openai.AsyncOpenAI(base_url=base, api_key="k", max_retries=2).chat.completions.create(
            model="demo/small", messages=msgs)
    asyncio.run(go())
with t.start_as_current_span("case retried_and_failed"):
    try:
        openai.OpenAI(base_url=base, api_key="k", max_retries=1).chat.completions.create(
            model="demo/small", messages=msgs)
    except openai.InternalServerError:
        print("failed as the app expects")
"""


def test_retried_calls_are_one_span_each(provider: FakeProvider, receiver: OTLPReceiver) -> None:
    """429 then 200 (sync and async): one span, no error; 500 twice: one span with error.type=500."""
    retry = {"Retry-After": "0"}
    provider.enqueue(
        Fault(status=429, headers=retry), Fault(),  # retried_then_ok: 429, then a normal answer
        Fault(status=503, headers=retry), Fault(),  # retried_async
        Fault(status=500, headers=retry), Fault(status=500, headers=retry),  # retried_and_failed
    )
    out = run([sys.executable, "-c", APP], env_for(receiver, provider))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "failed as the app expects" in out.stdout
    assert receiver.wait_for(lambda: sum(1 for _, s in receiver.spans()
                                         if s.name.startswith("case ")) == 3, 20)
    seen = Seen([s for _, s in receiver.spans()])
    for case in ("retried_then_ok", "retried_async"):
        genai = seen.genai(case)
        assert len(genai) == 1, (case, genai)
        assert signals.ERROR_TYPE not in genai[0], (case, genai[0])
        assert genai[0][signals.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    failed = seen.genai("retried_and_failed")
    assert len(failed) == 1 and failed[0][signals.ERROR_TYPE] == "500", failed
    duration = signals.GEN_AI_CLIENT_OPERATION_DURATION.name
    assert receiver.wait_for(lambda: count(receiver, duration) >= 3, 10)
    assert count(receiver, duration) == 3  # one per call, not per attempt
    http = signals.HTTP_CLIENT_REQUEST_DURATION.name
    assert count(receiver, http) == 6  # one per attempt, as HTTP semantics say
