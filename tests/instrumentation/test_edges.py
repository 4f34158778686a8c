"""Calls that were recorded wrongly once (``edges_app.py``), each checked on its own case span."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from routerscope.core import signals
from routerscope.testing import FakeProvider, Fault, LoopbackServer, OTLPReceiver, attrs_of

from .conftest import Seen, env_for, run

APP = str(Path(__file__).with_name("edges_app.py"))
NULL_STREAM = b"".join(b"data: " + line + b"\n\n" for line in (
    b'{"id":"s","model":"m-resp","choices":[{"index":0,"delta":{"content":"hi"}}]}',
    b"null",  # JSON null: not the end of the stream
    b'{}\n: ' + b"x" * 200_000,  # a long comment: the rest comes in later reads than the null
    b'{"id":"s","model":"m-resp","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
    b'{"id":"s","model":"m-resp","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":7}}',
    b"[DONE]"))


class _Edge(BaseHTTPRequestHandler):
    """``/null/...``: a stream with a ``data: null`` event; ``/dup/...``: records X-Dup lines."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/null/"):
            body, ctype = NULL_STREAM, "text/event-stream"
        else:
            self.server.dups.append(self.headers.get_all("X-Dup"))
            body, ctype = json.dumps({"choices": [], "usage": {"prompt_tokens": 1}}).encode(), \
                "application/json"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class EdgeServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Edge)
        self._server.daemon_threads = True
        self.dups: list[list[str] | None] = []
        self._server.dups = self.dups  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def edges() -> Iterator[tuple[Seen, str, list[Any], dict[str, str]]]:
    """One run of every case: the spans, the app's stderr, the X-Dup lines seen, each case's result."""
    from .edges_app import CASES

    with (FakeProvider(per_token_latency=0.02, jitter=0.0, stream_usage="requested") as provider,
          FakeProvider() as anth, EdgeServer() as edge, OTLPReceiver() as rx):
        anth.enqueue(Fault(status=429, headers={"retry-after-ms": "10"}))
        env = env_for(rx, provider, ANTHROPIC_BASE=anth.url, EDGE=edge.url)
        code = f"import routerscope.auto, runpy; runpy.run_path({APP!r}, run_name='__main__')"
        out = run([sys.executable, "-c", code], env)
        assert out.returncode == 0, out.stderr[-3000:]
        results = {p[1]: p[2] for p in (line.split(" ", 2) for line in out.stdout.splitlines())
                   if p[0] == "ok"}
        assert list(results) == [c.__name__ for c in CASES], out.stdout
        assert rx.wait_for(lambda: sum(1 for _, s in rx.spans() if s.name.startswith("case "))
                           >= len(CASES), 20)
        assert anth.requests_total == 2, "the SDK retried once"
        yield Seen([s for _, s in rx.spans()]), out.stderr, edge.dups, results


def _failed_lines(stderr: str) -> list[dict[str, Any]]:
    """routerscope's "LLM call failed" lines on the app's stderr (the SDK's retried 429 has one)."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("{") and "LLM call failed" in line:
            out.append(json.loads(line))
    return out


def _one(seen: Seen, case: str) -> dict[str, Any]:
    genai = seen.genai(case)
    assert len(genai) == 1, (case, genai)
    return genai[0]


@pytest.mark.parametrize("case", ["httpx_mock_sync", "httpx_mock_async", "openai_mock"])
def test_in_memory_response_is_a_success(edges: Any, case: str) -> None:
    """A response whose body is already in memory (MockTransport) ends the call with its usage, no error."""
    seen, stderr, _, results = edges
    a = _one(seen, case)
    assert results[case] == "8"
    assert signals.ERROR_TYPE not in a, a
    assert (a[signals.GEN_AI_USAGE_INPUT_TOKENS], a[signals.GEN_AI_USAGE_OUTPUT_TOKENS]) == (3, 5)
    assert a[signals.GEN_AI_RESPONSE_MODEL] == "m-resp"
    assert list(a[signals.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert [w for w in _failed_lines(stderr) if w["gen_ai.request.model"] == "mock"] == []


def test_stream_left_early_is_not_a_warning(edges: Any) -> None:
    """A stream the reader leaves early keeps error.type=stream_closed on its span and prints no warning."""
    seen, stderr, _, _ = edges
    assert _one(seen, "openai_break_early").get(signals.ERROR_TYPE) == "stream_closed"
    assert [w for w in _failed_lines(stderr) if w["error.type"] == "stream_closed"] == []


def test_get_on_an_llm_path_is_not_an_llm_call(edges: Any) -> None:
    """GET /chat/completions (listing stored completions) gives no GenAI span in any client."""
    seen, stderr, _, results = edges
    assert len(results["get_list_completions"].split(",")) == 3
    assert seen.genai("get_list_completions") == []
    assert [w for w in _failed_lines(stderr) if w["error.type"] == "404"] == []


def test_data_null_event_does_not_end_the_stream(edges: Any) -> None:
    """A `data: null` event is skipped: usage and finish reasons after it are recorded."""
    seen, _, _, _ = edges
    a = _one(seen, "sse_data_null")
    assert (a.get(signals.GEN_AI_USAGE_INPUT_TOKENS), a.get(signals.GEN_AI_USAGE_OUTPUT_TOKENS)) == (2, 7)
    assert list(a[signals.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert signals.ERROR_TYPE not in a


def test_aiohttp_repeated_headers_go_out_unchanged(edges: Any) -> None:
    """Repeated request headers (a CIMultiDict, a list of pairs) reach the server as the app gave them."""
    _, _, dups, _ = edges
    assert dups == [["one", "two"], ["a", "b"]]


def test_sdk_retry_that_succeeds_has_no_error_type(edges: Any) -> None:
    """anthropic: 429 then 200 inside the SDK's one span: the span ends without error.type, with tokens."""
    seen, _, _, results = edges
    a = _one(seen, "anthropic_retry")
    assert results["anthropic_retry"] == str(a[signals.GEN_AI_USAGE_OUTPUT_TOKENS])
    assert signals.ERROR_TYPE not in a, a
    assert a[signals.HTTP_RESPONSE_STATUS_CODE] == 200


def test_cancelled_task_ends_its_stream_as_cancelled(edges: Any) -> None:
    """A task cancelled while its open stream waits (not mid-read) ends the span with CancelledError."""
    seen, _, _, results = edges
    assert results["cancelled_while_awaiting"] == "cancelled"
    assert _one(seen, "cancelled_while_awaiting").get(signals.ERROR_TYPE) == "CancelledError"


def test_secret_query_values_never_exported(edges: Any) -> None:
    """Secret query values (Azure APIM/Functions, AWS presigned, access-token) leave no span."""
    seen, _, _, results = edges
    assert results["secret_query"] == "200,200"
    a = _one(seen, "secret_query")
    assert "subscription-key=REDACTED&code=REDACTED&X-Amz-Signature=REDACTED&api-version=1" in \
        a[signals.URL_FULL]
    assert len(seen.children("secret_query")) == 2, "the GenAI span and the GET's HTTP span"
    assert "SECRET" not in repr([attrs_of(s.attributes) for s in seen.spans])


def test_requests_raw_read_is_a_whole_body(edges: Any) -> None:
    """A `stream=True` body read with resp.raw.read() ends the call with its usage, no error."""
    seen, _, _, results = edges
    a = _one(seen, "requests_raw_read")
    assert signals.ERROR_TYPE not in a, a
    assert str(a[signals.GEN_AI_USAGE_OUTPUT_TOKENS]) == results["requests_raw_read"]


def test_long_lived_task_keeps_no_callback_per_call(edges: Any) -> None:
    """An asyncio task that makes many calls holds no done-callback for any call that ended."""
    seen, _, _, results = edges
    assert results["long_lived_task"] == "0"
    assert len(seen.genai("long_lived_task")) == 5
