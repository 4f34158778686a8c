"""Connection reuse is counted for httpx, httpx2 and aiohttp pools; telemetry's own traffic is not."""

from __future__ import annotations

import sys

from routerscope.core import signals
from routerscope.testing import FakeProvider, OTLPReceiver, attrs_of

from .conftest import env_for, run

APP = """
import routerscope.auto
import asyncio, os, aiohttp, httpx, httpx2, requests
from routerscope.telemetry import force_flush
base = os.environ["BASE"]
with httpx.Client() as c:
    for _ in range(5): c.get(base + "/models")
with httpx2.Client() as c:
    for _ in range(5): c.get(base + "/models")
async def main():
    async with aiohttp.ClientSession() as s:
        for _ in range(5):
            async with s.get(base + "/models") as r: await r.read()
asyncio.run(main())
force_flush(10)  # one export before the app's last calls: its connection must not count
with requests.Session() as s:
    for _ in range(5): s.get(base + "/models")
"""


def _latest(rx: OTLPReceiver, metric: str, port: int) -> float:
    vals = [p.as_int or p.as_double for p in rx.data_points(metric)
            if attrs_of(p.attributes).get(signals.SERVER_PORT) == port]
    return max(vals, default=0)


def test_reuse_counted_and_exporter_excluded(receiver: OTLPReceiver) -> None:
    """20 app requests on 4 connections (one per client) count as such; the exporter's port never appears."""
    with FakeProvider() as provider:
        out = run([sys.executable, "-c", APP], env_for(receiver, provider))
        assert out.returncode == 0, out.stderr[-3000:]
        reqs, conns = signals.POOL_REQUESTS.name, signals.POOL_CONNECTIONS.name
        assert receiver.wait_for(lambda: _latest(receiver, reqs, provider.port) >= 20, 10)
        assert _latest(receiver, reqs, provider.port) == 20
        assert _latest(receiver, conns, provider.port) == provider.connections == 4
        assert _latest(receiver, reqs, receiver.port) == 0, "the OTLP exporter's requests are not the app's"
        assert _latest(receiver, conns, receiver.port) == 0
