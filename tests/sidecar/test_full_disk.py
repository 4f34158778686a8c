"""A full disk (a real 8 MiB tmpfs) is a state the sidecar survives."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import requests

from routerscope.testing import OTLPReceiver
from tests.integration.conftest import free_port, span_request, wait_until

pytestmark = pytest.mark.integration

SPANS = 1500  # ~130 KB a request: an 8 MiB disk holds about 60


def _ready(url: str) -> int:
    return requests.get(url + "/readyz", timeout=5).status_code


def test_full_disk_loses_nothing_acknowledged_and_recovers(tmpfs: Path, sidecar_factory) -> None:  # type: ignore[no-untyped-def]
    """ENOSPC is a 503 with Retry-After (readyz 503), SIGTERM exits 0, every 200 is delivered,
    writes work again once the upstream drains, and a restart re-ships at most one batch."""
    port = free_port()
    spool = tmpfs / "spool"
    sc = sidecar_factory(f"http://127.0.0.1:{port}", spool=spool)
    acked: list[str] = []
    refused = 0
    for i in range(200):
        r = sc.post("traces", span_request(f"f{i:03d}", SPANS))
        if r.status_code == 200:
            acked.append(f"f{i:03d}")
            continue
        assert r.status_code == 503 and r.headers["Retry-After"].isdigit()
        refused += 1
        if refused == 3:
            break
    assert refused == 3 and len(acked) > 20
    assert _ready(sc.url) == 503 and sc.status()["spool_write_errors"] >= 3
    assert sc.terminate() == 0  # SIGTERM on a full disk
    sc = sidecar_factory(f"http://127.0.0.1:{port}", spool=spool)
    assert sc.status()["dropped"]["corrupt"] == 0  # no partial record was left behind
    assert sc.post("traces", span_request("still-full", SPANS)).status_code == 503
    assert _ready(sc.url) == 503  # until the upstream drains the spool, below
    with OTLPReceiver(port=port) as rx:
        def seen() -> collections.Counter[str]:
            return collections.Counter(s.name for _, s in rx.spans())

        assert rx.wait_for(lambda: set(acked) <= set(seen()), 60)
        # drained: the delivered segments are deleted, the disk has room again
        assert wait_until(lambda: len(list(spool.glob("seg-*.log"))) == 1, 30)
        assert _ready(sc.url) == 200
        assert sc.post("traces", span_request("after-full", SPANS)).status_code == 200
        assert rx.wait_for(lambda: "after-full" in seen(), 30)
        assert wait_until(lambda: sc.status()["queue"]["requests"] == 0)
        assert sc.terminate() == 0
        before = seen()
        sc = sidecar_factory(f"http://127.0.0.1:{port}", spool=spool)
        assert sc.post("traces", span_request("marker")).status_code == 200
        assert rx.wait_for(lambda: "marker" in seen(), 30)  # in order: re-shipping is over
        reshipped = sum(seen().values()) - sum(before.values()) - 1
        assert reshipped == 0
    assert all(n == SPANS for n in before.values())  # each acknowledged request exactly once
