"""Every way a Python router calls a model gets exactly one GenAI span, checked at a real OTLP receiver."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from routerscope.core import signals
from routerscope.testing import FakeProvider, OTLPReceiver, attrs_of

from .clients_app import CASES
from .conftest import APP, Seen, auto_argv, count, env_for, run

STREAMS = {"requests_stream", "httpx_async", "httpx2_sync", "aiohttp_stream", "openai_stream",
           "openai_stream_helper", "openai_responses_stream", "openai_async_stream",
           "anthropic_stream", "litellm_stream"}
LLM_CASES = [c for c in CASES if c != "plain_get"]


@pytest.fixture(scope="module")
def auto_run(provider: FakeProvider) -> tuple[Seen, OTLPReceiver]:
    with OTLPReceiver() as rx:
        out = run(auto_argv(), env_for(rx, provider))
        assert out.returncode == 0, out.stderr[-4000:]
        want = len(CASES)
        assert rx.wait_for(lambda: sum(1 for _, s in rx.spans() if s.name.startswith("case "))
                           >= want, 20)
        assert rx.wait_for(lambda: bool(rx.data_points(
            signals.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK.name)), 10)
        return Seen([s for _, s in rx.spans()]), rx


@pytest.mark.parametrize("case", LLM_CASES)
def test_one_span_per_call(auto_run: tuple[Seen, OTLPReceiver], case: str) -> None:
    """Under the one import each call is exactly one GenAI span, the caller's child, with tokens."""
    seen, _ = auto_run
    genai = seen.genai(case)
    assert len(genai) == 1, genai
    a = genai[0]
    assert a[signals.GEN_AI_USAGE_INPUT_TOKENS] > 0
    if case != "openai_embeddings":  # an embedding has no output tokens and no finish reason
        assert a[signals.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
        assert a.get(signals.GEN_AI_RESPONSE_FINISH_REASONS)
    assert len(seen.children(case)) == 1, "the GenAI span is the caller's direct child"
    if case.startswith("anthropic"):
        assert a[signals.GEN_AI_PROVIDER_NAME] == "anthropic"  # the SDK's own span, enriched
    else:
        assert a[signals.GEN_AI_PROVIDER_NAME] == "self_hosted"  # loopback: never a raw IP


def test_plain_request_gets_no_genai_span(auto_run: tuple[Seen, OTLPReceiver]) -> None:
    """A request that is not an LLM call gets no GenAI span."""
    seen, _ = auto_run
    assert seen.genai("plain_get") == []


def test_stream_metrics(auto_run: tuple[Seen, OTLPReceiver]) -> None:
    """Streams record time to first chunk and time per output chunk; every call one HTTP duration."""
    _, rx = auto_run
    assert count(rx, signals.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK.name) == len(STREAMS)
    assert count(rx, signals.GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK.name) == len(STREAMS)
    assert count(rx, signals.GEN_AI_CLIENT_OPERATION_DURATION.name) == len(LLM_CASES)
    assert count(rx, signals.HTTP_CLIENT_REQUEST_DURATION.name,
                 http_request_method="POST") == len(LLM_CASES)


def test_keys_never_exported(auto_run: tuple[Seen, OTLPReceiver]) -> None:
    """The API keys the SDKs send never appear in any exported attribute."""
    seen, _ = auto_run
    text = repr([attrs_of(s.attributes) for s in seen.spans])
    assert "sk-test-key" not in text and "sk-ant-test" not in text


@pytest.mark.skipif(sys.platform != "linux", reason="opentelemetry-instrument run is linux-tested")
def test_under_opentelemetry_instrument(provider: FakeProvider, receiver: OTLPReceiver) -> None:
    """Under `opentelemetry-instrument`, every client's call gives one span, its tokens, one HTTP record."""
    exe = shutil.which("opentelemetry-instrument") or str(Path(sys.executable).with_name(
        "opentelemetry-instrument"))
    out = run([exe, sys.executable, APP], env_for(receiver, provider))
    assert out.returncode == 0, out.stderr[-4000:]
    assert "conflicting" not in out.stderr.lower()
    assert receiver.wait_for(lambda: sum(1 for _, s in receiver.spans() if s.name.startswith("case "))
                             >= len(CASES), 20)
    seen = Seen([s for _, s in receiver.spans()])
    for case in LLM_CASES:
        assert len(seen.genai(case)) == 1 and len(seen.children(case)) == 1, case
        genai = seen.genai(case)[0]
        assert genai[signals.GEN_AI_USAGE_INPUT_TOKENS] > 0, case
        if case != "openai_embeddings":  # an embedding has no output tokens
            assert genai[signals.GEN_AI_USAGE_OUTPUT_TOKENS] > 0, case
    assert seen.genai("plain_get") == []
    http = signals.HTTP_CLIENT_REQUEST_DURATION.name
    n = len(LLM_CASES)
    assert receiver.wait_for(lambda: count(receiver, http, http_request_method="POST") >= n, 10)
    assert count(receiver, http, http_request_method="POST") == n


def test_no_call_lost_while_requests_instrumentation_loads(provider: FakeProvider,
                                                          receiver: OTLPReceiver) -> None:
    """40 LLM calls right after the import, while requests instrumentation loads: 40 spans, no HTTP span."""
    code = ("import routerscope.auto, os, requests\n"
            "from routerscope.instrumentation import wait_instrumented\n"
            "s = requests.Session()\n"
            "for _ in range(40):\n"
            "    s.post(os.environ['BASE'] + '/chat/completions', json={'model': 'm', 'messages': []})\n"
            "assert wait_instrumented(10)\n"
            "s.get(os.environ['BASE'] + '/models')\n")
    out = run([sys.executable, "-c", code], env_for(receiver, provider))
    assert out.returncode == 0, out.stderr[-3000:]
    assert receiver.wait_for(lambda: any(s.name == "GET" for _, s in receiver.spans()), 20)
    names = [s.name for _, s in receiver.spans()]
    assert names.count("chat m") == 40 and "POST" not in names
