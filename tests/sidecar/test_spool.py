"""The spool on its own: order, restart, torn writes, the in-place cursor, dead letters."""

from __future__ import annotations

import contextlib
import json
import os
import struct
from pathlib import Path

import pytest

from routerscope.sidecar.spool import CURSOR_FILE, CURSOR_SLOT, DEAD_LETTER_FILE, Spool, SpoolFull


def _drain(sp: Spool) -> list[bytes]:
    out = []
    while (batch := sp.peek_batch(100, 1 << 30, timeout=0)):
        out += [r.body for r in batch]
        sp.ack_batch(batch)
    return out


def test_appends_come_back_in_order_and_acks_survive_a_restart(tmp_path: Path) -> None:
    """Records are read in append order; after a restart reading resumes past what was acked."""
    sp = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(10):
        sp.append("traces", b"r%d" % i)
    batch = sp.peek_batch(4, 1 << 20, timeout=0)
    assert [r.body for r in batch] == [b"r0", b"r1", b"r2", b"r3"]
    sp.ack_batch(batch)
    sp.close()
    sp = Spool(tmp_path, max_bytes=1 << 20)
    assert _drain(sp) == [b"r%d" % i for i in range(4, 10)]
    assert sp.depth() == (0, 0)
    sp.close()


def test_batches_hold_one_signal(tmp_path: Path) -> None:
    """A batch never mixes signals: a metrics record ends a run of traces."""
    sp = Spool(tmp_path, max_bytes=1 << 20)
    for sig in ("traces", "traces", "metrics", "traces"):
        sp.append(sig, sig.encode())
    assert [r.signal for r in sp.peek_batch(10, 1 << 20, timeout=0)] == ["traces", "traces"]
    sp.close()


def test_reject_when_full(tmp_path: Path) -> None:
    """At the byte limit ``reject`` raises SpoolFull and counts it; drop-oldest makes room."""
    sp = Spool(tmp_path / "a", max_bytes=1000)
    sp.append("traces", b"x" * 600)
    with pytest.raises(SpoolFull):
        sp.append("traces", b"y" * 600)
    assert sp.dropped_full == 1 and sp.is_full()
    sp.close()
    sp = Spool(tmp_path / "b", max_bytes=1000, on_full="drop-oldest")
    sp.append("traces", b"x" * 600)
    sp.append("traces", b"y" * 600)
    assert sp.dropped_oldest == 1 and _drain(sp) == [b"y" * 600]
    sp.close()


def test_cursor_is_rewritten_in_place_and_a_torn_slot_falls_back(tmp_path: Path) -> None:
    """cursor.pos keeps its size (no new space); a corrupt newest slot costs one step of progress."""
    sp = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(3):
        sp.append("traces", b"r%d" % i)
    for _ in range(2):
        sp.ack_batch(sp.peek_batch(1, 1 << 20, timeout=0))
    sp.close()
    cursor = tmp_path / CURSOR_FILE
    assert cursor.stat().st_size == 2 * CURSOR_SLOT
    data = bytearray(cursor.read_bytes())
    gens = [struct.unpack_from(">Q", data, s * CURSOR_SLOT + 4)[0] for s in (0, 1)]
    newest = gens.index(max(gens))
    data[newest * CURSOR_SLOT + 20] ^= 0xFF  # tear the newest slot
    cursor.write_bytes(bytes(data))
    sp = Spool(tmp_path, max_bytes=1 << 20)
    assert _drain(sp)[-1] == b"r2" and len(_drain(sp)) == 0
    sp.close()


def test_enospc_leaves_no_readable_record_and_recovers(tmpfs: Path) -> None:
    """On a full tmpfs an append raises OSError, the partial record is cut off (a restart reads
    nothing of it), and appends work again once space frees."""
    sp = Spool(tmpfs / "spool", max_bytes=1 << 30)
    sp.append("traces", b"good")
    filler = tmpfs / "filler"
    with filler.open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(os.urandom(1 << 16))
            f.flush()
    with pytest.raises(OSError):
        sp.append("traces", os.urandom(256 * 1024))
    assert not sp.is_writable() and sp.write_errors == 1
    sp.close()
    sp = Spool(tmpfs / "spool", max_bytes=1 << 30)
    assert _drain(sp) == [b"good"] and sp.corrupt == 0
    filler.unlink()
    assert sp.is_writable()
    sp.append("traces", b"next")
    assert _drain(sp) == [b"next"]
    sp.close()


def test_dead_letters_are_kept_with_their_reason_and_bounded(tmp_path: Path) -> None:
    """Isolated records are written with their reason until the size cap, then only counted."""
    sp = Spool(tmp_path, max_bytes=1 << 20, dead_letter_bytes=600)
    for _ in range(3):
        sp.append("logs", b"z" * 200)
    for rec in sp.peek_batch(3, 1 << 20, timeout=0):
        sp.dead_letter(rec, "http_400", "application/x-protobuf")
    lines = (tmp_path / DEAD_LETTER_FILE).read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["reason"] == "http_400"
    assert sp.dead_lettered == {"http_400": 3} and sp.dead_letter_overflow == 2
    sp.close()
