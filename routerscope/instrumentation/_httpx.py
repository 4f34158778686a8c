"""``httpx`` 0.28 and ``httpx2`` (the HTTP layer of ``openai`` 3.x and ``anthropic`` 2.x).

``httpx2`` is a fork of ``httpx`` with the same client internals, so one
module serves both. Patched when each is imported:

* ``Client._send_single_request`` / ``AsyncClient._send_single_request`` — every
  request the client sends, whatever its transport (the default one, a proxy,
  LiteLLM's aiohttp transport): an LLM call gets its GenAI span
  (:mod:`routerscope.instrumentation._genai_http`), its response stream is
  wrapped so usage and chunks are read as the caller reads them, and the
  request is counted for connection reuse;
* ``httpcore`` / ``httpcore2`` ``HTTPConnection._connect`` (sync and async) —
  every new connection, for the reuse ratio (``routerscope.pool.*``).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

from routerscope.core import otel
from routerscope.core.pool import pool_stats, register_pool_observers
from routerscope.instrumentation._genai_http import Tracked, is_suppressed, start

__all__ = ["patch_client", "patch_core"]

_lock = threading.Lock()
_MARK = "_routerscope_patched"


def _port(url: Any) -> int:
    return int(url.port or (443 if url.scheme == "https" else 80))


def _body(request: Any) -> Any:
    content = getattr(request, "_content", None)  # set once a body is in memory (json=, content=)
    return content if isinstance(content, bytes) else None


def _start(request: Any) -> Tracked | None:
    url = request.url
    host = url.host
    if not is_suppressed():
        pool_stats().add_request(host, _port(url))
    return start(request.method, str(url), host, url.port, url.scheme, url.path, _body(request))


def _already_read(response: Any, tracked: Tracked) -> bool:
    """A response built with its body in memory (``content=``/``json=``, a ``MockTransport``)
    is never iterated again: it is read now and the call ends."""
    content = getattr(response, "_content", None)
    if not isinstance(content, bytes):
        return False
    tracked.feed(content)
    tracked.finish()
    return True


def _abandoned(tracked: Tracked) -> None:
    """A wrapped stream was garbage-collected: end its call if nothing else did (never raises)."""
    try:
        tracked.close()
    except Exception:  # noqa: BLE001 - a finaliser must not raise
        otel.swallowed("genai.abandoned")


def patch_client(mod: ModuleType) -> None:
    """Patch ``mod.Client`` and ``mod.AsyncClient`` (``mod`` is httpx or httpx2)."""
    with _lock:
        if getattr(mod, _MARK, False):
            return
        sync_base, async_base = mod.SyncByteStream, mod.AsyncByteStream

        class _Stream(sync_base):  # type: ignore[misc, valid-type]
            def __init__(self, inner: Any, tracked: Tracked) -> None:
                self._inner = inner
                self._tracked = tracked

            def __iter__(self) -> Iterator[bytes]:
                t = self._tracked
                try:
                    for chunk in self._inner:
                        t.feed(chunk)
                        yield chunk
                except GeneratorExit:  # the reader stopped early: the close that follows ends it
                    t.close()
                    raise
                except BaseException as exc:
                    t.fail(exc)
                    raise
                t.finish()

            def close(self) -> None:
                try:
                    self._inner.close()
                finally:
                    self._tracked.close()

            def __del__(self) -> None:  # the response was abandoned unread: still end the span
                _abandoned(self._tracked)

        class _AsyncStream(async_base):  # type: ignore[misc, valid-type]
            def __init__(self, inner: Any, tracked: Tracked) -> None:
                self._inner = inner
                self._tracked = tracked

            async def __aiter__(self) -> AsyncIterator[bytes]:
                t = self._tracked
                try:
                    async for chunk in self._inner:
                        t.feed(chunk)
                        yield chunk
                except GeneratorExit:  # the reader stopped early: the close that follows ends it
                    t.close()
                    raise
                except BaseException as exc:
                    t.fail(exc)
                    raise
                t.finish()

            async def aclose(self) -> None:
                try:
                    await self._inner.aclose()
                finally:
                    self._tracked.close()

            def __del__(self) -> None:
                _abandoned(self._tracked)

        orig_sync = mod.Client._send_single_request
        orig_async = mod.AsyncClient._send_single_request

        def _send_single_request(self: Any, request: Any) -> Any:
            tracked = _start(request)
            if tracked is None:
                return orig_sync(self, request)
            try:
                with tracked.scope(request.headers):
                    response = orig_sync(self, request)
            except BaseException as exc:
                tracked.fail(exc)
                raise
            tracked.response(response.status_code, response.headers.get("content-type"))
            if _already_read(response, tracked):
                return response
            response.stream = _Stream(response.stream, tracked)  # ends the span when collected
            return response

        async def _send_single_request_async(self: Any, request: Any) -> Any:
            tracked = _start(request)
            if tracked is None:
                return await orig_async(self, request)
            try:
                with tracked.scope(request.headers):
                    response = await orig_async(self, request)
            except BaseException as exc:
                tracked.fail(exc)
                raise
            tracked.response(response.status_code, response.headers.get("content-type"))
            if _already_read(response, tracked):
                return response
            tracked.bind_task()
            response.stream = _AsyncStream(response.stream, tracked)
            return response

        _send_single_request.__wrapped__ = orig_sync  # type: ignore[attr-defined]
        _send_single_request_async.__wrapped__ = orig_async  # type: ignore[attr-defined]
        mod.Client._send_single_request = _send_single_request
        mod.AsyncClient._send_single_request = _send_single_request_async
        setattr(mod, _MARK, True)


def patch_core(mod: ModuleType) -> None:
    """Count new connections of ``mod`` (httpcore or httpcore2), sync and async."""
    with _lock:
        if getattr(mod, _MARK, False):
            return
        stats = pool_stats()
        sync_conn, async_conn = mod.HTTPConnection, mod.AsyncHTTPConnection
        orig_sync, orig_async = sync_conn._connect, async_conn._connect

        def _connect(self: Any, request: Any) -> Any:
            stream = orig_sync(self, request)
            if not is_suppressed():
                url = request.url
                stats.add_connection(url.host.decode("ascii", "replace"), int(url.port or
                                     (443 if url.scheme == b"https" else 80)))
            return stream

        async def _connect_async(self: Any, request: Any) -> Any:
            stream = await orig_async(self, request)
            if not is_suppressed():
                url = request.url
                stats.add_connection(url.host.decode("ascii", "replace"), int(url.port or
                                     (443 if url.scheme == b"https" else 80)))
            return stream

        sync_conn._connect = _connect
        async_conn._connect = _connect_async
        setattr(mod, _MARK, True)
    register_pool_observers()
