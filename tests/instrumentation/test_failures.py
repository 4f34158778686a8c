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
