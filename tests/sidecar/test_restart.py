"""kill -9 while shipping: a restart re-ships at most one batch the upstream already had."""

from __future__ import annotations

import collections

import pytest

from routerscope.sidecar import defaults
from routerscope.testing import OTLPReceiver
from tests.integration.conftest import span_request

pytestmark = pytest.mark.integration


def test_kill9_while_shipping_reships_at_most_one_batch(sidecar_factory) -> None:  # type: ignore[no-untyped-def]
    """Requests ship while more arrive; kill -9; after the restart every acknowledged request
    arrived, and duplicates are at most one batch."""
    with OTLPReceiver() as rx:
        sc = sidecar_factory(rx.url)
        acked = []
        for i in range(150):
            assert sc.post("traces", span_request(f"k{i:03d}")).status_code == 200
            acked.append(f"k{i:03d}")
            if i == 100:
                assert rx.wait_for(lambda: rx.span_count() > 0, 20)  # shipping is under way
        sc.kill9()
        sc = sidecar_factory(rx.url, spool=sc.spool)
        assert sc.post("traces", span_request("marker")).status_code == 200
        assert rx.wait_for(lambda: "marker" in {s.name for _, s in rx.spans()}, 30)
        seen = collections.Counter(s.name for _, s in rx.spans())
    assert set(acked) <= set(seen)
    duplicates = sum(seen.values()) - len(seen)
    assert duplicates <= defaults.BATCH_RECORDS
