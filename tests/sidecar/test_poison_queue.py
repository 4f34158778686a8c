"""No record can block or poison the queue: bisected, isolated, dead-lettered, counted."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest

from routerscope.sidecar.spool import FLAG_GZIP, Spool
from routerscope.testing import OTLPReceiver
from tests.integration.conftest import free_port, span_request, wait_until

from .conftest import RejectingUpstream

pytestmark = pytest.mark.integration


def test_rejected_record_is_bisected_out_and_neighbours_delivered(sidecar_factory) -> None:  # type: ignore[no-untyped-def]
    """A coalesced batch the upstream rejects is split until the bad request stands alone;
    it goes to the dead-letter file with its reason, its 20 neighbours are delivered."""
    port = free_port()
    sc = sidecar_factory(f"http://127.0.0.1:{port}")
    names = [f"n{i:02d}" for i in range(10)] + ["poison"] + [f"n{i:02d}" for i in range(10, 20)]
    for name in names:  # the upstream is down: they queue, and go up coalesced
        assert sc.post("traces", span_request(name)).status_code == 200
    up = RejectingUpstream("poison", port=port)
    try:
        assert wait_until(lambda: len(set(up.names)) == 20, 30)
        assert wait_until(lambda: sc.status()["queue"]["requests"] == 0)
    finally:
        up.stop()
    assert sorted(set(up.names)) == sorted(n for n in names if n != "poison")
    st = sc.status()
    assert st["dropped"]["http_400"] == 1 and st["dead_letter"]["records"] == {"http_400": 1}
    [line] = (sc.spool / "dead-letter.jsonl").read_text().splitlines()
    dead = json.loads(line)
    assert dead["reason"] == "http_400" and dead["signal"] == "traces"
    assert base64.b64decode(dead["body_base64"]) and up.attempts < 20


def test_record_failing_locally_is_isolated_after_bounded_attempts(sidecar_factory,  # type: ignore[no-untyped-def]
                                                                    tmp_path: Path) -> None:
    """A spooled record that cannot be decoded (an old spool's gzip with trailing bytes) is tried
    a bounded number of times, dead-lettered, logged once; the records behind it ship."""
    spool_dir = tmp_path / "spool"
    sp = Spool(spool_dir, max_bytes=10 * 1024 * 1024)
    sp.append("traces", gzip.compress(span_request("before")), FLAG_GZIP)
    sp.append("traces", gzip.compress(span_request("bad")) + b"GARBAGE!", FLAG_GZIP)
    sp.append("traces", gzip.compress(span_request("after")), FLAG_GZIP)
    sp.close()
    with OTLPReceiver() as rx:
        sc = sidecar_factory(rx.url, spool=spool_dir)
        assert rx.wait_for(lambda: {"before", "after"} <= {s.name for _, s in rx.spans()}, 30)
        assert wait_until(lambda: sc.status()["dead_letter"]["records"] == {"local_error": 1})
        assert "bad" not in {s.name for _, s in rx.spans()}
    assert sc.terminate() == 0
    assert sc.output().count("failed locally") == 1 and "Traceback" not in sc.output()
