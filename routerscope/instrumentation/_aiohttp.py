"""``aiohttp`` client: GenAI calls and connection reuse. Patched when aiohttp is imported.

* ``ClientSession._request`` — every request: an LLM call gets its GenAI span
  (:mod:`routerscope.instrumentation._genai_http`) and the request is counted
  for the reuse ratio;
* ``StreamReader.feed_data`` / ``feed_eof`` / ``set_exception`` — the body of a
  tracked response as it arrives (bytes already buffered when ``_request``
  returns are read from the reader's buffer first), so usage and chunks are
  seen whether the caller reads ``json()``, ``content`` or nothing;
* ``ClientResponse.release`` / ``close`` — a body released before its end ends
  the span (``stream_closed``);
* ``TCPConnector._create_connection`` — every new connection.
"""

from __future__ import annotations

import threading
import weakref
from types import ModuleType
from typing import Any

from routerscope.core.pool import pool_stats, register_pool_observers
from routerscope.instrumentation._genai_http import Tracked, is_suppressed, start

__all__ = ["patch"]

_lock = threading.Lock()
_readers: dict[int, Tracked] = {}  # id(StreamReader) -> its call, until the body ends
_MARK = "_routerscope_patched"


def _watch(resp: Any, tracked: Tracked) -> None:
    reader = resp.content
    buffered = getattr(reader, "_buffer", ())
    for chunk in list(buffered):
        tracked.feed(chunk)
    if reader.is_eof():
        tracked.finish()
        return
    key = id(reader)
    _readers[key] = tracked
    weakref.finalize(resp, _forget, key, tracked)


def _forget(key: int, tracked: Tracked) -> None:
    if _readers.get(key) is tracked:
        del _readers[key]
    tracked.close()


def patch(mod: ModuleType) -> None:
    """Patch the aiohttp client (``mod`` is the ``aiohttp`` package)."""
    from aiohttp import client_reqrep, connector, streams
    from multidict import CIMultiDict

    with _lock:
        if getattr(mod, _MARK, False):
            return
        stats = pool_stats()
        session_cls = mod.ClientSession
        orig_request = session_cls._request
        reader_cls = streams.StreamReader
        orig_feed, orig_eof, orig_exc = reader_cls.feed_data, reader_cls.feed_eof, reader_cls.set_exception
        resp_cls = client_reqrep.ClientResponse
        orig_release, orig_close = resp_cls.release, resp_cls.close
        tcp = connector.TCPConnector
        orig_create = tcp._create_connection

        async def _request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
            from yarl import URL

            try:
                url = URL(str_or_url) if not isinstance(str_or_url, URL) else str_or_url
                if self._base_url is not None and not url.is_absolute():
                    url = self._base_url.join(url)
                host, port = url.host or "", url.port
                if not is_suppressed():
                    stats.add_request(host, int(port or 80))
                body = kwargs.get("json")
                if body is None:
                    body = kwargs.get("data")
                tracked = start(method.upper(), str(url), host, port, url.scheme, url.path, body)
            except Exception:  # noqa: BLE001 - an unusual URL: sent unrecorded, as aiohttp wants
                tracked = None
            if tracked is None:
                return await orig_request(self, method, str_or_url, **kwargs)
            # a multidict copy: repeated headers go out as the app gave them, trace context added
            headers = CIMultiDict(kwargs.get("headers") or {})
            try:
                with tracked.scope(headers):
                    kwargs["headers"] = headers
                    resp = await orig_request(self, method, str_or_url, **kwargs)
            except BaseException as exc:
                tracked.fail(exc)
                raise
            tracked.response(resp.status, resp.headers.get("Content-Type"))
            tracked.bind_task()
            _watch(resp, tracked)
            return resp

        def feed_data(self: Any, data: bytes, *args: Any) -> Any:
            if _readers:
                t = _readers.get(id(self))
                if t is not None:
                    t.feed(data)
            return orig_feed(self, data, *args)

        def feed_eof(self: Any) -> None:
            if _readers:
                t = _readers.pop(id(self), None)
                if t is not None:
                    t.finish()
            orig_eof(self)

        def set_exception(self: Any, exc: BaseException, *args: Any) -> None:
            if _readers:
                t = _readers.pop(id(self), None)
                if t is not None:
                    t.fail(exc)
            orig_exc(self, exc, *args)

        def release(self: Any) -> Any:
            if _readers:
                t = _readers.pop(id(self.content), None)
                if t is not None:
                    t.close()
            return orig_release(self)

        def close(self: Any) -> None:
            if _readers:
                t = _readers.pop(id(self.content), None)
                if t is not None:
                    t.close()
            orig_close(self)

        async def _create_connection(self: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
            proto = await orig_create(self, req, *args, **kwargs)
            if not is_suppressed():
                stats.add_connection(req.url.host or "", int(req.url.port or 80))
            return proto

        for owner, name, fn in ((session_cls, "_request", _request), (reader_cls, "feed_data", feed_data),
                                (reader_cls, "feed_eof", feed_eof),
                                (reader_cls, "set_exception", set_exception),
                                (resp_cls, "release", release), (resp_cls, "close", close),
                                (tcp, "_create_connection", _create_connection)):
            setattr(owner, name, fn)
        setattr(mod, _MARK, True)
    register_pool_observers()
