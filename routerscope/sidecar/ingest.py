"""What the receivers (HTTP and gRPC) do with a body before they may acknowledge it.

A body is accepted only when it is fully decompressed (exactly one gzip member,
finished, nothing after it; never more than the size limit held in memory) and
fully parsed as an OTLP request of its signal. What the spool then stores is
the validated form: the protobuf bytes that parsed, or, for a gzip'd protobuf
body, the one gzip member whose whole content parsed (kept compressed: a
third of the disk, and a single request ships as it is); JSON is stored as the
protobuf encoding of the parsed request.
"""

from __future__ import annotations

import zlib
from typing import Any

from routerscope.otlp_json import OTLPDecodeError, decode
from routerscope.sidecar.spool import FLAG_GZIP

__all__ = ["BodyRejected", "inflate", "validate"]


class BodyRejected(Exception):
    """The body cannot be accepted: ``status`` (HTTP) and a message that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def inflate(data: bytes, limit: int) -> bytes:
    """gunzip ``data`` (one complete member, nothing after it), never holding over ``limit`` + 1 bytes.

    Raises :class:`BodyRejected` 413 past ``limit``, 400 for anything that is
    not exactly one finished gzip member.
    """
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BodyRejected(400, f"Content-Encoding: gzip, but the body is not valid gzip "
                                f"({exc})") from None
    if len(out) > limit:
        raise BodyRejected(413, f"decompressed body is over the {limit}-byte limit")
    if not d.eof:
        raise BodyRejected(400, "the gzip stream is unfinished (no end of stream): the body "
                                "was cut short or never finished")
    if d.unused_data:
        raise BodyRejected(400, f"{len(d.unused_data)} bytes follow the gzip stream: send "
                                "exactly one gzip member and nothing after it")
    return out


def validate(signal: str, body: bytes, *, json: bool, gzip: bool,
             limit: int) -> tuple[bytes, int]:
    """(bytes to spool, spool flags) for ``body``, or :class:`BodyRejected` with the reason."""
    plain = inflate(body, limit) if gzip else body
    if len(plain) > limit:
        raise BodyRejected(413, f"body of {len(plain)} bytes is over the {limit}-byte limit")
    msg = parse(signal, plain, json=json)
    if json:
        return msg.SerializeToString(), 0
    return (body, FLAG_GZIP) if gzip else (body, 0)


def parse(signal: str, body: bytes, *, json: bool) -> Any:
    """The request message in ``body``, or :class:`BodyRejected` 400 with the reason."""
    try:
        return decode(signal, body, "application/json" if json else "application/x-protobuf")
    except OTLPDecodeError as exc:
        raise BodyRejected(400, str(exc)) from None
    except RecursionError:
        raise BodyRejected(400, f"body is not an OTLP {signal} request: nested too deeply") \
            from None
