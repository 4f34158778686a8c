"""Streams that end badly end their span with error.type; the caller's exception is unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

from routerscope.core import signals
from routerscope.testing import FakeProvider, Fault, OTLPReceiver

from .conftest import Seen, env_for, run

APP = str(Path(__file__).with_name("failures_app.py"))


def test_stream_failures(receiver: OTLPReceiver) -> None:
    """Closed early, app exception, cancelled task, error event: one span each, ended, with error.type."""
    with FakeProvider(per_token_latency=0.01, jitter=0.0, stream_usage="requested") as provider:
        _check(provider, receiver)


def _check(provider: FakeProvider, receiver: OTLPReceiver) -> None:
    from .failures_app import CASES

    names = [c.__name__ for c in CASES]
    code = f"import routerscope.auto, runpy; runpy.run_path({APP!r}, run_name='__main__')"
    # faults apply in request order: normal answers, then an error event after 2 chunks
    provider.enqueue(*[Fault() for _ in range(len(names) - 1)], Fault(stream_error_after=2))
    out = run([sys.executable, "-c", code], env_for(receiver, provider))
    assert out.returncode == 0, out.stderr[-3000:]
    printed = [line.split() for line in out.stdout.splitlines() if line.startswith("ok ")]
    assert [p[1] for p in printed] == names, "every caller got exactly its own outcome"
    assert dict((p[1], p[2]) for p in printed)["httpx2_app_raises"] == "AppError"
    assert receiver.wait_for(lambda: sum(1 for _, s in receiver.spans() if s.name.startswith("case "))
                             >= len(names), 20)
    seen = Seen([s for _, s in receiver.spans()])
    want = {"openai_closed_early": "stream_closed", "httpx2_app_raises": "stream_closed",
            "requests_closed_early": "stream_closed", "aiohttp_closed_early": "stream_closed",
            "openai_async_cancelled": "CancelledError", "provider_error_event": "502"}
    for name, error in want.items():
        genai = seen.genai(name)
        assert len(genai) == 1, (name, genai)
        got = genai[0].get(signals.ERROR_TYPE)
        assert got == error, (name, got)


def test_redirected_llm_call_is_one_span(receiver: OTLPReceiver, provider: FakeProvider) -> None:
    """A 307 the app's requests follows stays one GenAI span with the final answer, no HTTP span beside it."""
    provider.enqueue(Fault(status=307, headers={"Location": "/v1/chat/completions"}, body=""))
    code = ("import routerscope.auto, requests\n"
            "from routerscope.instrumentation import wait_instrumented\n"
            "assert wait_instrumented()\n"
            f"r = requests.post({provider.base_url!r} + '/chat/completions', json={{'model': 'm1'}})\n"
            "print(r.status_code, len(r.history))\n")
    out = run([sys.executable, "-c", code], env_for(receiver, provider))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["200", "1"]
    assert receiver.wait_for(lambda: any(s.name == "chat m1" for _, s in receiver.spans()), 10)
    spans = [s for _, s in receiver.spans()]
    assert [s.name for s in spans] == ["chat m1"]
    attrs = {kv.key: kv.value for kv in spans[0].attributes}
    assert attrs[signals.GEN_AI_USAGE_OUTPUT_TOKENS].int_value > 0


def test_a_long_prompt_still_gives_model_and_tokens(receiver: OTLPReceiver, provider: FakeProvider) -> None:
    """An 8 KB prompt (its text not decoded by telemetry) still gives the model and the token counts."""
    code = ("import routerscope.auto, requests\n"
            "from routerscope.instrumentation import wait_instrumented\n"
            "assert wait_instrumented()\n"
            "msgs = [{'role': 'user', 'content': 'hi ' * 2730}]\n"
            f"r = requests.post({provider.base_url!r} + '/chat/completions',\n"
            "                  json={'messages': msgs, 'model': 'm8k', 'max_tokens': 6})\n"
            "print(r.json()['usage']['prompt_tokens'])\n")
    out = run([sys.executable, "-c", code], env_for(receiver, provider))
    assert out.returncode == 0, out.stderr[-3000:]
    prompt_tokens = int(out.stdout.split()[0])
    assert receiver.wait_for(lambda: any(s.name == "chat m8k" for _, s in receiver.spans()), 10)
    (span,) = [s for _, s in receiver.spans() if s.name == "chat m8k"]
    attrs = {kv.key: kv.value for kv in span.attributes}
    assert attrs[signals.GEN_AI_REQUEST_MAX_TOKENS].int_value == 6
    assert attrs[signals.GEN_AI_USAGE_INPUT_TOKENS].int_value == prompt_tokens > 1000


def test_unpatched_wrapper_beneath_the_instrumentation_passes_calls_through(
        receiver: OTLPReceiver, provider: FakeProvider) -> None:
    """Unpatching the GenAI wrapper while the requests instrumentation still wraps it breaks no request."""
    code = ("import requests\n"
            "from opentelemetry.instrumentation.requests import RequestsInstrumentor\n"
            "from routerscope.instrumentation import _requests as r\n"
            "r.patch_genai(); r.instrument_beneath(RequestsInstrumentor().instrument)\n"
            "r.unpatch_genai()\n"
            f"a = requests.post({provider.base_url!r} + '/chat/completions', json={{'model': 'm1'}})\n"
            f"b = requests.get({provider.base_url!r} + '/models')\n"
            "r.patch_genai()  # and back on top\n"
            f"c = requests.post({provider.base_url!r} + '/chat/completions', json={{'model': 'm2'}})\n"
            "print(a.status_code, b.status_code, c.status_code)\n")
    out = run([sys.executable, "-c", code], {**env_for(receiver, provider), "OTEL_SDK_DISABLED": "true"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["200", "200", "200"]
