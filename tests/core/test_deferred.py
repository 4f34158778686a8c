"""The deferred metric recorder: records reach the SDK from its worker thread, none stranded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from routerscope.core import otel, signals
from tests._wait import wait_until


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryMetricReader]:
    rd = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[rd])
    monkeypatch.setattr(otel, "_meter", mp.get_meter(otel.SCOPE))
    monkeypatch.setattr(otel, "_sync", {})
    yield rd
    mp.shutdown()


def _count(rd: InMemoryMetricReader, name: str) -> int:
    data = rd.get_metrics_data()
    total = 0
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    total += sum(p.count for p in m.data.data_points)  # type: ignore[union-attr,misc]
    return total


def test_worker_applies_records_from_many_threads_without_drain(reader: InMemoryMetricReader) -> None:
    """Records from concurrent threads all reach the SDK by the worker alone (no drain() call)."""
    d = otel._Deferred()
    m = signals.HTTP_CLIENT_REQUEST_DURATION
    per_thread, threads = 400, 4

    def produce(i: int) -> None:
        attrs: dict[str, Any] = {signals.HTTP_REQUEST_METHOD: "POST", signals.SERVER_PORT: i}
        for k in range(per_thread):
            d.record(m, k / 1000, attrs, None)

    workers = [threading.Thread(target=produce, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert wait_until(lambda: _count(reader, m.name) == per_thread * threads, timeout=10)
    assert not d.queue


def test_idle_worker_wakes_for_a_later_record(reader: InMemoryMetricReader) -> None:
    """After a drained batch the worker sleeps, and a record made later still reaches the SDK."""
    d = otel._Deferred()
    m = signals.HTTP_CLIENT_REQUEST_DURATION
    d.record(m, 0.5, {signals.HTTP_REQUEST_METHOD: "GET"}, None)
    assert wait_until(lambda: _count(reader, m.name) == 1, timeout=10)
    assert wait_until(lambda: not d._wake.is_set(), timeout=10)  # nothing queued: asleep
    d.record(m, 0.7, {signals.HTTP_REQUEST_METHOD: "GET"}, None)
    assert wait_until(lambda: _count(reader, m.name) == 2, timeout=10)
