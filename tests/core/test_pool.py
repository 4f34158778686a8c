"""Connection pooling against real HTTP and HTTPS servers on 127.0.0.1."""

from __future__ import annotations

import time

import pytest
import requests

from routerscope.core import signals
from routerscope.core.pool import make_retry, pool_stats, pooled_session
from routerscope.testing import FakeProvider, Fault
from tests.conftest import Records, Telemetry


def _counts(port: int) -> tuple[int, int]:
    snap = pool_stats().snapshot()
    key = ("127.0.0.1", port)
    return snap["connections"].get(key, 0), snap["requests"].get(key, 0)


def test_one_session_reuses_connections(provider: FakeProvider) -> None:
    """100 calls on one pooled session open about one connection: reuse ratio > 0.9."""
    session = pooled_session()
    for _ in range(100):
        assert session.get(f"{provider.base_url}/models").status_code == 200
    conns, reqs = _counts(provider.port)
    assert reqs == 100
    reuse = 1 - conns / reqs
    assert reuse > 0.9
    assert provider.connections == conns  # the server saw the same number


def test_new_session_per_call_reuses_nothing(provider: FakeProvider) -> None:
    """A new session per call opens a connection per call: reuse ratio about 0."""
    for _ in range(20):
        with pooled_session() as s:
            s.get(f"{provider.base_url}/models")
    conns, reqs = _counts(provider.port)
    assert reqs == 20
    reuse = 1 - conns / reqs
    assert reuse == pytest.approx(0.0, abs=0.05)


def test_https_pool_reuses_connections(tls_provider: FakeProvider, tls_pair: tuple[object, str]) -> None:
    """Over TLS the pool also keeps one connection for many calls."""
    session = pooled_session()
    for _ in range(30):
        # per request: REQUESTS_CA_BUNDLE in the environment would override session.verify
        resp = session.get(f"{tls_provider.base_url}/models", verify=tls_pair[1])
        assert resp.status_code == 200
    conns, reqs = _counts(tls_provider.port)
    assert (conns, reqs) == (1, 30)


def test_pool_metrics_reported(otel: Telemetry, provider: FakeProvider) -> None:
    """Connections and requests reach the SDK as observable counters per server."""
    session = pooled_session()
    for _ in range(5):
        session.get(f"{provider.base_url}/models")
    want = {signals.SERVER_ADDRESS: "127.0.0.1", signals.SERVER_PORT: provider.port}
    reqs = [p.value for a, p in otel.points(signals.POOL_REQUESTS.name) if a == want]
    conns = [p.value for a, p in otel.points(signals.POOL_CONNECTIONS.name) if a == want]
    assert reqs == [5] and conns == [1]


def test_503_retry_after_is_honoured(otel: Telemetry, logs: Records, provider: FakeProvider) -> None:
    """503 with Retry-After: 1, then 200: one retry, at least 1 s later, with its reason."""
    provider.enqueue(Fault(status=503, headers={"Retry-After": "1"}))
    session = pooled_session()
    resp = session.post(f"{provider.base_url}/chat/completions", json={"model": "m", "messages": []})
    assert resp.status_code == 200
    assert len(provider.seen) == 2
    assert provider.seen[1].at - provider.seen[0].at >= 1.0
    retries = [
        (a, p.value)
        for a, p in otel.points(signals.POOL_RETRIES.name)
        if a.get(signals.SERVER_ADDRESS) == "127.0.0.1" and a.get(signals.ATTR_RETRY_REASON) == "503"
    ]
    assert retries and retries[0][1] >= 1
    assert signals.EVENT_RETRY in logs.events()


def test_retry_after_http_date(provider: FakeProvider) -> None:
    """An HTTP-date Retry-After is honoured too."""
    from email.utils import formatdate

    provider.enqueue(Fault(status=429, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)}))
    resp = pooled_session().get(f"{provider.base_url}/models")
    assert resp.status_code == 200
    assert provider.seen[1].at - provider.seen[0].at >= 0.9


def test_retry_after_is_capped(provider: FakeProvider) -> None:
    """A Retry-After beyond the cap waits only the cap."""
    provider.enqueue(Fault(status=503, headers={"Retry-After": "3600"}))
    resp = pooled_session(retry_after_max=0.2).get(f"{provider.base_url}/models")
    assert resp.status_code == 200
    assert provider.seen[1].at - provider.seen[0].at < 30


def test_400_is_never_retried(provider: FakeProvider) -> None:
    """A 400 is answered at once, without a retry."""
    provider.enqueue(Fault(status=400))
    resp = pooled_session().post(f"{provider.base_url}/chat/completions", json={})
    assert resp.status_code == 400
    assert len(provider.seen) == 1


def test_post_500_not_retried_but_get_is(provider: FakeProvider) -> None:
    """POST is not retried on 500 (it may have run); GET is."""
    s = pooled_session(backoff_factor=0, backoff_jitter=0)
    provider.enqueue(Fault(status=500))
    assert s.post(f"{provider.base_url}/chat/completions", json={}).status_code == 500
    assert len(provider.seen) == 1
    provider.enqueue(Fault(status=500))
    assert s.get(f"{provider.base_url}/models").status_code == 200
    assert len(provider.seen) == 3


def test_retries_exhausted_returns_last_response(provider: FakeProvider) -> None:
    """After the last retry the final 429 is returned so the caller sees the body."""
    provider.enqueue(*[Fault(status=429, headers={"Retry-After": "0"})] * 3)
    resp = pooled_session(retries=2, backoff_factor=0, backoff_jitter=0).get(f"{provider.base_url}/models")
    assert resp.status_code == 429
    assert len(provider.seen) == 3


def test_hung_server_times_out(provider: FakeProvider) -> None:
    """A server that never answers raises the read timeout, and a POST is not resent."""
    provider.enqueue(Fault(hang=True))
    s = pooled_session(timeout=(1, 0.3))
    with pytest.raises(requests.ReadTimeout):
        s.post(f"{provider.base_url}/chat/completions", json={})
    assert len(provider.seen) == 1


def test_connection_refused_is_retried_then_raised() -> None:
    """Connection errors are retried with backoff and then raise ConnectionError."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    s = pooled_session(retries=2, backoff_factor=0.01, backoff_jitter=0)
    with pytest.raises(requests.ConnectionError):
        s.get(f"http://127.0.0.1:{port}/")


def test_bad_configuration_fails_fast() -> None:
    """Nonsense settings raise ValueError at construction."""
    with pytest.raises(ValueError):
        pooled_session(pool_maxsize=0)
    with pytest.raises(ValueError):
        make_retry(total=-1)


def test_backoff_grows_and_is_capped() -> None:
    """Backoff doubles per consecutive error, jitter adds at most its bound, the cap holds."""
    from urllib3.util.retry import RequestHistory

    r = make_retry(backoff_factor=1, backoff_jitter=0.5, backoff_max=5)
    for n, low in ((2, 2), (3, 4), (4, 5), (6, 5)):
        hist = tuple(RequestHistory("GET", "/", None, 503, None) for _ in range(n))
        value = r.new(history=hist).get_backoff_time()
        assert low <= value <= min(5, low + 0.5)
