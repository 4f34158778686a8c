"""``requests``: GenAI calls above the requests instrumentation, and every urllib3 pool.

* :func:`patch_genai` wraps ``requests.Session.send``: an LLM call gets its
  GenAI span (:mod:`routerscope.instrumentation._genai_http`, the HTTP
  attributes on it), with the body read as the application reads it (streamed
  SSE through ``iter_lines``/``iter_content`` too, or ``resp.raw.read()``). Other requests pass
  through after one string check.
* The requests instrumentation (an HTTP span for every other request) is
  installed later, off the import path, or by ``opentelemetry-instrument``; it
  wraps whatever ``Session.send`` is then. :func:`reorder` puts the GenAI
  wrapper back on top in one assignment: the wrapper calls the instrumented
  ``send``, which calls the wrapper again, which this time (a context
  variable says it is inside) calls the original ``send``. ``Session.send``
  is never unwrapped, so no call slips through unrecorded, and inside an LLM
  call the requests instrumentation is suppressed, so it adds no second span.
* :func:`patch_urllib3_pools` counts connections opened and requests sent for
  every urllib3 pool in the process (our pooled sessions count themselves),
  except telemetry's own (the exporters send under ``suppress_instrumentation``).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import weakref
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import urlsplit

from routerscope.core import signals
from routerscope.core.lazy import record_startup_phase
from routerscope.core.pool import pool_stats, register_pool_observers
from routerscope.instrumentation._genai_http import Tracked, is_suppressed, set_capture_content, start

__all__ = ["patch_genai", "patch_urllib3_pools", "reorder", "unpatch_genai", "unpatch_urllib3_pools"]

_logger = logging.getLogger("routerscope.telemetry")
_OTLP_PATHS: Final = ("/v1/traces", "/v1/metrics", "/v1/logs")

_base_send: Any = None  # requests' own Session.send
_next_send: Any = None  # what the wrapper calls: the base, or the requests instrumentation over it
# _next_send is the requests instrumentation wrapping this wrapper directly: inside an LLM call
# (HTTP instrumentation suppressed) it only passes the call back, so the wrapper goes to the base
_skip_beneath = False
_passthrough = False  # unpatched while another layer still calls the wrapper
_INSIDE: contextvars.ContextVar[bool] = contextvars.ContextVar("routerscope_requests_send",
                                                               default=False)
_first_request_seen = False
_lock = threading.RLock()


def _note_first_request(url: str) -> None:
    global _first_request_seen
    if _first_request_seen or is_suppressed():
        return
    if url.split("?", 1)[0].endswith(_OTLP_PATHS):  # our own exporter is not the router
        return
    _first_request_seen = True
    record_startup_phase(signals.PHASE_FIRST_REQUEST)


_parts_cache: dict[str, tuple[str, int | None, str, str]] = {}
_PARTS_CACHE_MAX: Final = 512


def _url_parts(url: str) -> tuple[str, int | None, str, str]:
    """(host, port, scheme, path) of an LLM URL; a router calls a few URLs, so they are remembered."""
    parts = _parts_cache.get(url)
    if parts is None:
        split = urlsplit(url)
        parts = (split.hostname or "", split.port, split.scheme, split.path)
        if len(_parts_cache) < _PARTS_CACHE_MAX:
            _parts_cache[url] = parts
    return parts


def _send(self: Any, request: Any, **kwargs: Any) -> Any:
    if _passthrough or _INSIDE.get():  # called back by the layer beneath, or unpatched
        return _base_send(self, request, **kwargs)
    url = request.url or ""
    if not _first_request_seen:
        _note_first_request(url)
    tracked = None
    if url.split("?", 1)[0].endswith(("completions", "embeddings", "responses", "messages",
                                      "completions/", "embeddings/", "responses/", "messages/")):
        host, port, scheme, path = _url_parts(url)
        tracked = start(request.method or "POST", url, host, port, scheme, path, request.body)
    if tracked is not None and _skip_beneath:  # the layer beneath would only pass it through
        return _send_tracked(tracked, _base_send, self, request, kwargs)
    token = _INSIDE.set(True) if _next_send is not _base_send else None
    try:
        if tracked is None:
            return _next_send(self, request, **kwargs)
        return _send_tracked(tracked, _next_send, self, request, kwargs)
    finally:
        if token is not None:
            _INSIDE.reset(token)


def _send_tracked(tracked: Tracked, send: Any, session: Any, request: Any,
                  kwargs: dict[str, Any]) -> Any:
    """Send an LLM call inside its span's scope; the response's body is then observed as read."""
    try:
        with tracked.scope(request.headers):
            resp = send(session, request, **kwargs)
    except BaseException as exc:
        tracked.fail(exc)
        raise
    _observe(tracked, resp, bool(kwargs.get("stream")))
    return resp


def _observe(tracked: Tracked, resp: Any, stream: bool) -> None:
    tracked.response(resp.status_code, resp.headers.get("Content-Type"))
    if not stream:  # the body is already read
        tracked.feed(resp.content or b"")
        tracked.finish()
        return
    raw = resp.raw
    original = getattr(raw, "stream", None)
    if original is None:  # not urllib3: the body is read now, as requests would on .content
        tracked.feed(resp.content or b"")
        tracked.finish()
        return

    streaming = False  # iterating raw.stream, whose reads (non-chunked) are raw.read's

    def stream_(*args: Any, **kwargs: Any) -> Iterator[bytes]:
        nonlocal streaming
        streaming = True
        try:
            for chunk in original(*args, **kwargs):
                tracked.feed(chunk)
                yield chunk
        except GeneratorExit:  # the reader stopped early
            tracked.close()
            raise
        except BaseException as exc:
            tracked.fail(exc)
            raise
        tracked.finish()

    original_read = raw.read

    def read(amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        """``resp.raw.read()`` by the app (``shutil.copyfileobj``...): all of it, or up to EOF."""
        try:
            data = original_read(amt, *args, **kwargs)
        except BaseException as exc:
            if not streaming:
                tracked.fail(exc)
            raise
        if not streaming:
            if data:
                tracked.feed(data)
            if amt is None or not data:
                tracked.finish()
        return data  # type: ignore[no-any-return]

    raw.stream = stream_  # iter_content / iter_lines / .content all read through raw.stream
    raw.read = read
    orig_close = resp.close

    def close() -> None:
        try:
            orig_close()
        finally:
            tracked.close()

    resp.close = close
    weakref.finalize(resp, tracked.close)  # a stream the app abandons still ends the span


def patch_genai(*, capture_content: bool | None = None) -> None:
    """Wrap ``requests.Session.send`` (idempotent; :func:`reorder` keeps it outermost)."""
    global _base_send, _next_send, _passthrough
    import requests

    with _lock:
        if capture_content is not None:
            set_capture_content(capture_content)
        if _base_send is not None:
            _passthrough = False
            reorder()
            return
        _base_send = _next_send = requests.Session.send
        requests.Session.send = _send  # type: ignore[method-assign]


def reorder() -> None:
    """Put the GenAI wrapper back on top of whatever wrapped it since (one assignment)."""
    global _next_send, _skip_beneath
    import requests

    with _lock:
        current = requests.Session.send
        if _base_send is None or current is _send:
            return
        _next_send = current
        _skip_beneath = (getattr(current, "__wrapped__", None) is _send and bool(
            getattr(current, "opentelemetry_instrumentation_requests_applied", False)))
        requests.Session.send = _send  # type: ignore[method-assign]


def instrument_beneath(instrument: Any) -> None:
    """Run ``instrument()`` (which wraps ``Session.send``) and keep the GenAI wrapper on top."""
    with _lock:
        instrument()
        reorder()


def unpatch_genai() -> None:
    """Take the GenAI wrapper off ``Session.send``.

    A layer that wrapped it since (the requests instrumentation) keeps calling it:
    it then only passes every call to requests' own ``send``.
    """
    global _base_send, _next_send, _skip_beneath, _passthrough
    import requests

    with _lock:
        if _base_send is None:
            return
        if requests.Session.send is _send:
            requests.Session.send = _next_send  # type: ignore[method-assign]
        if getattr(_next_send, "__wrapped__", None) is _send or requests.Session.send is not _base_send:
            _passthrough = True  # still called from beneath (or above): passes through
            _next_send, _skip_beneath = _base_send, False
            return
        _base_send = _next_send = None
        _skip_beneath = False


# --- every urllib3 pool ------------------------------------------------------------------

_pool_originals: dict[str, Any] = {}


def patch_urllib3_pools() -> None:
    """Count connections and requests of every urllib3 pool, per host and port."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool

    with _lock:
        if _pool_originals:
            return
        stats = pool_stats()
        orig_connect = HTTPConnection.connect
        orig_tls_connect = HTTPSConnection.connect
        orig_make = HTTPConnectionPool._make_request

        def connect(self: Any) -> None:
            orig_connect(self)
            if not getattr(self, "_routerscope_counted", False) and not is_suppressed():
                stats.add_connection(self.host, self.port or 80)

        def tls_connect(self: Any) -> None:
            orig_tls_connect(self)
            if not getattr(self, "_routerscope_counted", False) and not is_suppressed():
                stats.add_connection(self.host, self.port or 443)

        def make_request(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not getattr(self, "_routerscope_counted", False) and not is_suppressed():
                stats.add_request(self.host, self.port or (443 if self.scheme == "https" else 80))
            return orig_make(self, *args, **kwargs)

        _pool_originals.update(connect=orig_connect, tls_connect=orig_tls_connect,
                               make=orig_make)
        HTTPConnection.connect = connect  # type: ignore[method-assign]
        HTTPSConnection.connect = tls_connect  # type: ignore[method-assign]
        HTTPConnectionPool._make_request = make_request  # type: ignore[method-assign]
    register_pool_observers()


def unpatch_urllib3_pools() -> None:
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool

    with _lock:
        if not _pool_originals:
            return
        HTTPConnection.connect = _pool_originals["connect"]  # type: ignore[method-assign]
        HTTPSConnection.connect = _pool_originals["tls_connect"]  # type: ignore[method-assign]
        HTTPConnectionPool._make_request = _pool_originals["make"]  # type: ignore[method-assign]
        _pool_originals.clear()
