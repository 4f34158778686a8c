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

import contextlib
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any, Final

from routerscope.otlp_json import OTLPDecodeError, decode
from routerscope.sidecar.spool import FLAG_GZIP

__all__ = ["BodyRejected", "InflateBudget", "inflate", "parse", "validate"]


class BodyRejected(Exception):
    """The body cannot be accepted: ``status`` (HTTP) and a message that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


INFLATE_STEP: Final = 1024 * 1024


class InflateBudget:
    """Decompressed bytes held at once, over every thread: a gzip bomb (or many) costs at most
    ``total`` bytes of memory; past it, the request that would exceed it gets a 503."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self) -> Iterator[Callable[[int], None]]:
        """A ``take(n)`` for one body; everything taken is given back when the block ends."""
        held = 0

        def take(n: int) -> None:
            nonlocal held
            with self._lock:
                if self.used + n > self.total:
                    raise BodyRejected(503, "too many large bodies are being decompressed "
                                            "right now; retry later")
                self.used += n
            held += n

        try:
            yield take
        finally:
            with self._lock:
                self.used -= held


def inflate(data: bytes, limit: int, take: Callable[[int], None] | None = None) -> bytes:
    """gunzip ``data`` (one complete member, nothing after it), never holding over ``limit``
    bytes (plus one step); ``take(n)`` is called for each piece before it is kept.

    Raises :class:`BodyRejected` 413 past ``limit``, 400 for anything that is
    not exactly one finished gzip member.
    """
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pieces: list[bytes] = []
    size = 0
    pending = data
    try:
        while True:
            out = d.decompress(pending, INFLATE_STEP)
            pending = d.unconsumed_tail
            if out:
                size += len(out)
                if size > limit:
                    raise BodyRejected(413, f"decompressed body is over the {limit}-byte limit")
                if take is not None:
                    take(len(out))
                pieces.append(out)
            if d.eof or (not pending and len(out) < INFLATE_STEP):
                break
    except zlib.error as exc:
        raise BodyRejected(400, f"Content-Encoding: gzip, but the body is not valid gzip "
                                f"({exc})") from None
    if not d.eof:
        raise BodyRejected(400, "the gzip stream is unfinished (no end of stream): the body "
                                "was cut short or never finished")
    if d.unused_data:
        raise BodyRejected(400, f"{len(d.unused_data)} bytes follow the gzip stream: send "
                                "exactly one gzip member and nothing after it")
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def validate(signal: str, body: bytes, *, json: bool, gzip: bool, limit: int,
             budget: InflateBudget | None = None) -> tuple[bytes, int]:
    """(bytes to spool, spool flags) for ``body``, or :class:`BodyRejected` with the reason."""
    with budget.hold() if budget is not None else contextlib.nullcontext(None) as take:
        plain = inflate(body, limit, take) if gzip else body
        if len(plain) > limit:
            raise BodyRejected(413, f"body of {len(plain)} bytes is over the {limit}-byte limit")
        msg = parse(signal, plain, json=json)
        del plain
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
