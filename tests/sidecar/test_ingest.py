"""What a body must be before the sidecar may acknowledge it: the inflate and parse rules."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest

from routerscope.sidecar.ingest import BodyRejected, InflateBudget, inflate, validate
from routerscope.sidecar.spool import FLAG_GZIP
from tests.integration.conftest import span_request

GOOD = span_request("ok", 3)


def _unfinished(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)


@pytest.mark.parametrize(("body", "status", "message"), [
    (gzip.compress(GOOD) + b"GARBAGE!", 400, "follow the gzip stream"),
    (gzip.compress(GOOD) + gzip.compress(os.urandom(64)), 400, "follow the gzip stream"),
    (_unfinished(GOOD), 400, "unfinished"),
    (gzip.compress(GOOD)[:-12], 400, "unfinished"),
    (b"not gzip at all", 400, "not valid gzip"),
    (gzip.compress(bytes(3 * 1024 * 1024)), 413, "over the"),
])
def test_only_one_finished_gzip_member_within_the_limit(body: bytes, status: int,
                                                        message: str) -> None:
    """Trailing bytes, a second member, an unfinished stream, garbage, a bomb: each refused."""
    with pytest.raises(BodyRejected, match=message) as err:
        inflate(body, 2 * 1024 * 1024)
    assert err.value.status == status


def test_a_valid_gzip_body_is_stored_compressed_and_json_as_protobuf() -> None:
    """A gzip'd protobuf is kept as its one validated member; JSON becomes protobuf bytes."""
    gz = gzip.compress(GOOD)
    assert inflate(gz, 1 << 20) == GOOD
    assert validate("traces", gz, json=False, gzip=True, limit=1 << 20) == (gz, FLAG_GZIP)
    stored, flags = validate("traces", b'{"resourceSpans": []}', json=True, gzip=False,
                             limit=1 << 20)
    assert (stored, flags) == (b"", 0)
    with pytest.raises(BodyRejected, match="protobuf"):
        validate("traces", gzip.compress(b"\xff\x00junk"), json=False, gzip=True, limit=1 << 20)


def test_the_inflate_budget_bounds_memory_over_all_requests() -> None:
    """While one body holds the decompression budget, another that needs more gets a 503;
    once it is released the budget is whole again."""
    budget = InflateBudget(4 * 1024 * 1024)
    big = gzip.compress(bytes(3 * 1024 * 1024))
    with budget.hold() as take:
        inflate(big, 8 * 1024 * 1024, take)
        with pytest.raises(BodyRejected) as err:
            validate("traces", big, json=False, gzip=True, limit=8 * 1024 * 1024, budget=budget)
        assert err.value.status == 503
    assert budget.used == 0
