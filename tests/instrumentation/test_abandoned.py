"""An httpx2 stream the application drops unread still ends its GenAI span once collected."""

from __future__ import annotations

import sys

from routerscope.core import signals
from routerscope.testing import FakeProvider, OTLPReceiver, attrs_of

from .conftest import env_for, run

APP = """
import gc, os
import routerscope.auto
import httpx2
c = httpx2.Client()
body = {"model": "demo/small", "messages": [{"role": "user", "content": "hi"}], "stream": True}
r = c.send(c.build_request("POST", os.environ["BASE"] + "/chat/completions", json=body), stream=True)
assert r.status_code == 200
del r  # never read, never closed
gc.collect()
"""


def test_abandoned_httpx2_stream_ends_its_span(provider: FakeProvider, receiver: OTLPReceiver) -> None:
    """A streamed response dropped without reading or closing gives one ended span, stream_closed."""
    out = run([sys.executable, "-c", APP], env_for(receiver, provider))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Exception ignored" not in out.stderr
    assert receiver.wait_for(lambda: any(signals.GEN_AI_OPERATION_NAME in attrs_of(s.attributes)
                                         for _, s in receiver.spans()), 20)
    genai = [attrs_of(s.attributes) for _, s in receiver.spans()
             if signals.GEN_AI_OPERATION_NAME in attrs_of(s.attributes)]
    assert len(genai) == 1
    assert genai[0][signals.ERROR_TYPE] == "stream_closed"
