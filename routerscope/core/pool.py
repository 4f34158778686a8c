"""Connection pooling: one ``requests.Session`` per provider, retried with care.

:func:`pooled_session` builds a session whose adapter keeps keep-alive
connections per host, retries with exponential backoff, jitter and a cap,
honours ``Retry-After`` (seconds or HTTP-date, capped), and puts a default
connect/read timeout on every request.

Which requests are retried
--------------------------
urllib3 never retries POST by default, and LLM calls are POSTs. We decide per
failure, because a retried generation can be billed twice:

* connection errors (refused, DNS, connect timeout): always retried — the
  request never left this machine;
* the connection closed before any response byte arrived (urllib3's
  ``ProtocolError``, typically a keep-alive connection the server had dropped):
  retried for every method — the server sent nothing, so it did not answer;
* 429 and 503: retried for every method — the server refused the work;
* 500, 502, 504: retried for idempotent methods only (GET, HEAD, PUT, DELETE,
  OPTIONS, TRACE); a POST may already have run on the provider;
* read timeouts: retried for idempotent methods only, for the same reason;
* any other 4xx: never retried.

Signals
-------
Every connection opened and every request sent is counted per
``server.address``/``server.port`` in plain integers and reported through
observable counters (``routerscope.pool.connections`` and
``routerscope.pool.requests``; the reuse ratio is ``1 - connections/requests``).
Each retry adds to ``routerscope.pool.retries`` with its reason and emits the
"Retrying request" event.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, Final

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ProtocolError
from urllib3.util.retry import Retry

from routerscope.core import otel, signals
from routerscope.core._log import get_logger

__all__ = [
    "DEFAULT_TIMEOUT",
    "RETRY_STATUSES",
    "PoolStats",
    "PooledAdapter",
    "RouterRetry",
    "pool_stats",
    "pooled_session",
]

_log = get_logger("routerscope.pool")

DEFAULT_TIMEOUT: Final = (5.0, 120.0)
"""Default (connect, read) timeout in seconds applied to requests that set none."""
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
UNSAFE_RETRY_STATUSES: Final = frozenset({429, 503})
"""Statuses on which a non-idempotent request (POST) is retried as well."""
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
DEFAULT_POOL_CONNECTIONS: Final = 10
DEFAULT_POOL_MAXSIZE: Final = 20
DEFAULT_RETRIES: Final = 3
DEFAULT_BACKOFF_FACTOR: Final = 0.5
DEFAULT_BACKOFF_MAX: Final = 30.0
DEFAULT_BACKOFF_JITTER: Final = 0.5
DEFAULT_RETRY_AFTER_MAX: Final = 60.0


class PoolStats:
    """Connections opened and requests sent, per (host, port), in plain integers.

    Incrementing is a dict update under the GIL; the OTel SDK reads the totals
    through observable counters at export time, so the request path never calls
    the metrics API.
    """

    __slots__ = ("_lock", "connections", "requests")

    def __init__(self) -> None:
        self.connections: dict[tuple[str, int], int] = {}
        self.requests: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def add_connection(self, host: str, port: int) -> None:
        key = (host, port)
        with self._lock:
            self.connections[key] = self.connections.get(key, 0) + 1

    def add_request(self, host: str, port: int) -> None:
        key = (host, port)
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1

    def reuse_ratio(self, host: str | None = None) -> float:
        """1 - connections/requests, for one host or all; 0.0 before any request."""
        with self._lock:
            conns = sum(v for (h, _), v in self.connections.items() if host in (None, h))
            reqs = sum(v for (h, _), v in self.requests.items() if host in (None, h))
        return 0.0 if reqs == 0 else max(0.0, 1.0 - conns / reqs)

    def snapshot(self) -> dict[str, dict[tuple[str, int], int]]:
        with self._lock:
            return {"connections": dict(self.connections), "requests": dict(self.requests)}

    def _read(self, table: str) -> Iterable[tuple[float, dict[str, Any]]]:
        with self._lock:
            items = list(getattr(self, table).items())
        return [(v, {signals.SERVER_ADDRESS: h, signals.SERVER_PORT: p}) for (h, p), v in items]


_STATS = PoolStats()


def pool_stats() -> PoolStats:
    """The process-wide connection/request counts of every counted pool."""
    return _STATS


def register_pool_observers() -> None:
    """Report :func:`pool_stats` through observable counters (idempotent, as ``otel.observe`` is)."""
    otel.observe(signals.POOL_CONNECTIONS, lambda: _STATS._read("connections"))
    otel.observe(signals.POOL_REQUESTS, lambda: _STATS._read("requests"))


class _CountingHTTPConnection(HTTPConnection):
    _routerscope_counted = True

    def connect(self) -> None:
        super().connect()
        _STATS.add_connection(self.host, self.port or 80)


class _CountingHTTPSConnection(HTTPSConnection):
    _routerscope_counted = True

    def connect(self) -> None:
        super().connect()
        _STATS.add_connection(self.host, self.port or 443)


class _CountingHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _CountingHTTPConnection
    _routerscope_counted = True

    def _make_request(self, *args: Any, **kwargs: Any) -> Any:
        _STATS.add_request(self.host, self.port or 80)
        return super()._make_request(*args, **kwargs)


class _CountingHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _CountingHTTPSConnection
    _routerscope_counted = True

    def _make_request(self, *args: Any, **kwargs: Any) -> Any:
        _STATS.add_request(self.host, self.port or 443)
        return super()._make_request(*args, **kwargs)


class RouterRetry(Retry):
    """urllib3 ``Retry`` with the policy above, a capped ``Retry-After`` and signals."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method.upper() not in IDEMPOTENT_METHODS and status_code not in UNSAFE_RETRY_STATUSES:
            return False
        return super().is_retry(method, status_code, has_retry_after)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> RouterRetry:
        if (
            error is not None
            and method is not None
            and method.upper() not in IDEMPOTENT_METHODS
            and self._is_read_error(error)
            and not isinstance(error, ProtocolError)
        ):
            # A read timeout on a POST: the provider may be generating (and billing).
            raise error.with_traceback(_stacktrace)
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        _record_retry(response, error, _pool)
        return new


def _record_retry(response: Any, error: Exception | None, pool: Any) -> None:
    if response is not None and getattr(response, "status", None):
        reason = str(response.status)
    elif error is not None:
        reason = type(getattr(error, "reason", None) or error).__name__
    else:
        reason = "unknown"
    host = getattr(pool, "host", None) or "unknown"
    attrs = {signals.SERVER_ADDRESS: host, signals.ATTR_RETRY_REASON: reason}
    try:
        otel.instrument(signals.POOL_RETRIES).add(1, attrs)
        _log.info(signals.EVENT_RETRY, **{"server.address": host, "retry.reason": reason})
    except Exception:  # noqa: BLE001 - telemetry never breaks the request
        otel.swallowed("pool.retry")


class PooledAdapter(HTTPAdapter):
    """``HTTPAdapter`` that counts connections/requests and sets a default timeout."""

    def __init__(
        self,
        *,
        pool_connections: int = DEFAULT_POOL_CONNECTIONS,
        pool_maxsize: int = DEFAULT_POOL_MAXSIZE,
        max_retries: Retry | int = 0,
        timeout: float | tuple[float, float] | None = DEFAULT_TIMEOUT,
        pool_block: bool = False,
    ) -> None:
        self.default_timeout = timeout
        super().__init__(
            pool_connections=pool_connections,
            pool_maxsize=pool_maxsize,
            max_retries=max_retries,
            pool_block=pool_block,
        )

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _CountingHTTPConnectionPool,
            "https": _CountingHTTPSConnectionPool,
        }
        register_pool_observers()

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        if timeout is None:
            timeout = self.default_timeout
        return super().send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )

    # requests pickles adapters; keep the timeout across that.
    __attrs__ = [*HTTPAdapter.__attrs__, "default_timeout"]


def make_retry(
    *,
    total: int = DEFAULT_RETRIES,
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR,
    backoff_max: float = DEFAULT_BACKOFF_MAX,
    backoff_jitter: float = DEFAULT_BACKOFF_JITTER,
    retry_after_max: float = DEFAULT_RETRY_AFTER_MAX,
    status_forcelist: Iterable[int] = RETRY_STATUSES,
) -> RouterRetry:
    """The retry policy of :func:`pooled_session`, for use elsewhere."""
    if total < 0 or backoff_factor < 0 or backoff_max < 0 or retry_after_max < 0:
        raise ValueError("retry counts, backoff and caps must be >= 0")
    return RouterRetry(
        total=total,
        connect=total,
        read=total,
        status=total,
        other=0,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        backoff_jitter=backoff_jitter,
        retry_after_max=retry_after_max,  # type: ignore[arg-type]  # urllib3 takes floats
        status_forcelist=frozenset(status_forcelist),
        allowed_methods=None,  # every method; RouterRetry.is_retry narrows POST
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def pooled_session(
    *,
    pool_connections: int = DEFAULT_POOL_CONNECTIONS,
    pool_maxsize: int = DEFAULT_POOL_MAXSIZE,
    retries: int = DEFAULT_RETRIES,
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR,
    backoff_max: float = DEFAULT_BACKOFF_MAX,
    backoff_jitter: float = DEFAULT_BACKOFF_JITTER,
    retry_after_max: float = DEFAULT_RETRY_AFTER_MAX,
    timeout: float | tuple[float, float] | None = DEFAULT_TIMEOUT,
    headers: Mapping[str, str] | None = None,
) -> requests.Session:
    """A ``requests.Session`` with pooled keep-alive connections and careful retries.

    ``pool_connections`` is how many hosts keep a pool, ``pool_maxsize`` how many
    connections each pool keeps. Retries back off as
    ``backoff_factor * 2**(n-1) + uniform(0, backoff_jitter)`` seconds, at most
    ``backoff_max``; a ``Retry-After`` answer is honoured up to
    ``retry_after_max`` seconds. ``timeout`` is the (connect, read) default.
    When retries are exhausted on a retryable status the last response is
    returned (not raised), so callers see the provider's own error body.
    """
    if pool_connections < 1 or pool_maxsize < 1:
        raise ValueError("pool_connections and pool_maxsize must be >= 1")
    retry = make_retry(
        total=retries,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        backoff_jitter=backoff_jitter,
        retry_after_max=retry_after_max,
    )
    session = requests.Session()
    adapter = PooledAdapter(
        pool_connections=pool_connections,
        pool_maxsize=pool_maxsize,
        max_retries=retry,
        timeout=timeout,
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if headers:
        session.headers.update(headers)
    return session
