"""A durable, bounded, ordered on-disk queue of OTLP request bodies.

Layout: ``DIR/seg-<N>.log`` segment files, appended to in order;
``DIR/cursor.pos`` (the first record not yet delivered: segment and offset);
``DIR/dead-letter.jsonl`` (records isolated as undeliverable, with the reason).

Record: ``b"RSP1" | length u32 | crc32 u32 | signal u8 | flags u8 | body``;
the CRC covers signal, flags and body. A record is durable once :meth:`append`
returns (under the ``always`` fsync policy). A write that fails (short write,
ENOSPC, EIO, failed fsync) raises :class:`OSError` and the partial record is
cut off again (or, where even that fails, left torn: the reader rejects it by
its CRC). Readers resume at the cursor; a torn tail or corrupt record is
skipped, counted and logged, never fatal.

Recording progress needs no free disk space: ``cursor.pos`` is allocated once
(two 4 KiB slots) and each update overwrites the older slot in place with a
generation number and a CRC; on start the newer valid slot wins, so a torn
cursor write costs at most the progress of one batch.

A segment is deleted once every record in it is delivered; when the queue is
drained and the active segment holds over :data:`ROLL_DRAINED_BYTES`, it is
closed and deleted too, so the disk frees up without waiting for a full segment.

fsync policy (``--fsync``):

* ``always`` (default): ``fsync`` before the 2xx, shared by concurrent
  requests (group commit). Survives a power loss.
* ``interval``: written to the page cache before the 2xx, ``fsync`` once a
  second. Survives ``kill -9`` of the sidecar, not a power loss.
* ``never``: the OS decides. Survives ``kill -9``, not a power loss.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from routerscope.core.otel import swallowed
from routerscope.sidecar import defaults

__all__ = ["FLAG_GZIP", "FLAG_JSON", "SIGNAL_CODES", "Record", "Spool", "SpoolFull"]

_log = logging.getLogger("routerscope.sidecar")

MAGIC: Final = b"RSP1"
HEADER: Final = struct.Struct(">4sIIBB")
SIGNAL_CODES: Final = {"traces": 1, "metrics": 2, "logs": 3}
SIGNAL_NAMES: Final = {v: k for k, v in SIGNAL_CODES.items()}
FLAG_JSON: Final = 1  # body is OTLP JSON (only spools written by older versions)
FLAG_GZIP: Final = 2  # body is one gzip member (validated before it was stored)
CURSOR_FILE: Final = "cursor.pos"
CURSOR_SLOT: Final = 4096
CURSOR: Final = struct.Struct(">4sQQQI")  # magic, generation, segment, offset, crc32
CURSOR_MAGIC: Final = b"RSC1"
DEAD_LETTER_FILE: Final = "dead-letter.jsonl"
ROLL_DRAINED_BYTES: Final = 4 * 1024 * 1024


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


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written; a write of 0 bytes is an error."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(f"short write: {len(view)} of {len(data)} bytes not written")
        view = view[n:]


class Spool:
    """See the module docstring. Thread-safe: many appenders, one reader."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int,
                 on_full: str = defaults.ON_FULL, fsync: str = defaults.FSYNC,
                 segment_bytes: int = defaults.SEGMENT_BYTES,
                 dead_letter_bytes: int = int(defaults.DEAD_LETTER_MB * 1024 * 1024)) -> None:
        if on_full not in defaults.ON_FULL_POLICIES:
            raise ValueError(f"on_full must be one of {defaults.ON_FULL_POLICIES}, "
                             f"got {on_full!r}")
        if fsync not in defaults.FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {defaults.FSYNC_POLICIES}, got {fsync!r}")
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        self.max_bytes = max_bytes
        self.on_full = on_full
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.dead_letter_bytes = dead_letter_bytes
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._readable = threading.Condition(self._lock)
        self._segments: deque[_Segment] = deque()
        self._writer: int | None = None  # fd of the active segment
        self._writer_torn = False  # a failed write could not be cut off: start a new segment
        self._written = 0  # bytes appended to the active segment
        self._durable = 0  # bytes of the active segment known to be on disk
        self.corrupt = 0
        self._refusing = False
        self.dropped_full = 0
        self.dropped_oldest = 0
        self.write_errors = 0
        self._failing_need = 0  # bytes of the last append that failed; 0 while writes succeed
        self._failing_errno: int | None = None
        self.last_write_error: str | None = None
        self.dead_lettered: dict[str, int] = {}
        self.dead_letter_overflow = 0
        self._cursor_seg = 0
        self._cursor_off = 0
        self._cursor_gen = 0
        self._cursor_fd: int | None = None
        self._delivered: list[Path] = []  # segments to delete, outside the lock
        self._closed = False
        self._recover()
        if fsync == "interval":
            threading.Thread(target=self._interval_sync, daemon=True,
                             name="routerscope-spool-sync").start()

    # -- recovery ----------------------------------------------------------------------

    def _recover(self) -> None:
        self._open_cursor()
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
        if self._cursor_seg < self._segments[0].seq:
            self._cursor_seg, self._cursor_off = self._segments[0].seq, 0

    def _open_cursor(self) -> None:
        """Open (creating and allocating on first use) ``cursor.pos``; read the newest slot."""
        path = self.dir / CURSOR_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size < 2 * CURSOR_SLOT:
                try:
                    os.posix_fallocate(fd, 0, 2 * CURSOR_SLOT)
                except OSError:  # a file system without fallocate: write the zeros
                    os.pwrite(fd, bytes(2 * CURSOR_SLOT - size), size)
                os.fsync(fd)
            best: tuple[int, int, int] | None = None
            for slot in (0, 1):
                raw = os.pread(fd, CURSOR.size, slot * CURSOR_SLOT)
                parsed = _parse_cursor(raw)
                if parsed is not None and (best is None or parsed[0] > best[0]):
                    best = parsed
        except OSError:
            os.close(fd)
            raise
        self._cursor_fd = fd
        if best is not None:
            self._cursor_gen, self._cursor_seg, self._cursor_off = best
            return
        legacy = self.dir / "cursor"  # the text cursor of older versions
        try:
            seq_s, off_s = legacy.read_text().split()
            self._cursor_seg, self._cursor_off = int(seq_s), int(off_s)
        except (OSError, ValueError):
            self._cursor_seg, self._cursor_off = 0, 0

    def _path(self, seq: int) -> Path:
        return self.dir / f"seg-{seq:012d}.log"

    def _open_segment(self, seq: int) -> None:
        path = self._path(seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self._writer is not None:
            try:
                os.close(self._writer)
            except OSError:
                swallowed("sidecar.spool.close_segment")
        self._writer = fd
        self._writer_torn = False
        self._segments.append(_Segment(seq, path, size=os.fstat(fd).st_size))
        self._written = self._durable = self._segments[-1].size
        if self.fsync == "always":
            _fsync_dir(self.dir)

    def _scan(self, seg: _Segment, start: int) -> list[Record]:
        """Every valid record of ``seg`` from ``start``; corrupt ones counted and skipped."""
        out: list[Record] = []
        try:
            data = seg.path.read_bytes()
        except OSError as exc:
            _log.warning("spool: cannot read %s: %s", seg.path.name, exc)
            return out
        pos = start
        while pos < len(data):
            rec = _parse(seg.seq, data, pos)
            if rec is None:
                nxt = data.find(MAGIC, pos + 1)
                self._skipped(seg, pos)
                if nxt < 0:
                    break
                pos = nxt
                continue
            out.append(rec)
            pos = rec.end
        return out

    # -- appending -------------------------------------------------------------------------

    def append(self, signal: str, body: bytes, flags: int = 0) -> None:
        """Write one request body; durable per the fsync policy when this returns.

        Raises :class:`SpoolFull` at the byte limit (policy ``reject``) and
        :class:`OSError` when the write or the fsync fails; then nothing of the
        record can be read back as valid.
        """
        code = SIGNAL_CODES[signal]
        crc = zlib.crc32(body, zlib.crc32(bytes((code, flags))))
        frame = HEADER.pack(MAGIC, len(body), crc, code, flags) + body
        with self._lock:
            if self._closed:
                raise SpoolFull("the spool is closed")
            self._make_room(len(frame))
            active = self._segments[-1]
            try:
                if self._writer_torn or (active.size + len(frame) > self.segment_bytes
                                         and active.size > 0):
                    self._sync_active()
                    self._open_segment(active.seq + 1)
                    active = self._segments[-1]
                assert self._writer is not None
                self._write_frame(active, frame)
            except OSError as exc:
                self._write_failed(exc, len(frame))
                raise
            self._refusing = False
            self._failing_need = 0
            active.size += len(frame)
            active.records += 1
            active.live_bytes += len(frame)
            self._written = active.size
            target = (active.seq, active.size)
            self._readable.notify_all()
        if self.fsync == "always":
            try:
                self._sync_upto(target)
            except OSError as exc:
                with self._lock:
                    self._write_failed(exc, len(frame))
                raise

    def _write_frame(self, active: _Segment, frame: bytes) -> None:
        assert self._writer is not None
        try:
            _write_all(self._writer, frame)
        except OSError:
            try:  # cut the partial record off again, so nothing of it is ever read
                os.ftruncate(self._writer, active.size)
            except OSError:
                self._writer_torn = True  # its CRC rejects it; the next append rolls
            raise

    def _write_failed(self, exc: OSError, need: int) -> None:
        self.write_errors += 1
        self._failing_need = need
        self._failing_errno = exc.errno
        self.last_write_error = f"{type(exc).__name__}: {exc}"

    def _make_room(self, need: int) -> None:
        if self.queued_bytes_locked() + need <= self.max_bytes:
            return
        if need > self.max_bytes or self.on_full == "reject":
            self.dropped_full += 1
            self._refusing = True
            raise SpoolFull(f"spool full: {self.queued_bytes_locked()} of {self.max_bytes} "
                            "bytes queued")
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
            except OSError as exc:
                with self._lock:
                    self._write_failed(exc, 1)
                _log.warning("spool: fsync failed: %s", exc)

    # -- reading -----------------------------------------------------------------------------

    def peek(self, timeout: float | None = None) -> Record | None:
        """The oldest undelivered record (waiting up to ``timeout`` for one), or None."""
        try:
            with self._lock:
                while True:
                    rec = self._head_locked()
                    if rec is not None or self._closed:
                        return rec
                    if not self._readable.wait(timeout):
                        return None
        finally:
            self._unlink_delivered()

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
            swallowed("sidecar.spool.peek_batch")  # the head alone still goes
        return batch

    def ack_batch(self, records: list[Record]) -> None:
        """Mark consecutive ``records`` delivered (those drop-oldest already removed are skipped)."""
        with self._lock:
            for rec in records:
                if (rec.segment, rec.offset) == (self._cursor_seg, self._cursor_off):
                    self._advance(rec)
            self._refusing = False
            while (len(self._segments) > 1 and (self._cursor_seg, self._cursor_off)
                   == (self._segments[0].seq, self._segments[0].size)):
                done = self._segments.popleft()  # fully delivered: free its space now
                self._cursor_seg, self._cursor_off = self._segments[0].seq, 0
                self._delivered.append(done.path)
            self._roll_if_drained()
            self._write_cursor()
        self._unlink_delivered()

    def _unlink_delivered(self) -> None:
        """Delete fully delivered segments (after the cursor moved past them), without the lock."""
        while self._delivered:
            try:
                path = self._delivered.pop()
            except IndexError:
                return
            path.unlink(missing_ok=True)
            with self._lock:
                self._failing_need = 0  # space was freed: let writers try again

    def ack(self, rec: Record) -> None:
        """Mark ``rec`` delivered (or given up): the cursor moves past it."""
        self.ack_batch([rec])

    def _roll_if_drained(self) -> None:
        """Everything delivered and the active segment is big: start a new one, delete it."""
        active = self._segments[-1]
        if (len(self._segments) != 1 or active.size < ROLL_DRAINED_BYTES
                or (self._cursor_seg, self._cursor_off) != (active.seq, active.size)):
            return
        try:
            self._open_segment(active.seq + 1)
        except OSError as exc:
            _log.debug("spool: cannot start a new segment yet: %s", exc)
            return
        self._cursor_seg, self._cursor_off = active.seq + 1, 0
        self._write_cursor()
        self._segments.popleft()
        self._delivered.append(active.path)

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
                self._skipped(head, start)
                self._cursor_seg, self._cursor_off = head.seq, nxt if nxt >= 0 else head.size
                continue
            if head is self._segments[-1]:
                return None
            self._segments.popleft()
            self._cursor_seg, self._cursor_off = self._segments[0].seq, 0
            self._write_cursor()
            self._delivered.append(head.path)
        return None

    def _skipped(self, seg: _Segment, offset: int) -> None:
        """Count a corrupt or torn record; the first is logged at WARNING, the rest at DEBUG."""
        self.corrupt += 1
        _log.log(logging.WARNING if self.corrupt == 1 else logging.DEBUG,
                 "spool: skipping a corrupt or torn record in %s at %d (counted as dropped "
                 "'corrupt'; later ones are logged at debug)", seg.path.name, offset)

    def _read_one(self, seg: _Segment, offset: int) -> Record | None:
        try:
            with seg.path.open("rb") as f:
                f.seek(offset)
                head = f.read(HEADER.size)
                if len(head) < HEADER.size:
                    return None
                magic, length, _, _, _ = HEADER.unpack(head)
                if magic != MAGIC or offset + HEADER.size + length > seg.size:
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
        pos = data.find(MAGIC, start)
        return pos if 0 <= pos < seg.size else -1

    def _advance(self, rec: Record) -> None:
        self._cursor_seg, self._cursor_off = rec.segment, rec.end
        for seg in self._segments:
            if seg.seq == rec.segment:
                seg.records -= 1
                seg.live_bytes -= rec.end - rec.offset
                break

    def _write_cursor(self) -> None:
        """Overwrite the older cursor slot in place: needs no free disk space."""
        if self._cursor_fd is None:
            return
        self._cursor_gen += 1
        body = struct.pack(">4sQQQ", CURSOR_MAGIC, self._cursor_gen, self._cursor_seg,
                           self._cursor_off)
        data = body + struct.pack(">I", zlib.crc32(body))
        try:
            n = os.pwrite(self._cursor_fd, data, (self._cursor_gen % 2) * CURSOR_SLOT)
            if n != len(data):
                raise OSError(f"short cursor write ({n} of {len(data)} bytes)")
        except OSError as exc:  # progress is kept in memory; a restart re-ships from the last
            self._write_failed(exc, 0)
            _log.debug("spool: cursor write failed: %s", exc)

    # -- dead letters ------------------------------------------------------------------------

    def dead_letter(self, rec: Record, reason: str, content_type: str) -> None:
        """Keep an undeliverable record, with its reason, in ``dead-letter.jsonl``; count it.

        The file stops growing at ``dead_letter_bytes``: later records are only
        counted (``dead_letter_overflow``). Never raises.
        """
        with self._lock:
            self.dead_lettered[reason] = self.dead_lettered.get(reason, 0) + 1
        line = json.dumps({"time": time.time(), "signal": rec.signal, "reason": reason,
                           "content_type": content_type, "flags": rec.flags,
                           "body_base64": base64.b64encode(rec.body).decode()}) + "\n"
        data = line.encode()
        path = self.dir / DEAD_LETTER_FILE
        try:
            size = path.stat().st_size if path.exists() else 0
            if size + len(data) > self.dead_letter_bytes:
                with self._lock:
                    self.dead_letter_overflow += 1
                return
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                _write_all(fd, data)
            except OSError:
                os.ftruncate(fd, size)
                raise
            finally:
                os.close(fd)
        except OSError as exc:
            with self._lock:
                self.dead_letter_overflow += 1
            _log.debug("spool: cannot write the dead letter: %s", exc)

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

    def is_writable(self) -> bool:
        """False after a failed write, until a write succeeds, a segment is freed, or (after
        ENOSPC) the file system has room again for the record that failed."""
        with self._lock:
            need, errno_ = self._failing_need, self._failing_errno
        if not need:
            return True
        if errno_ not in (errno.ENOSPC, errno.EDQUOT):
            return False
        try:
            st = os.statvfs(self.dir)
        except OSError:
            return False
        if st.f_bavail * st.f_frsize >= need + 64 * 1024:
            with self._lock:
                self._failing_need = 0
            return True
        return False

    def close(self) -> None:
        """Flush and close; never raises (a failed fsync is logged, the data stays)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._readable.notify_all()
            if self._writer is not None:
                try:
                    if self.fsync != "never":
                        os.fsync(self._writer)
                except OSError as exc:
                    _log.warning("spool: fsync at close failed: %s", exc)
                os.close(self._writer)
                self._writer = None
            self._write_cursor()
            if self._cursor_fd is not None:
                try:
                    os.fsync(self._cursor_fd)
                except OSError as exc:
                    _log.debug("spool: cursor fsync at close failed: %s", exc)
                os.close(self._cursor_fd)
                self._cursor_fd = None


def _parse_cursor(raw: bytes) -> tuple[int, int, int] | None:
    if len(raw) < CURSOR.size:
        return None
    magic, gen, seg, off, crc = CURSOR.unpack(raw)
    if magic != CURSOR_MAGIC or zlib.crc32(raw[:CURSOR.size - 4]) != crc:
        return None
    return gen, seg, off


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
        swallowed("sidecar.spool.fsync_dir")
        return
    try:
        os.fsync(fd)
    except OSError:
        swallowed("sidecar.spool.fsync_dir")
    finally:
        os.close(fd)
