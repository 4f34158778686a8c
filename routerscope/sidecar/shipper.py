"""Ships the spool upstream, in order, with backoff; or writes OTLP JSON lines to a file.

Retries 429, 502, 503, 504, connection errors and timeouts with exponential
backoff and equal jitter (each wait is between half and all of the step),
honouring ``Retry-After`` (seconds or HTTP-date, up to a cap), for as long as
the outage lasts: the records stay at the head of the spool.

No record can block the queue:

* Any other answer (4xx, 500, 501) for a batch of several coalesced requests
  splits the batch in halves, and each half is sent again, until the request
  the upstream rejects stands alone; its neighbours are delivered.
* A request the upstream rejects on its own, and one that fails locally
  (cannot be read or encoded) :data:`~routerscope.sidecar.defaults.LOCAL_ATTEMPTS`
  times, is isolated: written to the spool's dead-letter file with its reason,
  counted as dropped by reason, and the reason logged once per kind.

A ``partial_success`` counts as delivered and its rejected items are counted.
"""

from __future__ import annotations

import gzip
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import InvalidHeader
from urllib3.util import Retry

from routerscope.sidecar import defaults
from routerscope.sidecar.spool import Record, Spool

__all__ = ["RETRYABLE", "Shipper", "ShipperStats", "redact_url"]

_log = logging.getLogger("routerscope.sidecar")

RETRYABLE: Final = frozenset({429, 502, 503, 504})
SEND_SECONDS_KEPT: Final = 10_000
_CTYPE: Final = {True: "application/json", False: "application/x-protobuf"}


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@`` (for logs and status)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


class _LocalError(Exception):
    """A record that cannot be read or encoded here (not the upstream's fault)."""


@dataclass
class ShipperStats:
    shipped: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    rejected_items: dict[str, int] = field(default_factory=dict)
    send_seconds: list[float] = field(default_factory=list)  # the latest SEND_SECONDS_KEPT sends
    last_error: str | None = None


class Shipper:
    """One thread that drains a :class:`Spool` to an OTLP/HTTP endpoint or a file."""

    def __init__(self, spool: Spool, upstream: str, *,
                 send_timeout: float = defaults.SEND_TIMEOUT,
                 backoff_base: float = defaults.BACKOFF_BASE,
                 backoff_max: float = defaults.BACKOFF_MAX,
                 retry_after_max: float = defaults.RETRY_AFTER_MAX,
                 headers: dict[str, str] | None = None,
                 on_send: Callable[[float, str], None] | None = None,
                 batch_records: int = defaults.BATCH_RECORDS,
                 batch_bytes: int = defaults.BATCH_BYTES,
                 local_attempts: int = defaults.LOCAL_ATTEMPTS,
                 max_body: int = int(defaults.MAX_BODY_MB * 1024 * 1024)) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https", "file"):
            raise ValueError(f"--upstream must be http(s)://host:port or file://PATH.jsonl, "
                             f"got {redact_url(upstream)!r}")
        self.spool = spool
        self.upstream = upstream.rstrip("/")
        self.shown = redact_url(self.upstream)
        self.is_file = parts.scheme == "file"
        self.send_timeout = send_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.local_attempts = max(1, local_attempts)
        self.max_body = max_body
        self.stats = ShipperStats()
        self.batch_records = max(1, batch_records)
        self.batch_bytes = max(1, batch_bytes)
        self._on_send = on_send
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._thread: threading.Thread | None = None
        self._failures: tuple[tuple[int, int], int] = ((-1, -1), 0)  # head record, attempts
        self._retry = Retry()
        self._fd: int | None = None
        if self.is_file:
            path = Path(parts.netloc + parts.path) if parts.netloc else Path(parts.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        else:
            self.url, self.http = _pool(self.upstream, send_timeout, headers or {})

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
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            batch = self.spool.peek_batch(self.batch_records, self.batch_bytes, timeout=0.5)
            if not batch:
                continue
            try:
                delay = self._deliver(batch)
            except Exception as exc:  # noqa: BLE001 - never let the shipper die
                delay = self._failed_locally(batch[0], exc)
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
        return random.uniform(cap / 2, cap)  # equal jitter: never below half the step

    # -- one batch -----------------------------------------------------------------------

    def _deliver(self, batch: list[Record]) -> float | None:
        """None when done with ``batch`` (delivered or isolated); else seconds to wait (0 = backoff).

        Several spooled requests of one signal go up as one: serialized OTLP
        requests concatenate into one valid request (repeated fields merge), and
        the result is gzip'd once.
        """
        if len(batch) == 1 and batch[0].is_gzip and not self.is_file:
            return self._post(batch, [])  # one validated gzip member goes as it came
        bodies: list[bytes] = []
        for i, rec in enumerate(batch):
            try:
                bodies.append(_plain(rec, self.max_body))
            except _LocalError as exc:
                if i == 0:
                    return self._failed_locally(rec, exc)
                batch = batch[:i]  # send the good ones before it; it is the head next time
                break
        if self.is_file:
            return self._write_file(batch, bodies)
        return self._post(batch, bodies)

    def _post(self, batch: list[Record], bodies: list[bytes]) -> float | None:
        rec = batch[0]
        if len(batch) == 1 and rec.is_gzip:
            body = rec.body  # one validated gzip member: it goes as it came
        else:
            body = gzip.compress(b"".join(bodies), compresslevel=1)
        headers = {**self.http.headers, "Content-Type": _CTYPE[rec.is_json],
                   "Content-Encoding": "gzip"}
        t0 = time.perf_counter()
        try:
            resp = self.http.request("POST", f"{self.url}/v1/{rec.signal}", body=body,
                                     headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            self._sent(time.perf_counter() - t0, "error")
            self.stats.last_error = type(exc).__name__
            self._warn_once(f"conn:{type(exc).__name__}",
                            f"upstream {self.shown} unreachable ({type(exc).__name__}); "
                            "retrying with backoff, data stays in the spool")
            return 0.0
        self._sent(time.perf_counter() - t0, str(resp.status))
        if 200 <= resp.status < 300:
            self._partial_success(rec, resp)
            self._done(batch, "shipped")
            return None
        if resp.status in RETRYABLE:
            self.stats.last_error = f"HTTP {resp.status}"
            return self._retry_after(resp.headers.get("Retry-After"))
        if len(batch) > 1:  # find the one it rejects: halves, until it stands alone
            mid = len(batch) // 2
            delay = self._post(batch[:mid], bodies[:mid])
            if delay is not None or self._stop.is_set():
                return delay if delay is not None else 0.0
            return self._post(batch[mid:], bodies[mid:])
        reason = f"http_{resp.status}"
        self._warn_once(reason, f"upstream rejected a {rec.signal} request with "
                                f"{resp.status}: {resp.data[:300]!r}; it is isolated in "
                                "the dead-letter file, not retried")
        self._isolate(rec, reason)
        return None

    def _failed_locally(self, rec: Record, exc: Exception) -> float | None:
        """Count an attempt at the head record; isolate it after ``local_attempts``."""
        key = (rec.segment, rec.offset)
        prev, n = self._failures
        n = n + 1 if prev == key else 1
        self._failures = (key, n)
        kind = f"local:{type(exc).__name__}"
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if kind not in self._warned:
            self._warned.add(kind)
            _log.warning("shipper: a %s record failed locally (%s: %s); it is isolated after "
                         "%d attempts", rec.signal, type(exc).__name__, exc, self.local_attempts,
                         exc_info=not isinstance(exc, _LocalError))
        if n < self.local_attempts:
            return self.backoff_base
        self._isolate(rec, "local_error")
        return None

    def _isolate(self, rec: Record, reason: str) -> None:
        self.spool.dead_letter(rec, reason, _CTYPE[rec.is_json])
        self._done([rec], "dropped", reason)

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
            del self.stats.send_seconds[:-SEND_SECONDS_KEPT]
        if self._on_send is not None:
            self._on_send(seconds, outcome)

    def _retry_after(self, value: str | None) -> float:
        """Seconds to wait per a ``Retry-After`` header (0 when absent or unreadable)."""
        if not value:
            return 0.0
        try:
            return max(0.0, float(self._retry.parse_retry_after(value)))
        except InvalidHeader:
            return 0.0

    def _partial_success(self, rec: Record, resp: urllib3.BaseHTTPResponse) -> None:
        if not resp.data:
            return
        try:
            from routerscope.otlp_json import response_class

            msg = response_class(rec.signal)()
            if "json" in resp.headers.get("Content-Type", ""):
                from google.protobuf.json_format import Parse

                Parse(resp.data, msg, ignore_unknown_fields=True)
            else:
                msg.ParseFromString(resp.data)
            if not msg.HasField("partial_success"):
                return
            ps = msg.partial_success
            rejected = int(getattr(ps, {"traces": "rejected_spans", "metrics":
                                        "rejected_data_points", "logs": "rejected_log_records"}
                                   [rec.signal]))
        except Exception:  # noqa: BLE001 - an odd response body is not our data's problem
            self._warn_once("odd-response", f"upstream {self.shown} answered 2xx with a body "
                                            "that is not an OTLP response; counted as delivered")
            return
        if rejected:
            with self._lock:
                self.stats.rejected_items[rec.signal] = \
                    self.stats.rejected_items.get(rec.signal, 0) + rejected
            self._warn_once(f"partial:{rec.signal}", f"upstream rejected {rejected} "
                                                     f"{rec.signal} items: {ps.error_message!r}")

    def _write_file(self, batch: list[Record], bodies: list[bytes]) -> float | None:
        """Append one OTLP JSON line per record; a failed write is cut off and retried."""
        from routerscope.otlp_json import decode, to_json

        lines: list[str] = []
        for i, (rec, body) in enumerate(zip(batch, bodies, strict=True)):
            try:
                lines.append(to_json(decode(rec.signal, body, _CTYPE[rec.is_json])) + "\n")
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the rest
                if i == 0:
                    return self._failed_locally(rec, exc)
                batch = batch[:i]
                break
        assert self._fd is not None
        data = "".join(lines).encode()
        start = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                if n <= 0:
                    raise OSError("short write")
                view = view[n:]
        except OSError as exc:
            try:
                os.ftruncate(self._fd, start)  # no torn line for the reader
            except OSError:
                self._warn_once("file-truncate", f"cannot cut a failed write off {self.shown}")
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            self._warn_once(f"file:{type(exc).__name__}", f"cannot write {self.shown} ({exc}); "
                                                          "retrying, data stays in the spool")
            return 0.0
        self._done(batch, "shipped")
        return None

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            _log.warning(message)


def _pool(upstream: str, send_timeout: float,
          headers: dict[str, str]) -> tuple[str, urllib3.PoolManager]:
    """(URL without credentials, a keep-alive urllib3 pool for it): the environment's proxy and
    CA-bundle settings are read once here (as requests reads them), credentials in the URL
    become a basic ``Authorization`` header (the pool's ``headers``, sent with every request),
    and urllib3 retries nothing (the shipper does)."""
    import certifi  # requests' CA bundle, so https upstreams verify as they did with requests
    import requests.utils

    parts = urlsplit(upstream)
    headers = dict(headers)
    if parts.username is not None:
        auth = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers.setdefault("Authorization",
                           urllib3.util.make_headers(basic_auth=auth)["authorization"])
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    url = urlunsplit(parts)
    ca = (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
          or certifi.where())
    kw: dict[str, Any] = {"num_pools": 1, "maxsize": 2, "retries": False, "headers": headers,
                          "timeout": urllib3.Timeout(connect=min(5.0, send_timeout),
                                                     read=send_timeout)}
    if parts.scheme == "https":
        kw["ca_certs"] = ca
    proxy = requests.utils.get_environ_proxies(url).get(parts.scheme)
    if proxy:
        return url, urllib3.ProxyManager(proxy, **kw)
    return url, urllib3.PoolManager(**kw)


def _plain(rec: Record, limit: int) -> bytes:
    """The record's request bytes, uncompressed (a spool of an older version may hold gzip
    that was never validated: that fails here, and is isolated)."""
    if not rec.is_gzip:
        return rec.body
    from routerscope.sidecar.ingest import BodyRejected, inflate

    try:
        return inflate(rec.body, limit)
    except BodyRejected as exc:
        raise _LocalError(exc.message) from None
