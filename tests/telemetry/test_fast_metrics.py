"""The pre-aggregated hot-path histograms give the SDK's own points, field by field."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    Histogram,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, SpanContext, TraceFlags

from routerscope.core import signals
from routerscope.core.signals import Metric
from routerscope.telemetry import _fast_metrics
from routerscope.telemetry._fast_metrics import FastHistograms, attach

SCOPE = InstrumentationScope("routerscope", "9.9", None, None)
METRICS = (signals.GEN_AI_CLIENT_OPERATION_DURATION, signals.GEN_AI_CLIENT_TOKEN_USAGE)
FILTERS: dict[str, Any] = {"always_on": AlwaysOnExemplarFilter, "always_off": AlwaysOffExemplarFilter,
           "trace_based": TraceBasedExemplarFilter}


class Clock:
    """One settable clock for the SDK and the fast path: their timestamps compare exactly."""

    def __init__(self) -> None:
        self.now = 1_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    c = Clock()
    from opentelemetry.sdk.metrics._internal import _view_instrument_match, instrument, metric_reader_storage

    for mod in (instrument, _view_instrument_match, metric_reader_storage, _fast_metrics):
        monkeypatch.setattr(mod, "time_ns", c)
    yield c


def _spans() -> list[Any]:
    tp = TracerProvider()
    tracer = tp.get_tracer("t")
    sampled = [tracer.start_span(f"s{i}") for i in range(3)]
    unsampled = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(0)))
    remote = NonRecordingSpan(SpanContext(0x123, 0x456, is_remote=True, trace_flags=TraceFlags(1)))
    return [*sampled, unsampled, remote, INVALID_SPAN, None]


def _attr_sets() -> list[dict[str, Any]]:
    base = {signals.GEN_AI_OPERATION_NAME: "chat", signals.GEN_AI_PROVIDER_NAME: "openai",
            signals.SERVER_ADDRESS: "api.example.com", signals.SERVER_PORT: 443}
    sets: list[dict[str, Any]] = [dict(base, **{signals.GEN_AI_REQUEST_MODEL: f"m{i}"}) for i in range(7)]
    sets.append(dict(reversed(list(sets[0].items()))))  # the same set, another insertion order
    sets.append({**base, "flag": True})
    sets.append({**base, "flag": 1})  # True and 1 are two sets
    sets.append({**base, "flag": 1.0})  # and 1.0 a third
    sets.append({**base, "tags": ["a", "b"]})  # a list value: no hashable key, found by its value
    sets.append({**base, "tags": ["a", "b"]})
    sets.append({})
    return sets


def _normal(data: MetricsData | None) -> dict[str, Any]:
    """name -> (temporality, points sorted by attributes), with the types of the numbers."""
    out: dict[str, Any] = {}
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope == SCOPE
            for m in sm.metrics:
                pts = []
                for p in m.data.data_points:
                    assert isinstance(p, HistogramDataPoint)
                    exs = [(e.filtered_attributes, e.value, type(e.value).__name__, e.time_unix_nano,
                            e.span_id, e.trace_id) for e in p.exemplars]
                    pts.append((_fast_metrics._canon(dict(p.attributes or {})), dict(p.attributes or {}),
                                p.start_time_unix_nano, p.time_unix_nano, p.count, p.sum,
                                type(p.sum).__name__, tuple(p.bucket_counts), tuple(p.explicit_bounds),
                                p.min, type(p.min).__name__, p.max, exs))
                pts.sort(key=lambda t: repr(t[0]))
                out[m.name] = (m.description, m.unit, m.data.aggregation_temporality, pts)  # type: ignore[union-attr]
    return out


def _pair(temporality: AggregationTemporality, flt: str, limit: int) -> tuple[Any, ...]:
    """The SDK's histograms and the fast ones, on two providers with the same reader set-up."""
    def reader() -> InMemoryMetricReader:
        return InMemoryMetricReader(preferred_temporality={Histogram: temporality},
                                    cardinality_limits={Histogram: limit})

    resource = Resource.create({"service.name": "t"})
    r_sdk, r_fast = reader(), reader()
    mp_sdk = MeterProvider(resource=resource, metric_readers=[r_sdk], exemplar_filter=FILTERS[flt]())
    mp_fast = MeterProvider(resource=resource, metric_readers=[r_fast], exemplar_filter=FILTERS[flt]())
    meter = mp_sdk.get_meter(SCOPE.name, SCOPE.version)
    sdk_hists = {m.name: meter.create_histogram(m.name, unit=m.unit, description=m.description,
                                                explicit_bucket_boundaries_advisory=list(m.buckets or ()))
                 for m in METRICS}
    fast = attach(mp_fast, [r_fast], flt, SCOPE)
    assert fast is not None
    return r_sdk, r_fast, sdk_hists, fast, (mp_sdk, mp_fast)


def _value(m: Metric, rnd: random.Random) -> float:
    if m is signals.GEN_AI_CLIENT_TOKEN_USAGE:
        return rnd.choice([0, 1, 7, 64, 5000, 100_000])  # ints stay ints in sum, min, max, exemplars
    bounds = m.buckets or (1.0,)
    return rnd.choice([rnd.uniform(0, bounds[-1] * 1.5), rnd.choice(bounds), 0.0])


@pytest.mark.parametrize("temporality", [AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE],
                         ids=["delta", "cumulative"])
@pytest.mark.parametrize("flt", sorted(FILTERS))
def test_same_points_as_the_sdk(clock: Clock, temporality: AggregationTemporality, flt: str) -> None:
    """Same records, same collections: every field of every point (and exemplar) equals the SDK's."""
    rnd = random.Random(f"{temporality}{flt}")
    r_sdk, r_fast, sdk_hists, fast, providers = _pair(temporality, flt, limit=6)
    spans, sets = _spans(), _attr_sets()
    compared = 0
    for cycle in range(4):
        # cycle 2 records nothing: delta then has no point, cumulative repeats the last
        for _ in range(0 if cycle == 2 else 150):
            clock.now += rnd.randint(1, 1000)
            m = rnd.choice(METRICS)
            value, attrs, span = _value(m, rnd), rnd.choice(sets), rnd.choice(spans)
            ctx = trace.set_span_in_context(span) if span is not None else None
            sdk_hists[m.name].record(value, attrs, context=ctx)
            assert fast.record(m, value, attrs, span)
        clock.now += 5000
        want, got = _normal(r_sdk.get_metrics_data()), _normal(r_fast.get_metrics_data())
        assert got == want, f"cycle {cycle}"
        compared += sum(len(v[3]) for v in want.values())
    assert compared > 20  # the comparison saw points (and overflow: more sets than the limit)
    for mp in providers:
        mp.shutdown()


def test_overflow_point_is_the_sdks(clock: Clock) -> None:
    """Past the cardinality limit the extra sets share one ``otel.metric.overflow`` point."""
    r_sdk, r_fast, sdk_hists, fast, providers = _pair(AggregationTemporality.CUMULATIVE, "always_off", 3)
    m = signals.GEN_AI_CLIENT_OPERATION_DURATION
    for i in range(10):
        clock.now += 1
        attrs = {"i": i}
        sdk_hists[m.name].record(0.5, attrs)
        fast.record(m, 0.5, attrs, None)
    got = _normal(r_fast.get_metrics_data())
    assert got == _normal(r_sdk.get_metrics_data())
    points = got[m.name][3]
    assert {"otel.metric.overflow": True} in [p[1] for p in points] and len(points) == 4
    for mp in providers:
        mp.shutdown()


def test_dropped_values_as_the_sdk(clock: Clock) -> None:
    """Negative, NaN and infinite values are dropped, as the SDK drops them."""
    fast = FastHistograms([(True, 2000)], "always_on")
    m = signals.GEN_AI_CLIENT_OPERATION_DURATION
    for v in (-1.0, math.nan, math.inf):
        assert fast.record(m, v, {"a": "b"}, None)
    assert fast.collect(0) == []
    fast.record(m, 0.25, {"a": "b"}, None)
    [(_, metric, [point])] = fast.collect(0)
    assert metric is m and point.count == 1 and point.sum == 0.25


def test_not_taken_where_it_could_differ() -> None:
    """Not attached to a provider with views, a non-default histogram aggregation or no reader."""
    r = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[r], views=[View(instrument_name="x")])
    assert attach(mp, [r], "trace_based", SCOPE) is None
    r2 = InMemoryMetricReader(preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation()})
    mp2 = MeterProvider(metric_readers=[r2])
    assert attach(mp2, [r2], "trace_based", SCOPE) is None
    mp3 = MeterProvider(metric_readers=[])
    assert attach(mp3, [], "trace_based", SCOPE) is None
    fast = FastHistograms([(False, 2000)], "trace_based")
    assert not fast.record(signals.POOL_RETRIES, 1, {}, None)  # a counter: the SDK's
    for p in (mp, mp2, mp3):
        p.shutdown()


def test_merged_next_to_the_sdks_own_metrics(clock: Clock) -> None:
    """The reader's MetricsData keeps the SDK's metrics of the same scope and adds the fast ones."""
    r = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[r])
    fast = attach(mp, [r], "trace_based", SCOPE)
    assert fast is not None
    mp.get_meter(SCOPE.name, SCOPE.version).create_counter("c").add(2)
    mp.get_meter("other").create_counter("o").add(1)
    fast.record(signals.GEN_AI_CLIENT_OPERATION_DURATION, 0.3, {"k": "v"}, None)
    data = r.get_metrics_data()
    assert data is not None
    by_scope = {sm.scope.name: [m.name for m in sm.metrics] for sm in data.resource_metrics[0].scope_metrics}
    assert by_scope == {"routerscope": ["c", signals.GEN_AI_CLIENT_OPERATION_DURATION.name], "other": ["o"]}
    mp.shutdown()


@pytest.mark.parametrize("advisory", [[0.005, 0.1, 1.0, 5.0], None], ids=["advised", "sdk-default"])
def test_a_librarys_histogram_through_the_fast_meter_is_the_sdks(clock: Clock,
                                                                 advisory: list[float] | None) -> None:
    """A library's histogram from FastMeterProvider exports what the SDK's meter would, scope and all."""
    from routerscope.telemetry._fast_metrics import FastMeterProvider

    r_sdk = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    r_fast = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    resource = Resource.create({"service.name": "t"})
    mp_sdk = MeterProvider(resource=resource, metric_readers=[r_sdk])
    mp_fast = MeterProvider(resource=resource, metric_readers=[r_fast])
    fast = attach(mp_fast, [r_fast], "trace_based", SCOPE)
    assert fast is not None
    lib = ("opentelemetry.instrumentation.requests", "0.66b2", "https://opentelemetry.io/schemas/1.11.0")
    hists = [mp.get_meter(*lib).create_histogram("http.client.request.duration", unit="s",
                                                 description="Duration of HTTP client requests.",
                                                 explicit_bucket_boundaries_advisory=advisory)
             for mp in (mp_sdk, FastMeterProvider(mp_fast, fast))]
    span = _spans()[0]
    rnd = random.Random(7)
    for i in range(200):
        clock.now += 10
        attrs: dict[str, Any] = {"http.request.method": rnd.choice(["GET", "POST"]),
                                 "server.port": 443 + i % 3}
        ctx = trace.set_span_in_context(span) if i % 2 else None
        value = rnd.uniform(0, 8)
        for h in hists:
            h.record(value, attributes=attrs, context=ctx)
    clock.now += 100
    want, got = r_sdk.get_metrics_data(), r_fast.get_metrics_data()
    assert want is not None and got is not None

    def scopes(data: MetricsData) -> list[Any]:
        return [(sm.scope, sm.schema_url, [(m.name, m.unit, m.description) for m in sm.metrics])
                for sm in data.resource_metrics[0].scope_metrics]
    assert scopes(got) == scopes(want) and scopes(want)[0][0].name == lib[0]
    assert _normal_any(got) == _normal_any(want)
    for mp in (mp_sdk, mp_fast):
        mp.shutdown()


def _normal_any(data: MetricsData) -> dict[str, Any]:
    """Like :func:`_normal`, for any scope."""
    out: dict[str, Any] = {}
    for sm in data.resource_metrics[0].scope_metrics:
        for m in sm.metrics:
            pts = sorted((repr(_fast_metrics._canon(dict(p.attributes or {}))), p.start_time_unix_nano,
                          p.time_unix_nano, p.count, p.sum, tuple(p.bucket_counts),  # type: ignore[union-attr]
                          tuple(p.explicit_bounds), p.min, p.max,  # type: ignore[union-attr]
                          [(e.value, e.time_unix_nano, e.span_id, e.trace_id, e.filtered_attributes)
                           for e in p.exemplars])
                         for p in m.data.data_points)
            out[m.name] = (m.data.aggregation_temporality, pts)  # type: ignore[union-attr]
    return out


def test_memory_stays_bounded_past_the_limit() -> None:
    """Attribute sets past the cardinality limit leave nothing behind per set (as in the SDK)."""
    fast = FastHistograms([(False, 50)], "always_off")
    m = signals.GEN_AI_CLIENT_OPERATION_DURATION
    for i in range(5000):
        fast.record(m, 0.5, {signals.GEN_AI_REQUEST_MODEL: f"m{i}"}, None)
    st = fast._streams[m.name][0]
    assert len(st.canon) == 51 and len(st.aggs) == 50  # 50 sets and the overflow point
    [(_, _, points)] = fast.collect(0)
    assert sum(p.count for p in points) == 5000
