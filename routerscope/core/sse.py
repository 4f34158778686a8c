"""One ``text/event-stream`` parser for every stream routerscope reads.

:class:`SSEDecoder` follows the WHATWG rules that providers rely on: lines end
in LF, CRLF or CR; a blank line dispatches the event; ``data:`` fields are
joined with newlines; a line starting with ``:`` is a comment
(``: OPENROUTER PROCESSING``); ``event:`` names the event (Anthropic's
``message_start``, ``content_block_delta``...). It is incremental: bytes are
fed as they arrive, in chunks cut anywhere, so the instrumentation can watch a
stream as the application reads it without buffering it. The client of
:mod:`routerscope.core.openrouter` and every hook of ``routerscope.auto`` use
it, and :func:`json_data` turns an event into the JSON object it carries.
"""

from __future__ import annotations

import json
from typing import Any, Final, NamedTuple

__all__ = ["DONE", "Event", "SSEDecoder", "json_data"]

DONE: Final = "[DONE]"
"""The data of the OpenAI-style end-of-stream marker."""
MAX_PENDING: Final = 1 << 20
"""Bytes of one unfinished line kept; beyond this the line is dropped (a stream that is not SSE)."""


class Event(NamedTuple):
    event: str
    data: str


class SSEDecoder:
    """Feed bytes (or decoded lines), get complete events."""

    __slots__ = ("_buf", "_data", "_event", "_last_cr")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event = ""
        self._last_cr = False

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by ``chunk``."""
        if self._last_cr and chunk.startswith(b"\n"):  # a CRLF cut between two chunks
            chunk = chunk[1:]
        self._last_cr = chunk.endswith(b"\r")
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        rest = lines.pop()
        self._buf = rest if len(rest) <= MAX_PENDING else b""
        out: list[Event] = []
        for raw in lines:
            ev = self.feed_line(raw.decode("utf-8", "replace"))
            if ev is not None:
                out.append(ev)
        return out

    def feed_line(self, line: str) -> Event | None:
        """One line without its terminator; returns the event a blank line completes."""
        if not line:
            if not self._data:
                self._event = ""
                return None
            ev = Event(self._event or "message", "\n".join(self._data))
            self._data = []
            self._event = ""
            return ev
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        return None

    def close(self) -> list[Event]:
        """The event left when a stream ends without its final blank line."""
        out: list[Event] = []
        if self._buf:
            ev = self.feed_line(self._buf.decode("utf-8", "replace"))
            self._buf = b""
            if ev is not None:
                out.append(ev)
        ev = self.feed_line("")
        if ev is not None:
            out.append(ev)
        return out


def json_data(event: Event) -> Any:
    """The JSON value an event carries; None for ``[DONE]``; ``ValueError`` if it is not JSON."""
    data = event.data.strip()
    if data == DONE:
        return None
    return json.loads(data)
