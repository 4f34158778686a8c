"""leanjson.loads: json.loads with long strings left undecoded (as empty strings)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from routerscope.core import leanjson


def _blank_long(value: Any, text_of: dict[int, str]) -> Any:
    """What leanjson should give: each string whose JSON literal is longer than LONG becomes ''.

    The literal's length in characters for a str body, in UTF-8 bytes for a bytes body.
    """
    if isinstance(value, str):
        literal = json.dumps(value, ensure_ascii=text_of[0] == "ascii")
        size = len(literal.encode()) if text_of[1] == "bytes" else len(literal)
        return "" if size - 2 > leanjson.LONG else value
    if isinstance(value, list):
        return [_blank_long(v, text_of) for v in value]
    if isinstance(value, dict):
        return {_blank_long(k, text_of): _blank_long(v, text_of) for k, v in value.items()}
    return value


def _string(rnd: random.Random) -> str:
    alphabet = ['a', 'b', ' ', '"', '\\', '\n', 'é', '✓', '\\"', '\\\\', '\t', '😀']
    n = rnd.choice([0, 1, 5, 40, 255, 256, 257, 300, 2000])
    return "".join(rnd.choice(alphabet) for _ in range(n))


def _doc(rnd: random.Random, depth: int = 0) -> Any:
    kind = rnd.random()
    if depth > 3 or kind < 0.35:
        return rnd.choice([_string(rnd), rnd.randint(-10**6, 10**6), rnd.random(), True, False, None])
    if kind < 0.65:
        return [_doc(rnd, depth + 1) for _ in range(rnd.randint(0, 5))]
    return {_string(rnd)[:20] + str(i): _doc(rnd, depth + 1) for i in range(rnd.randint(0, 6))}


@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["ascii", "utf8"])
def test_random_documents_equal_json_loads_with_long_strings_blanked(ensure_ascii: bool) -> None:
    """On 200 random bodies (escapes, unicode, every length) the result is json.loads', long strings ''."""
    rnd = random.Random(15)
    mode = {0: "ascii" if ensure_ascii else "utf8", 1: "str"}
    mode_bytes = {**mode, 1: "bytes"}
    scanned = 0
    for _ in range(200):
        doc = {"model": "m", "messages": [_doc(rnd) for _ in range(rnd.randint(1, 4))],
               "pad": "x" * rnd.choice([0, 3000])}
        text = json.dumps(doc, ensure_ascii=ensure_ascii)
        got = leanjson.loads(text)
        if len(text) >= leanjson.MIN_SIZE and got != json.loads(text):
            scanned += 1
            assert got == _blank_long(json.loads(text), mode)
        else:
            assert got == json.loads(text)
        raw = text.encode()  # UTF-8 bytes: the long strings are never decoded
        got_b = leanjson.loads(raw)
        assert got_b == json.loads(text) or (len(raw) >= leanjson.MIN_SIZE
                                             and got_b == _blank_long(json.loads(text), mode_bytes))
    assert scanned > 25  # the scan itself ran, not only the json.loads fallback


def test_a_chat_body_keeps_its_small_fields() -> None:
    """An 8 KB prompt: model and max_tokens read, the prompt not decoded."""
    body = json.dumps({"messages": [{"role": "user", "content": "hi " * 2730}], "model": "demo/small",
                       "max_tokens": 4, "temperature": 0.2})
    assert leanjson.loads(body) == {"messages": [{"role": "user", "content": ""}], "model": "demo/small",
                                    "max_tokens": 4, "temperature": 0.2}


def test_utf16_bytes_are_decoded_whole() -> None:
    """UTF-16 bytes (json.loads detects the encoding) are not scanned as UTF-8."""
    doc = {"model": "m", "messages": [{"content": "é" * 3000}]}
    assert leanjson.loads(json.dumps(doc).encode("utf-16")) == doc


def test_many_short_strings_are_decoded_whole() -> None:
    """A body of many short strings (tool schemas) goes to json.loads unchanged."""
    doc = {"tools": [{"name": f"t{i}", "description": "d" * 300 if i == 0 else "short"}
                     for i in range(400)]}
    assert leanjson.loads(json.dumps(doc)) == doc


@pytest.mark.parametrize("bad", ['{"a": "' + "x" * 5000, '{"a": ' + '"x", ' * 700 + "}",
                                 '{"a": "' + "y" * 300 + '", "b": }' + " " * 3000, "[" * 3000])
def test_invalid_bodies_raise_as_json_loads(bad: str) -> None:
    """Unterminated strings, broken or too-deep JSON raise what json.loads raises."""
    with pytest.raises((ValueError, RecursionError)) as want:
        json.loads(bad)
    for given in (bad, bad.encode()):
        with pytest.raises((ValueError, RecursionError)) as got:
            leanjson.loads(given)
        assert type(got.value) is type(want.value)


def test_values_telemetry_reads_are_kept_whatever_their_length() -> None:
    """A long model, id or finish reason is kept (str and bytes); a long prompt and error message are not."""
    model, rid = "org/" + "m" * 300, "chatcmpl-" + "9" * 300
    doc = {"id": rid, "model": model, "choices": [{"finish_reason": "s" * 400,
                                                   "message": {"content": "x" * 3000}}],
           "error": {"message": "e" * 500, "code": "c" * 300}}
    for text in (json.dumps(doc), json.dumps(doc, indent=2).encode()):
        got = leanjson.loads(text)
        assert got["model"] == model and got["id"] == rid
        assert got["choices"][0]["finish_reason"] == "s" * 400
        assert got["error"]["code"] == "c" * 300
        assert got["choices"][0]["message"]["content"] == "" and got["error"]["message"] == ""


@pytest.mark.parametrize("content", [
    json.dumps([{"a": '"q"'} for _ in range(5000)]),  # JSON text inside a prompt: escaped quotes
    "\\" * 5000 + '"' + "x" * 300,  # a long backslash run before an escaped quote
    ("C:\\dir\\file" + '\\"') * 3000,  # paths and escaped quotes
], ids=["quoted-json", "backslash-run", "windows-paths"])
def test_quoted_json_and_backslashes_decode_as_json_loads(content: str) -> None:
    """Prompts full of escaped quotes or long backslash runs give json.loads' result, or the prompt ''."""
    body = {"model": "m", "messages": [{"content": content}]}
    text = json.dumps(body)
    blanked = {"model": "m", "messages": [{"content": ""}]}
    assert leanjson.loads(text) in (json.loads(text), blanked)
    assert leanjson.loads(text.encode()) in (json.loads(text), blanked)
