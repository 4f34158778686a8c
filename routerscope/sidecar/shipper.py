"""Ships the spool upstream, in order, with backoff; or writes OTLP JSON lines to a file.

Retries 429, 502, 503, 504, connection errors and timeouts with exponential
backoff and full jitter, honouring ``Retry-After`` (seconds or HTTP-date, up
to a cap), for as long as the outage lasts: the record stays at the head of
the spool. Any other 4xx (and 500/501) is not retried: the record is dropped,
counted by reason, and the reason logged once per kind. A ``partial_success``
counts as delivered and its rejected items are counted.
"""

from __future__ import annotations

import email.utils
import gzip
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import requests

from routerscope.sidecar.spool import Record, Spool

__all__ = ["RETRYABLE", "Shipper", "ShipperStats"]

_log = logging.getLogger("routerscope.sidecar")

RETRYABLE: Final = frozenset({429, 502, 503, 504})
DEFAULT_SEND_TIMEOUT: Final = 10.0
DEFAULT_BACKOFF_BASE: Final = 0.5
DEFAULT_BACKOFF_MAX: Final = 30.0
DEFAULT_RETRY_AFTER_MAX: Final = 60.0
DEFAULT_BATCH_RECORDS: Final = 64
DEFAULT_BATCH_BYTES: Final = 4 * 1024 * 1024  # uncompressed-ish: gzip'd records count as stored
_CTYPE: Final = {True: "application/json", False: "application/x-protobuf"}


@dataclass
class ShipperStats:
    shipped: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    rejected_items: dict[str, int] = field(default_factory=dict)
    send_seconds: list[float] = field(default_factory=list)  # since the last read
    last_error: str | None = None


class Shipper:
    """One thread that drains a :class:`Spool` to an OTLP/HTTP endpoint or a file."""

    def __init__(self, spool: Spool, upstream: str, *, send_timeout: float = DEFAULT_SEND_TIMEOUT,
                 backoff_base: float = DEFAULT_BACKOFF_BASE,
                 backoff_max: float = DEFAULT_BACKOFF_MAX,
                 retry_after_max: float = DEFAULT_RETRY_AFTER_MAX,
                 headers: dict[str, str] | None = None,
                 on_send: Callable[[float, str], None] | None = None,
                 batch_records: int = DEFAULT_BATCH_RECORDS,
                 batch_bytes: int = DEFAULT_BATCH_BYTES) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https", "file"):
            raise ValueError(f"--upstream must be http(s)://host:port or file://PATH.jsonl, "
                             f"got {upstream!r}")
        self.spool = spool
        self.upstream = upstream.rstrip("/")
        self.is_file = parts.scheme == "file"
        self.send_timeout = send_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.stats = ShipperStats()
        self.batch_records = max(1, batch_records)
        self.batch_bytes = max(1, batch_bytes)
        self._on_send = on_send
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._thread: threading.Thread | None = None
        self._file: Any = None
        if self.is_file:
            path = Path(parts.netloc + parts.path) if parts.netloc else Path(parts.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
        else:
            from routerscope.core.pool import pooled_session

            self.session = pooled_session(retries=0, pool_maxsize=2,
                                          timeout=(min(5.0, send_timeout), send_timeout),
                                          headers=headers or {})

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> Shipper:
        self._thread = threading.Thread(target=self._run, name="routerscope-shipper",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Finish the in-flight send (bounded by its timeout), then stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.send_timeout + 5)
        if self._file is not None:
            self._file.flush()
            self._file.close()
            self._file = None

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            batch = self.spool.peek_batch(self.batch_records, self.batch_bytes, timeout=0.5)
            if not batch:
                continue
            try:
                delay = self._deliver(batch)
            except Exception as exc:  # noqa: BLE001 - never let the shipper die
                _log.exception("shipper: unexpected error")
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                delay = self.backoff_base
            if delay is None:
                attempt = 0
                continue
            attempt += 1
            with self._lock:
                self.stats.retries += 1
            if self._stop.wait(self._backoff(attempt, delay)):
                return

    def _backoff(self, attempt: int, retry_after: float) -> float:
        if retry_after > 0:
            return min(retry_after, self.retry_after_max)
        cap = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(cap / 2, cap)  # "equal jitter": never below half the step

    # -- one record ----------------------------------------------------------------------

    def _deliver(self, batch: list[Record]) -> float | None:
        """None when done with ``batch`` (delivered or dropped); else seconds to wait (0 = backoff).

        Several spooled requests of one signal go up as one: serialized OTLP
        requests concatenate into one valid request (repeated fields merge), and
        the result is gzip'd once. (Concatenated gzip members would be valid gzip,
        but some collectors read only the first member.)
        """
        rec = batch[0]
        if self.is_file:
            for r in batch:
                self._write_file(r)
            self._done(batch, "shipped")
            return None
        if len(batch) == 1 and rec.is_gzip:
            body = rec.body
        else:
            body = gzip.compress(b"".join(gzip.decompress(r.body) if r.is_gzip else r.body
                                          for r in batch), compresslevel=1)
        headers = {"Content-Type": _CTYPE[rec.is_json], "Content-Encoding": "gzip"}
        t0 = time.perf_counter()
        try:
            resp = self.session.post(f"{self.upstream}/v1/{rec.signal}", data=body,
                                     headers=headers)
        except requests.RequestException as exc:
            self._sent(time.perf_counter() - t0, "error")
            self.stats.last_error = type(exc).__name__
            self._warn_once(f"conn:{type(exc).__name__}",
                            f"upstream {self.upstream} unreachable ({type(exc).__name__}); "
                            "retrying with backoff, data stays in the spool")
            return 0.0
        self._sent(time.perf_counter() - t0, str(resp.status_code))
        if 200 <= resp.status_code < 300:
            self._partial_success(rec, resp)
            self._done(batch, "shipped")
            return None
        if resp.status_code in RETRYABLE:
            self.stats.last_error = f"HTTP {resp.status_code}"
            return _retry_after(resp.headers.get("Retry-After"))
        reason = f"http_{resp.status_code}"
        self._warn_once(reason, f"upstream rejected a {rec.signal} request with "
                                f"{resp.status_code}: {resp.text[:300]!r}; dropped, not retried")
        self._done(batch, "dropped", reason)
        return None

    def _done(self, batch: list[Record], outcome: str, reason: str = "") -> None:
        """Counts are of the requests the sidecar received (not of upstream sends)."""
        self.spool.ack_batch(batch)
        sig = batch[0].signal
        with self._lock:
            if outcome == "shipped":
                self.stats.shipped[sig] = self.stats.shipped.get(sig, 0) + len(batch)
            else:
                self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + len(batch)

    def _sent(self, seconds: float, outcome: str) -> None:
        with self._lock:
            self.stats.send_seconds.append(seconds)
            del self.stats.send_seconds[:-10_000]
        if self._on_send is not None:
            self._on_send(seconds, outcome)

    def _partial_success(self, rec: Record, resp: requests.Response) -> None:
        if not resp.content:
            return
        try:
            from routerscope.otlp_json import response_class

            msg = response_class(rec.signal)()
            if "json" in resp.headers.get("Content-Type", ""):
                from google.protobuf.json_format import Parse

                Parse(resp.text, msg, ignore_unknown_fields=True)
            else:
                msg.ParseFromString(resp.content)
            if not msg.HasField("partial_success"):
                return
            ps = msg.partial_success
            rejected = int(getattr(ps, {"traces": "rejected_spans", "metrics":
                                        "rejected_data_points", "logs": "rejected_log_records"}
                                   [rec.signal]))
        except Exception:  # noqa: BLE001 - an odd response body is not our data's problem
            return
        if rejected:
            with self._lock:
                self.stats.rejected_items[rec.signal] = \
                    self.stats.rejected_items.get(rec.signal, 0) + rejected
            self._warn_once(f"partial:{rec.signal}", f"upstream rejected {rejected} "
                                                     f"{rec.signal} items: {ps.error_message!r}")

    def _write_file(self, rec: Record) -> None:
        from routerscope.otlp_json import decode, to_json

        body = gzip.decompress(rec.body) if rec.is_gzip else rec.body
        msg = decode(rec.signal, body, _CTYPE[rec.is_json])
        self._file.write(to_json(msg) + "\n")
        self._file.flush()

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            _log.warning(message)



def _retry_after(value: str | None) -> float:
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return 0.0
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())
