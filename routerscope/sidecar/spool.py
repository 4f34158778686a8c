"""A durable, bounded, ordered on-disk queue of OTLP request bodies.

Layout: ``DIR/seg-<N>.log`` segment files, appended to in order, and
``DIR/cursor`` (the first record not yet delivered: segment and offset).

Record: ``b"RSP1" | length u32 | crc32 u32 | signal u8 | flags u8 | body``;
the CRC covers signal, flags and body. A record is durable once :meth:`append`
returns (under the ``always`` fsync policy). Readers resume at the cursor; a
torn tail or corrupt record is skipped, counted and logged, never fatal.

fsync policy (``--fsync``):

* ``always`` (default): ``fsync`` before the 2xx, shared by concurrent
  requests (group commit). Survives a power loss.
* ``interval``: written to the page cache before the 2xx, ``fsync`` once a
  second. Survives ``kill -9`` of the sidecar, not a power loss.
* ``never``: the OS decides. Survives ``kill -9``, not a power loss.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["FLAG_GZIP", "FLAG_JSON", "SIGNAL_CODES", "Record", "Spool", "SpoolFull"]

_log = logging.getLogger("routerscope.sidecar")

MAGIC: Final = b"RSP1"
HEADER: Final = struct.Struct(">4sIIBB")
SIGNAL_CODES: Final = {"traces": 1, "metrics": 2, "logs": 3}
SIGNAL_NAMES: Final = {v: k for k, v in SIGNAL_CODES.items()}
FLAG_JSON: Final = 1
FLAG_GZIP: Final = 2
DEFAULT_SEGMENT_BYTES: Final = 16 * 1024 * 1024
FSYNC_POLICIES: Final = ("always", "interval", "never")
ON_FULL_POLICIES: Final = ("reject", "drop-oldest")


class SpoolFull(Exception):
    """The spool is at its byte limit and the policy is ``reject``."""


@dataclass(frozen=True, slots=True)
class Record:
    segment: int
    offset: int  # of the record header
    end: int  # offset just past the record
    signal: str
    flags: int
    body: bytes

    @property
    def is_json(self) -> bool:
        return bool(self.flags & FLAG_JSON)

    @property
    def is_gzip(self) -> bool:
        return bool(self.flags & FLAG_GZIP)


@dataclass
class _Segment:
    seq: int
    path: Path
    size: int = 0
    records: int = 0  # records not yet delivered in this segment
    live_bytes: int = 0


class Spool:
    """See the module docstring. Thread-safe: many appenders, one reader."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int,
                 on_full: str = "reject", fsync: str = "always",
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        if on_full not in ON_FULL_POLICIES:
            raise ValueError(f"on_full must be one of {ON_FULL_POLICIES}, got {on_full!r}")
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}, got {fsync!r}")
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        self.max_bytes = max_bytes
        self.on_full = on_full
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._readable = threading.Condition(self._lock)
        self._segments: deque[_Segment] = deque()
        self._writer: int | None = None  # fd of the active segment
        self._written = 0  # bytes appended to the active segment
        self._durable = 0  # bytes of the active segment known to be on disk
        self.corrupt = 0
        self._refusing = False
        self.dropped_full = 0
        self.dropped_oldest = 0
        self._cursor_seg = 0
        self._cursor_off = 0
        self._closed = False
        self._recover()
        if fsync == "interval":
            threading.Thread(target=self._interval_sync, daemon=True,
                             name="routerscope-spool-sync").start()

    # -- recovery ----------------------------------------------------------------------

    def _recover(self) -> None:
        cur = self.dir / "cursor"
        try:
            seq_s, off_s = cur.read_text().split()
            self._cursor_seg, self._cursor_off = int(seq_s), int(off_s)
        except (OSError, ValueError):
            self._cursor_seg, self._cursor_off = 0, 0
        seqs = sorted(int(p.stem[4:]) for p in self.dir.glob("seg-*.log")
                      if p.stem[4:].isdigit())
        for seq in seqs:
            path = self._path(seq)
            if seq < self._cursor_seg:
                path.unlink(missing_ok=True)  # fully delivered before the restart
                continue
            seg = _Segment(seq, path, size=path.stat().st_size)
            start = self._cursor_off if seq == self._cursor_seg else 0
            for rec in self._scan(seg, start):
                seg.records += 1
                seg.live_bytes += rec.end - rec.offset
            self._segments.append(seg)
        if self._segments:
            # appends always go to a fresh segment after a restart: a torn tail stays behind
            last = self._segments[-1].seq
        else:
            last = self._cursor_seg - 1 if self._cursor_seg else 0
        self._open_segment(max(last + 1, self._cursor_seg))
        if not seqs or self._cursor_seg < self._segments[0].seq:
            self._cursor_seg, self._cursor_off = self._segments[0].seq, 0

    def _path(self, seq: int) -> Path:
        return self.dir / f"seg-{seq:012d}.log"

    def _open_segment(self, seq: int) -> None:
        if self._writer is not None:
            os.close(self._writer)
        path = self._path(seq)
        self._writer = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segments.append(_Segment(seq, path, size=os.fstat(self._writer).st_size))
        self._written = self._durable = self._segments[-1].size
        if self.fsync == "always":
            _fsync_dir(self.dir)

    def _scan(self, seg: _Segment, start: int) -> list[Record]:
        """Every valid record of ``seg`` from ``start``; corrupt ones counted and skipped."""
        out: list[Record] = []
        try:
            data = seg.path.read_bytes()
        except OSError:
            return out
        pos = start
        while pos < len(data):
            rec = _parse(seg.seq, data, pos)
            if rec is None:
                nxt = data.find(MAGIC, pos + 1)
                self.corrupt += 1
                _log.warning("spool: skipping a corrupt or torn record in %s at %d",
                             seg.path.name, pos)
                if nxt < 0:
                    break
                pos = nxt
                continue
            out.append(rec)
            pos = rec.end
        return out

    # -- appending -------------------------------------------------------------------------

    def append(self, signal: str, body: bytes, flags: int = 0) -> None:
        """Write one request body; durable per the fsync policy when this returns."""
        code = SIGNAL_CODES[signal]
        crc = zlib.crc32(body, zlib.crc32(bytes((code, flags))))
        frame = HEADER.pack(MAGIC, len(body), crc, code, flags) + body
        with self._lock:
            if self._closed:
                raise SpoolFull("the spool is closed")
            self._make_room(len(frame))
            active = self._segments[-1]
            if active.size + len(frame) > self.segment_bytes and active.size > 0:
                self._sync_active()
                self._open_segment(active.seq + 1)
                active = self._segments[-1]
            assert self._writer is not None
            os.write(self._writer, frame)
            self._refusing = False
            active.size += len(frame)
            active.records += 1
            active.live_bytes += len(frame)
            self._written = active.size
            target = (active.seq, active.size)
            self._readable.notify_all()
        if self.fsync == "always":
            self._sync_upto(target)

    def _make_room(self, need: int) -> None:
        if self.queued_bytes_locked() + need <= self.max_bytes:
            return
        if need > self.max_bytes or self.on_full == "reject":
            self.dropped_full += 1
            self._refusing = True
            raise SpoolFull(f"spool full: {self.max_bytes // (1024 * 1024)} MiB queued")
        while self.queued_bytes_locked() + need > self.max_bytes:  # drop-oldest
            rec = self._head_locked()
            if rec is None:
                break
            self._advance(rec)
            self.dropped_oldest += 1
        self._write_cursor()

    def _sync_active(self) -> None:
        if self._writer is not None and self.fsync != "never":
            os.fsync(self._writer)
            self._durable = self._written

    def _sync_upto(self, target: tuple[int, int]) -> None:
        """Group commit: one fsync covers every append made before it started."""
        with self._sync_lock:
            with self._lock:
                active = self._segments[-1]
                if target[0] < active.seq or (target[0] == active.seq
                                              and self._durable >= target[1]):
                    return
                fd, upto = self._writer, self._written
            if fd is not None:
                os.fsync(fd)
            with self._lock:
                if self._segments[-1].seq == target[0]:
                    self._durable = max(self._durable, upto)

    def _interval_sync(self) -> None:
        stop = threading.Event()
        while not stop.wait(1.0):
            with self._lock:
                if self._closed:
                    return
                fd = self._writer
            try:
                if fd is not None:
                    os.fsync(fd)
            except OSError:
                return

    # -- reading -----------------------------------------------------------------------------

    def peek(self, timeout: float | None = None) -> Record | None:
        """The oldest undelivered record (waiting up to ``timeout`` for one), or None."""
        with self._lock:
            while True:
                rec = self._head_locked()
                if rec is not None or self._closed:
                    return rec
                if not self._readable.wait(timeout):
                    return None

    def peek_batch(self, max_records: int, max_bytes: int,
                   timeout: float | None = None) -> list[Record]:
        """The oldest undelivered records of one signal and encoding, in order (maybe none).

        Consecutive records of the same segment are taken while they share the
        head's signal and JSON flag, up to ``max_records`` and ``max_bytes`` of body.
        """
        head = self.peek(timeout)
        if head is None:
            return []
        batch = [head]
        size = len(head.body)
        with self._lock:
            seg = next((s for s in self._segments if s.seq == head.segment), None)
            seg_size = seg.size if seg is not None else 0
            path = seg.path if seg is not None else None
        if path is None:
            return batch
        try:
            with path.open("rb") as f:
                pos = head.end
                while len(batch) < max_records and pos < seg_size:
                    f.seek(pos)
                    hdr = f.read(HEADER.size)
                    if len(hdr) < HEADER.size:
                        break
                    magic, length, _, code, flags = HEADER.unpack(hdr)
                    if (magic != MAGIC or SIGNAL_NAMES.get(code) != head.signal
                            or (flags & FLAG_JSON) != (head.flags & FLAG_JSON)
                            or size + length > max_bytes):
                        break
                    rec = _parse(head.segment, hdr + f.read(length), 0, base=pos)
                    if rec is None:
                        break
                    batch.append(rec)
                    size += len(rec.body)
                    pos = rec.end
        except OSError:
            pass
        return batch

    def ack_batch(self, records: list[Record]) -> None:
        """Mark consecutive ``records`` delivered (those drop-oldest already removed are skipped)."""
        with self._lock:
            for rec in records:
                if (rec.segment, rec.offset) == (self._cursor_seg, self._cursor_off):
                    self._advance(rec)
            self._refusing = False
            self._write_cursor()

    def _head_locked(self) -> Record | None:
        while self._segments:
            head = self._segments[0]
            if head.seq < self._cursor_seg:
                self._segments.popleft()
                continue
            start = self._cursor_off if head.seq == self._cursor_seg else 0
            if start < head.size:
                rec = self._read_one(head, start)
                if rec is not None:
                    return rec
                # corrupt: skip to the next magic or the end of the segment
                nxt = self._find_magic(head, start + 1)
                self.corrupt += 1
                _log.warning("spool: skipping a corrupt record in %s at %d",
                             head.path.name, start)
                self._cursor_seg, self._cursor_off = head.seq, nxt if nxt >= 0 else head.size
                continue
            if head is self._segments[-1]:
                return None
            self._segments.popleft()
            head.path.unlink(missing_ok=True)
            self._cursor_seg, self._cursor_off = self._segments[0].seq, 0
        return None

    def _read_one(self, seg: _Segment, offset: int) -> Record | None:
        try:
            with seg.path.open("rb") as f:
                f.seek(offset)
                head = f.read(HEADER.size)
                if len(head) < HEADER.size:
                    return None
                magic, length, _, _, _ = HEADER.unpack(head)
                if magic != MAGIC or length > seg.size:
                    return None
                data = head + f.read(length)
        except OSError:
            return None
        return _parse(seg.seq, data, 0, base=offset)

    def _find_magic(self, seg: _Segment, start: int) -> int:
        try:
            data = seg.path.read_bytes()
        except OSError:
            return -1
        return data.find(MAGIC, start)

    def ack(self, rec: Record) -> None:
        """Mark ``rec`` delivered (or given up): the cursor moves past it."""
        with self._lock:
            if (rec.segment, rec.offset) != (self._cursor_seg, self._cursor_off):
                return  # drop-oldest already moved past it
            self._advance(rec)
            self._refusing = False
            self._write_cursor()

    def _advance(self, rec: Record) -> None:
        self._cursor_seg, self._cursor_off = rec.segment, rec.end
        for seg in self._segments:
            if seg.seq == rec.segment:
                seg.records -= 1
                seg.live_bytes -= rec.end - rec.offset
                break

    def _write_cursor(self) -> None:
        tmp = self.dir / "cursor.tmp"
        tmp.write_text(f"{self._cursor_seg} {self._cursor_off}\n")
        os.replace(tmp, self.dir / "cursor")

    # -- state -------------------------------------------------------------------------------

    def queued_bytes_locked(self) -> int:
        return sum(s.live_bytes for s in self._segments)

    def depth(self) -> tuple[int, int]:
        """(records, bytes) waiting to be delivered."""
        with self._lock:
            return (sum(max(0, s.records) for s in self._segments), self.queued_bytes_locked())

    def is_full(self) -> bool:
        """True while the spool refuses appends (since the last refusal, until room is made)."""
        with self._lock:
            return self._refusing or self.queued_bytes_locked() >= self.max_bytes

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._readable.notify_all()
            if self._writer is not None:
                if self.fsync != "never":
                    os.fsync(self._writer)
                os.close(self._writer)
                self._writer = None
            self._write_cursor()


def _parse(seq: int, data: bytes, pos: int, base: int | None = None) -> Record | None:
    if len(data) - pos < HEADER.size:
        return None
    magic, length, crc, code, flags = HEADER.unpack_from(data, pos)
    end = pos + HEADER.size + length
    if magic != MAGIC or end > len(data) or code not in SIGNAL_NAMES:
        return None
    body = data[pos + HEADER.size:end]
    if zlib.crc32(body, zlib.crc32(bytes((code, flags)))) != crc:
        return None
    off = pos if base is None else base + pos
    return Record(seq, off, off + HEADER.size + length, SIGNAL_NAMES[code], flags, bytes(body))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
