"""Decode an LLM request or response body without decoding its long strings.

Telemetry reads a few small fields of a body (the model, ``max_tokens``, the
usage counts, finish reasons); the bulk of a body is prompt and completion text.
``json.loads`` decodes every character of it: about 14 instructions per byte in
CPython 3.11, 0.11 M instructions for an 8 KB prompt, more than the rest of a
call's telemetry. :func:`loads` finds the string literals with ``str.find`` (C
speed, a fraction of an instruction per byte) and hands ``json.loads`` the body
with every string longer than :data:`LONG` characters emptied, so what is
decoded is the small rest.

The result equals ``json.loads(text)`` with those strings replaced by ``""``.
The values of the keys telemetry reads (``model``, ``id``, ``type``, ``status``,
``finish_reason``...) are kept whatever their length. It is used only when it
pays: a body of at least :data:`MIN_SIZE` characters with few strings for its
size (one per 128 characters, plus 16, escaped quotes counted); a body of many
short strings (tool schemas) or of quoted JSON text goes to ``json.loads``
whole once the scan has seen that many, as does a long run of backslashes.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["LONG", "MIN_SIZE", "loads"]

LONG: Final = 256
"""Strings longer than this (characters of the JSON text; bytes of a bytes body) are not decoded."""
MIN_SIZE: Final = 2048
"""Smaller bodies are decoded whole (``json.loads`` is cheaper than the scan there)."""
_MIN_CHARS_PER_STRING: Final = 128
_MAX_BACKSLASHES: Final = 16
_READ_KEYS: Final = ('"model"', '"id"', '"type"', '"object"', '"status"', '"finish_reason"',
                     '"stop_reason"', '"code"')
"""The keys whose string values telemetry reads (``routerscope.core.genai``): never emptied."""
_READ_KEYS_BYTES: Final = tuple(k.encode() for k in _READ_KEYS)
_KEY_WINDOW: Final = 48


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``, with strings longer than :data:`LONG` characters decoded as ``""``.

    ``bytes`` are read as UTF-8 (the long strings are then never decoded at all:
    a quote or a backslash byte is never part of a multi-byte UTF-8 sequence);
    bytes that start like UTF-16 or UTF-32 go to ``json.loads`` whole. Raises
    what ``json.loads`` would, except on an invalid escape or invalid UTF-8
    inside a long string, which is not read.
    """
    n = len(text)
    if n < MIN_SIZE:
        return _json(text)
    if isinstance(text, bytes):
        if 0 in text[:4]:  # UTF-16/32: json.loads detects it
            return json.loads(text)
        quote: Any = b'"'
        backslash: Any = 92
        empty: Any = b""
    else:
        quote, backslash, empty = '"', "\\", ""
    budget = 16 + n // _MIN_CHARS_PER_STRING  # strings scanned before json.loads is the cheaper
    parts: list[Any] = []
    kept = 0  # text[kept:] is not yet in parts
    find = text.find
    i = find(quote)
    while i >= 0:
        budget -= 1
        if budget < 0:  # many short strings (tool schemas...): decode it whole
            return _json(text)
        j = find(quote, i + 1)
        while j > 0 and text[j - 1] == backslash:  # escaped unless the backslash run is even
            budget -= 1  # each escaped quote is one more turn of this loop
            k = j - 2
            while text[k] == backslash:
                k -= 1
                if j - k > _MAX_BACKSLASHES:  # a long run: json.loads counts it faster
                    return _json(text)
            if (j - 1 - k) % 2 == 0:
                break
            if budget < 0:  # JSON text quoted inside a prompt...: decode it whole
                return _json(text)
            j = find(quote, j + 1)
        if j < 0:
            raise json.JSONDecodeError("Unterminated string", text if isinstance(text, str) else
                                       text.decode("utf-8", "replace"), i)
        if j - i - 1 > LONG and not _read_key(text, i):
            parts.append(text[kept:i + 1])
            kept = j  # the closing quote starts the next part
        i = find(quote, j + 1)
    if not parts:
        return _json(text)
    parts.append(text[kept:])
    return _json(empty.join(parts))


def _read_key(text: Any, i: int) -> bool:
    """Whether the string at ``i`` is the value of a key telemetry reads (kept whatever its length)."""
    raw = isinstance(text, bytes)
    before = text[max(0, i - _KEY_WINDOW):i].rstrip()
    if not before.endswith(b":" if raw else ":"):
        return False
    return bool(before[:-1].rstrip().endswith(_READ_KEYS_BYTES if raw else _READ_KEYS))


def _json(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        try:  # UTF-8 (nearly every body): json.loads then skips its encoding detection
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            pass  # UTF-16/32: json.loads detects the encoding
    return json.loads(text)
