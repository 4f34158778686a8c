"""An OpenAI-compatible provider served on 127.0.0.1, with realistic latency.

Used by ``routerscope demo``, the benchmarks and the tests: it answers
``/chat/completions`` (plain and SSE streaming), ``/completions``,
``/embeddings``, ``/models`` and ``/key`` under any prefix, the OpenAI
Responses API (``/responses``, plain and SSE) and the Anthropic Messages API
(``/v1/messages``, plain and SSE with ``message_start`` / ``content_block_delta``
/ ``message_delta`` usage), with a latency
model (base + per output token, with jitter) and token usage in ``usage``.
Faults are scripted with :meth:`FakeProvider.enqueue`: the next requests get
the given status, headers, body, delay, a hang, or an error mid-stream.
"""

from __future__ import annotations

import collections
import json
import random
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from routerscope.testing._loopback import LoopbackServer

__all__ = ["FakeProvider", "Fault", "SeenRequest"]


@dataclass
class Fault:
    """What the next request gets instead of a normal answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # dict -> JSON, str/bytes -> as is, None -> the normal answer
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # never answer (until the provider stops)
    stream_error_after: int | None = None  # SSE: send an error event after N chunks
    close: bool = False  # close the connection without answering


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float
    client_port: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    provider: FakeProvider

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that closes or resets its connection is the client's business
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body are separate writes: without TCP_NODELAY, Nagle + delayed ACK
    # stall every keep-alive response by ~40 ms, which no real provider does
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.server.provider._count_connection()

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _handle(self) -> None:
        p = self.server.provider
        body = self._read_body()
        p._record(
            SeenRequest(
                self.command,
                self.path,
                dict(self.headers.items()),
                body,
                time.monotonic(),
                self.client_address[1],
            )
        )
        fault = p._next_fault()
        if fault is not None:
            if fault.hang:
                p._halt.wait()
                self.close_connection = True
                return
            if fault.close:
                self.close_connection = True
                return
            if fault.delay:
                p._halt.wait(fault.delay)
            if fault.status != 200 or fault.body is not None:
                payload = fault.body
                if isinstance(payload, dict | list):
                    data, ctype = json.dumps(payload).encode(), "application/json"
                elif isinstance(payload, str):
                    data, ctype = payload.encode(), "text/plain"
                elif isinstance(payload, bytes):
                    data, ctype = payload, "application/octet-stream"
                else:
                    data = json.dumps(
                        {"error": {"code": fault.status, "message": f"scripted {fault.status}"}}
                    ).encode()
                    ctype = "application/json"
                self._send(fault.status, data, ctype, fault.headers)
                return
        path = self.path.split("?", 1)[0].rstrip("/")
        if self.command == "GET" and path.endswith("/models"):
            models = {"data": [{"id": m, "context_length": 8192} for m in p.models]}
            self._send(200, json.dumps(models).encode(), "application/json", {})
        elif self.command == "GET" and path.endswith("/key"):
            key = {"data": {"label": "demo", "usage": p.requests_total, "limit": None, "is_free_tier": True}}
            self._send(200, json.dumps(key).encode(), "application/json", {})
        elif self.command == "POST" and path.endswith("/v1/messages"):
            self._messages(body if isinstance(body, dict) else {}, fault)
        elif self.command == "POST" and path.endswith("/responses"):
            self._responses(body if isinstance(body, dict) else {}, fault)
        elif self.command == "POST" and path.endswith("/chat/completions"):
            self._completion(body if isinstance(body, dict) else {}, fault, chat=True)
        elif self.command == "POST" and path.endswith("/completions"):
            self._completion(body if isinstance(body, dict) else {}, fault, chat=False)
        elif self.command == "POST" and path.endswith("/embeddings"):
            self._embeddings(body if isinstance(body, dict) else {})
        else:
            self._send(404, b'{"error":{"code":404,"message":"not found"}}', "application/json", {})

    do_GET = _handle  # noqa: N815 - the stdlib handler's names
    do_POST = _handle  # noqa: N815

    def _completion(self, req: dict[str, Any], fault: Fault | None, *, chat: bool) -> None:
        p = self.server.provider
        model = str(req.get("model") or "demo/model")
        prompt_tokens = p.count_tokens(req.get("messages") if chat else req.get("prompt"))
        out_tokens = p.output_tokens(req.get("max_tokens"))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": out_tokens,
            "total_tokens": prompt_tokens + out_tokens,
        }
        rid = f"gen-{p._next_id()}"
        latency = p.latency_for(out_tokens)
        if not req.get("stream"):
            p._halt.wait(latency)
            text = " ".join(["token"] * out_tokens)
            choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            data = {
                "id": rid,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": p.served_model(model),
                "choices": [choice],
                "usage": usage,
            }
            self._send(200, json.dumps(data).encode(), "application/json", {})
            return
        # SSE stream, chunked transfer encoding
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunks = max(1, min(out_tokens, 8))
        per_chunk = latency / chunks

        def emit(text: str) -> None:
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        emit(": OPENROUTER PROCESSING\n\n")
        for i in range(chunks):
            if fault is not None and fault.stream_error_after is not None and i >= fault.stream_error_after:
                err = {
                    "id": rid,
                    "object": "chat.completion.chunk",
                    "model": model,
                    "error": {"code": 502, "message": "provider disconnected mid-stream"},
                    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
                }
                emit(f"data: {json.dumps(err)}\n\n")
                break
            p._halt.wait(per_chunk)
            delta = {
                "id": rid,
                "object": "chat.completion.chunk",
                "model": p.served_model(model),
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": "token "},
                        "finish_reason": "stop" if i == chunks - 1 else None,
                    }
                ],
            }
            emit(f"data: {json.dumps(delta)}\n\n")
        else:
            if p.stream_usage != "always" and not (req.get("stream_options") or {}).get("include_usage"):
                emit("data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return
            final = {
                "id": rid,
                "object": "chat.completion.chunk",
                "model": p.served_model(model),
                "choices": [],
                "usage": usage,
            }
            emit(f"data: {json.dumps(final)}\n\n")
            emit("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _start_sse(self) -> Any:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def emit(event: str, data: dict[str, Any]) -> None:
            raw = f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            self.wfile.flush()

        return emit

    def _end_sse(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _messages(self, req: dict[str, Any], fault: Fault | None) -> None:
        """Anthropic Messages: a ``message`` body, or its SSE events with usage."""
        p = self.server.provider
        model = str(req.get("model") or "claude-demo")
        inp = p.count_tokens(req.get("messages")) + p.count_tokens(req.get("system"))
        out = p.output_tokens(req.get("max_tokens"))
        mid = f"msg_{p._next_id()}"
        latency = p.latency_for(out)
        message: dict[str, Any] = {"id": mid, "type": "message", "role": "assistant", "model": model,
                                   "content": [], "stop_reason": None, "stop_sequence": None,
                                   "usage": {"input_tokens": inp, "output_tokens": 1}}
        if not req.get("stream"):
            p._halt.wait(latency)
            message.update(content=[{"type": "text", "text": " ".join(["token"] * out)}],
                           stop_reason="end_turn", usage={"input_tokens": inp, "output_tokens": out})
            self._send(200, json.dumps(message).encode(), "application/json", {})
            return
        emit = self._start_sse()
        emit("message_start", {"type": "message_start", "message": message})
        emit("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}})
        emit("ping", {"type": "ping"})
        chunks = max(1, min(out, 8))
        for i in range(chunks):
            if fault is not None and fault.stream_error_after is not None and i >= fault.stream_error_after:
                emit("error", {"type": "error", "error": {"type": "overloaded_error",
                                                          "message": "Overloaded"}})
                self._end_sse()
                return
            p._halt.wait(latency / chunks)
            emit("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": "token "}})
        emit("content_block_stop", {"type": "content_block_stop", "index": 0})
        emit("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": out}})
        emit("message_stop", {"type": "message_stop"})
        self._end_sse()

    def _responses(self, req: dict[str, Any], fault: Fault | None) -> None:
        """OpenAI Responses API: a ``response`` body, or its SSE events ending in ``response.completed``."""
        p = self.server.provider
        model = str(req.get("model") or "demo/model")
        inp = p.count_tokens(req.get("input"))
        out = p.output_tokens(req.get("max_output_tokens"))
        rid = f"resp_{p._next_id()}"
        latency = p.latency_for(out)
        text = " ".join(["token"] * out)
        resp: dict[str, Any] = {
            "id": rid, "object": "response", "created_at": int(time.time()), "status": "in_progress",
            "model": p.served_model(model), "output": [], "parallel_tool_calls": True,
            "tool_choice": "auto", "tools": [], "error": None, "incomplete_details": None,
            "instructions": None, "metadata": {}, "temperature": 1.0, "top_p": 1.0, "usage": None,
        }
        done = {**resp, "status": "completed",
                "output": [{"type": "message", "id": f"msg_{rid}", "status": "completed",
                            "role": "assistant",
                            "content": [{"type": "output_text", "text": text, "annotations": []}]}],
                "usage": {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out,
                          "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens_details": {"reasoning_tokens": 0}}}
        if not req.get("stream"):
            p._halt.wait(latency)
            self._send(200, json.dumps(done).encode(), "application/json", {})
            return
        emit = self._start_sse()
        seq = 0
        emit("response.created", {"type": "response.created", "sequence_number": seq, "response": resp})
        item = {"type": "message", "id": f"msg_{rid}", "status": "in_progress", "role": "assistant",
                "content": []}
        emit("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                            "item": item, "sequence_number": 1})
        emit("response.content_part.added", {"type": "response.content_part.added",
                                             "item_id": f"msg_{rid}", "output_index": 0,
                                             "content_index": 0, "sequence_number": 2,
                                             "part": {"type": "output_text", "text": "",
                                                      "annotations": []}})
        seq = 2
        chunks = max(1, min(out, 8))
        for _ in range(chunks):
            p._halt.wait(latency / chunks)
            seq += 1
            emit("response.output_text.delta", {"type": "response.output_text.delta",
                                                "item_id": f"msg_{rid}", "output_index": 0,
                                                "content_index": 0, "delta": "token ",
                                                "logprobs": [], "sequence_number": seq})
        emit("response.completed", {"type": "response.completed", "sequence_number": seq + 1,
                                    "response": done})
        self._end_sse()

    def _embeddings(self, req: dict[str, Any]) -> None:
        p = self.server.provider
        inputs = req.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        tokens = sum(p.count_tokens(i) for i in items)
        p._halt.wait(p.latency_for(0))
        data = {
            "object": "list",
            "model": str(req.get("model") or "demo/embed"),
            "data": [{"object": "embedding", "index": i, "embedding": [0.0] * 8} for i in range(len(items))],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        self._send(200, json.dumps(data).encode(), "application/json", {})


class FakeProvider(LoopbackServer):
    """An OpenAI-compatible HTTP(S) server on 127.0.0.1 in a background thread.

    ``base_latency`` seconds plus ``per_token_latency`` per output token, each
    scaled by a uniform jitter of +-``jitter``; ``output_tokens`` is the range
    of completion lengths when the request sets no ``max_tokens``;
    ``stream_usage`` is ``"always"`` (a usage chunk ends every chat stream, as
    OpenRouter does) or ``"requested"`` (only with ``stream_options.include_usage``,
    as OpenAI does).
    """

    thread_name = "fake-provider"

    def __init__(
        self,
        *,
        base_latency: float = 0.0,
        per_token_latency: float = 0.0,
        jitter: float = 0.2,
        output_tokens: tuple[int, int] = (16, 128),
        models: tuple[str, ...] = ("demo/small", "demo/medium", "demo/large"),
        tls: ssl.SSLContext | None = None,
        seed: int = 0,
        stream_usage: str = "always",
    ) -> None:
        self.base_latency = base_latency
        self.per_token_latency = per_token_latency
        self.jitter = jitter
        self.output_range = output_tokens
        self.models = models
        # "always": a usage chunk ends every chat stream (OpenRouter); "requested": only
        # with stream_options.include_usage (OpenAI)
        self.stream_usage = stream_usage
        super().__init__()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._faults: collections.deque[Fault] = collections.deque()
        self.seen: list[SeenRequest] = []
        self.connections = 0
        self.requests_total = 0
        self._ids = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.provider = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/v1"

    def enqueue(self, *faults: Fault) -> None:
        """The next len(faults) requests get these answers, in order."""
        with self._lock:
            self._faults.extend(faults)

    # -- model of a provider --------------------------------------------------------

    def count_tokens(self, content: Any) -> int:
        if content is None:
            return 0
        if isinstance(content, list):
            return sum(
                self.count_tokens(m.get("content") if isinstance(m, dict) else m) for m in content
            ) + 3 * len(content)
        return max(1, len(str(content)) // 4)

    def output_tokens(self, max_tokens: Any) -> int:
        if isinstance(max_tokens, int) and max_tokens > 0:
            return max_tokens
        with self._lock:
            return self._rng.randint(*self.output_range)

    def latency_for(self, out_tokens: int) -> float:
        nominal = self.base_latency + self.per_token_latency * out_tokens
        if nominal <= 0:
            return 0.0
        with self._lock:
            factor = 1.0 + self._rng.uniform(-self.jitter, self.jitter)
        return nominal * factor

    def served_model(self, model: str) -> str:
        return model if "/" in model else f"demo/{model}"

    # -- bookkeeping ------------------------------------------------------------------

    def _count_connection(self) -> None:
        with self._lock:
            self.connections += 1

    def _record(self, req: SeenRequest) -> None:
        with self._lock:
            self.seen.append(req)
            self.requests_total += 1

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids
