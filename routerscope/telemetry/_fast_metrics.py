"""Hot-path histograms aggregated in plain Python, exported as the SDK's own points.

Every LLM call records four or five histogram values (GenAI duration, input and
output tokens, HTTP duration per attempt, and time to first chunk / per output
chunk on streams). Through the SDK each ``Histogram.record`` costs ~0.16 M
instructions (the ``Measurement``, the exemplar filter, attribute copying and
hashing, the aggregation look-up, the reservoir): ~0.64 M per call, more than
the whole of plain OpenTelemetry's requests instrumentation. Here one record is
a dict look-up by the attribute items, a ``bisect`` and a few integer updates
under a lock (~1.5 us, ~0.02 M instructions; on the deferred worker for
routerscope's own records, on the caller's thread for the requests
instrumentation's, through :class:`FastMeterProvider`).

At collection the SDK's reader gets ordinary ``HistogramDataPoint`` s in its
``MetricsData``, built the way the SDK builds them (``_ViewInstrumentMatch``,
``_ExplicitBucketHistogramAggregation``, ``AlignedHistogramBucketExemplarReservoir``
in opentelemetry-sdk 1.45):

* temporality per reader: delta drops the attribute sets at every collection and
  starts the next points at that collection; cumulative keeps them, from the
  first record of each set;
* the cardinality limit per reader (default 2000 distinct attribute sets, then
  one ``otel.metric.overflow=true`` point), counted per collection cycle in delta;
* count, sum, min, max, bucket counts with the instrument's advisory bounds,
  keeping ints as ints; attributes cleaned as the SDK's ``Measurement`` cleans
  them (lists become tuples), sets with unhashable values found by value;
* exemplars: the exemplar filter of the MeterProvider (trace-based by default),
  the last value seen per bucket since the previous collection, with its time,
  span and trace ids, and filtered attributes, sorted by bucket.

``tests/telemetry/test_fast_metrics.py`` feeds the same records to this and to the
SDK (both temporalities, the three exemplar filters, overflow, a library's own
scope) on a shared clock and compares the points field by field.

It is used only where the result is the SDK's by construction: a MeterProvider
routerscope built and made global (no views, no meter configurator) with at
least one reader, every reader with the default histogram aggregation.
Otherwise records go to the SDK as before (:func:`routerscope.core.otel.record_later`).
Known differences: the points carry routerscope's collection time (a few
microseconds off the SDK's for its own instruments in the same export) and
follow the SDK's metrics in their scope.
"""

from __future__ import annotations

import math
import os
import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence
from time import time_ns
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span

from routerscope.core.signals import Metric

__all__ = ["FastHistograms", "FastMeterProvider", "attach"]

_OVERFLOW: Final[dict[str, Any]] = {"otel.metric.overflow": True}
_DEFAULT_LIMIT: Final = 2000

ALWAYS_ON, ALWAYS_OFF, TRACE_BASED = "always_on", "always_off", "trace_based"
MAX_KEYS_PER_SET: Final = 8
"""Insertion orders remembered per attribute set (the SDK's key ignores the order)."""


def _canon_value(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return ("sequence", tuple(_canon_value(x) for x in v))
    try:
        hash(v)
    except TypeError:
        return ("unhashable", type(v).__name__, repr(v))
    return (type(v).__name__, v)


def _canon(attrs: dict[str, Any]) -> tuple[Any, ...]:
    """The attribute set as the SDK keys it: order-free, True, 1 and 1.0 apart, lists by value."""
    return tuple(sorted((k, _canon_value(v)) for k, v in attrs.items()))


_OVERFLOW_CANON: Final = _canon(_OVERFLOW)
_PLAIN: Final = frozenset({str, bool, int, float})


def _cleaned(attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` as the SDK's ``Measurement`` keeps them; ``attrs`` itself when that changes nothing."""
    for v in attrs.values():
        if type(v) not in _PLAIN:
            break
    else:
        return attrs
    from opentelemetry.attributes import _clean_attribute_value

    return dict(_clean_attribute_value(attrs, None) or {})


class _Agg:
    """One attribute set of one histogram for one reader (the SDK's aggregation, in short)."""

    __slots__ = ("attrs", "counts", "cum", "ex", "max", "min", "start", "sum")

    def __init__(self, attrs: dict[str, Any], start: int) -> None:
        self.attrs = attrs
        self.start = start
        self.counts: list[int] | None = None  # since the last collection
        self.sum: float = 0
        self.min: float = math.inf
        self.max: float = -math.inf
        self.ex: dict[int, tuple[Any, ...]] | None = None  # bucket -> (value, time, attrs, span id, trace id)
        self.cum: list[Any] | None = None  # cumulative: [counts, sum, min, max]


class _Stream:
    """One histogram as one reader sees it."""

    __slots__ = ("aggs", "bounds", "canon", "delta", "limit", "lock", "metric", "prev_collect")

    def __init__(self, metric: Metric, delta: bool, limit: int) -> None:
        self.metric = metric
        self.bounds: tuple[float, ...] = tuple(metric.buckets or ())
        self.delta = delta
        self.limit = limit
        self.aggs: dict[tuple[Any, ...], _Agg] = {}  # the attrs' items and value types, as recorded
        self.canon: dict[tuple[Any, ...], _Agg] = {}  # the same aggregations, keyed as the SDK keys
        self.prev_collect: int | None = None
        self.lock = threading.Lock()

    def new(self, key: Any, attrs: dict[str, Any], now: int) -> _Agg:
        """Called with the lock held: the aggregation of a set not seen under ``key``.

        A set past the cardinality limit goes to the overflow point and its key is
        not remembered (the SDK keeps nothing per overflowing set either): memory
        stays bounded by the limit whatever the attribute values.
        """
        canon = _canon(attrs)
        agg = self.canon.get(canon)
        if agg is None:
            if len(self.canon) >= self.limit:
                canon = _OVERFLOW_CANON
                agg = self.canon.get(canon)
                if agg is None:
                    agg = self.canon[canon] = _Agg(dict(_OVERFLOW), self.prev_collect or now)
                return agg
            agg = self.canon[canon] = _Agg(dict(attrs), self.prev_collect or now)
        if key is not None:
            self.aggs[key] = agg
        return agg

    def collect(self, now: int, point_cls: Any, exemplar_cls: Any) -> list[Any]:
        with self.lock:
            aggs = list(self.canon.values())
            if self.delta:
                self.aggs, self.canon = {}, {}
                self.prev_collect = now
            points = []
            for agg in aggs:
                counts, sum_, min_, max_ = agg.counts, agg.sum, agg.min, agg.max
                agg.counts, agg.sum, agg.min, agg.max = None, 0, math.inf, -math.inf
                exemplars = self._exemplars(agg, exemplar_cls)
                if self.delta:
                    if counts is None:
                        continue
                    points.append(point_cls(  # a delta aggregation lives one cycle: its start
                        attributes=agg.attrs, exemplars=exemplars, start_time_unix_nano=agg.start,
                        time_unix_nano=now, count=sum(counts), sum=sum_, bucket_counts=tuple(counts),
                        explicit_bounds=self.bounds, min=min_, max=max_))
                    continue
                if counts is None:
                    counts = [0] * (len(self.bounds) + 1)
                cum = agg.cum
                if cum is None:
                    cum = agg.cum = [[0] * (len(self.bounds) + 1), 0, math.inf, -math.inf]
                cum[0] = [a + b for a, b in zip(counts, cum[0], strict=True)]
                cum[1] = sum_ + cum[1]
                cum[2] = min(min_, cum[2])
                cum[3] = max(max_, cum[3])
                points.append(point_cls(
                    attributes=agg.attrs, exemplars=exemplars, start_time_unix_nano=agg.start,
                    time_unix_nano=now, count=sum(cum[0]), sum=cum[1], bucket_counts=tuple(cum[0]),
                    explicit_bounds=self.bounds, min=cum[2], max=cum[3]))
        return points

    @staticmethod
    def _exemplars(agg: _Agg, exemplar_cls: Any) -> list[Any]:
        ex, agg.ex = agg.ex, None
        if not ex:
            return []
        point_attrs = agg.attrs
        out = []
        for _, (value, t, attrs, span_id, trace_id) in sorted(ex.items()):
            filtered = {k: v for k, v in attrs.items() if k not in point_attrs} if attrs else None
            out.append(exemplar_cls(filtered, value, t, span_id, trace_id))
        return out


class FastHistograms:
    """The record sink :func:`routerscope.core.otel.set_record_sink` takes, for a set of readers.

    ``readers``: (delta?, cardinality limit) per reader, in the order
    :meth:`collect` is asked for them by index. ``exemplar_filter``: one of
    ``always_on``, ``always_off``, ``trace_based``.
    """

    def __init__(self, readers: Sequence[tuple[bool, int]], exemplar_filter: str,
                 scope: Any = None) -> None:
        self._readers = list(readers)
        self._filter = {ALWAYS_ON: ALWAYS_ON, ALWAYS_OFF: ALWAYS_OFF}.get(exemplar_filter, TRACE_BASED)
        self.scope = scope  # of the metrics recorded without one (routerscope's own)
        self._tables: dict[Any, dict[str, list[_Stream]]] = {scope: {}}  # scope -> name -> streams
        self._streams = self._tables[scope]
        self._order: list[tuple[Any, str]] = []  # (scope, name) as first recorded (the SDK's order)
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        for table in list(self._tables.values()):
            for streams in list(table.values()):
                for st in streams:
                    st.lock = threading.Lock()

    def _streams_of(self, m: Metric, scope: Any) -> list[_Stream]:
        with self._lock:
            table = self._tables.get(scope)
            if table is None:
                table = self._tables[scope] = {}
            streams = table.get(m.name)
            if streams is None:
                streams = [_Stream(m, delta, limit) for delta, limit in self._readers]
                table[m.name] = streams
                self._order.append((scope, m.name))
        return streams

    def record(self, m: Metric, value: float, attrs: dict[str, Any], span: Span | None,
               scope: Any = None) -> bool:
        """Aggregate one value; False if this sink does not take ``m`` (not a histogram with buckets).

        ``scope``: the instrumentation scope of another library's histogram
        (:class:`FastMeterProvider`); None for routerscope's own.
        """
        table = self._streams if scope is None else self._tables.get(scope, {})
        streams = table.get(m.name)
        if streams is None:
            if m.kind != "histogram" or m.buckets is None:
                return False
            streams = self._streams_of(m, self.scope if scope is None else scope)
        if not (0 <= value < math.inf):  # the SDK drops negative, NaN and infinite values too
            return True
        now = time_ns()
        exemplar: tuple[Any, ...] | None = None
        flt = self._filter
        if flt is not ALWAYS_OFF:
            if span is None:
                span = trace.get_current_span()
            if span is INVALID_SPAN:  # no span: ids None (the SDK's bucket keeps earlier ones)
                if flt is ALWAYS_ON:
                    exemplar = (value, now, attrs, None, None)
            else:
                ctx = span.get_span_context()
                if flt is ALWAYS_ON or ctx.trace_flags & 1:  # sampled
                    exemplar = (value, now, attrs, ctx.span_id, ctx.trace_id)
        # the value types are in the key: True, 1 and 1.0 are different sets, as in the SDK
        key = (tuple(attrs.items()), tuple(map(type, attrs.values())))
        idx = bisect_left(streams[0].bounds, value)
        cleaned: dict[str, Any] | None = None
        for st in streams:
            with st.lock:
                try:
                    agg = st.aggs.get(key)
                except TypeError:  # an unhashable value (a list): found by its canonical key
                    agg = None
                if agg is None:
                    if cleaned is None:  # as the SDK's Measurement cleans them (lists to tuples...)
                        cleaned = _cleaned(attrs)
                        if cleaned is not attrs and exemplar is not None:
                            exemplar = (value, now, cleaned, exemplar[3], exemplar[4])
                    # a key is remembered for attributes the cleaning leaves as they are
                    cacheable = cleaned is attrs and len(st.aggs) < st.limit * MAX_KEYS_PER_SET
                    agg = st.new(key if cacheable else None, cleaned, now)
                counts = agg.counts
                if counts is None:
                    counts = agg.counts = [0] * (len(st.bounds) + 1)
                counts[idx] += 1
                agg.sum += value
                if value < agg.min:
                    agg.min = value
                if value > agg.max:
                    agg.max = value
                if exemplar is not None:
                    ex = agg.ex
                    if ex is None:
                        agg.ex = {idx: exemplar}
                    elif exemplar[3] is None and idx in ex:
                        old = ex[idx]
                        ex[idx] = (value, now, exemplar[2], old[3], old[4])
                    else:
                        ex[idx] = exemplar
        return True

    def collect(self, reader_index: int, now: int | None = None) -> list[tuple[Any, Metric, list[Any]]]:
        """(scope, metric, data points) for one reader, in the order the metrics were first recorded."""
        from opentelemetry.sdk.metrics._internal.exemplar import Exemplar
        from opentelemetry.sdk.metrics.export import HistogramDataPoint

        now = time_ns() if now is None else now
        with self._lock:
            order = list(self._order)
        out = []
        for scope, name in order:
            st = self._tables[scope][name][reader_index]
            points = st.collect(now, HistogramDataPoint, Exemplar)
            if points:
                out.append((scope, st.metric, points))
        return out


def _merge(data: Any, found: list[tuple[Any, Metric, list[Any]]], resource: Any, temporality: Any) -> Any:
    """``data`` (the SDK's MetricsData, or None) with the fast histograms added, each under its scope."""
    from opentelemetry.sdk.metrics.export import (
        Histogram,
        MetricsData,
        ResourceMetrics,
        ScopeMetrics,
    )
    from opentelemetry.sdk.metrics.export import Metric as SdkMetric

    if not found:
        return data
    extra: dict[Any, list[Any]] = {}
    for scope, m, points in found:
        extra.setdefault(scope, []).append(SdkMetric(
            name=m.name, description=m.description, unit=m.unit,
            data=Histogram(data_points=points, aggregation_temporality=temporality)))
    if data is None or not data.resource_metrics:
        rm_resource, rm_schema, scopes, rest = resource, resource.schema_url, [], []
    else:
        rm = data.resource_metrics[0]
        rm_resource, rm_schema, scopes, rest = (rm.resource, rm.schema_url, list(rm.scope_metrics),
                                                list(data.resource_metrics[1:]))
    for scope, metrics in extra.items():
        for i, sm in enumerate(scopes):
            if sm.scope == scope:
                scopes[i] = ScopeMetrics(scope=sm.scope, metrics=[*sm.metrics, *metrics],
                                         schema_url=sm.schema_url)
                break
        else:
            scopes.append(ScopeMetrics(scope=scope, metrics=metrics, schema_url=scope.schema_url))
    return MetricsData(resource_metrics=[
        ResourceMetrics(resource=rm_resource, scope_metrics=scopes, schema_url=rm_schema), *rest])


def _sdk_default_buckets() -> tuple[float, ...]:
    from opentelemetry.sdk.metrics._internal.aggregation import (
        _DEFAULT_EXPLICIT_BUCKET_HISTOGRAM_AGGREGATION_BOUNDARIES,
    )

    return tuple(_DEFAULT_EXPLICIT_BUCKET_HISTOGRAM_AGGREGATION_BOUNDARIES)


class _FastHistogramInstrument:
    """A library's synchronous histogram, recording into :class:`FastHistograms` (the API's ``record``)."""

    def __init__(self, fast: FastHistograms, metric: Metric, scope: Any) -> None:
        self._fast, self._metric, self._scope = fast, metric, scope
        self.name, self.unit, self.description = metric.name, metric.unit, metric.description

    def record(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        try:
            span = trace.get_current_span(context)
            if not self._fast.record(self._metric, amount, dict(attributes or {}), span, self._scope):
                raise TypeError("not taken")
        except Exception:  # noqa: BLE001 - a metric record never breaks the caller
            from routerscope.core import otel

            otel.swallowed("metrics.fast_record")


class _FastMeter:
    """A meter whose histograms are routerscope's pre-aggregated ones; everything else is the SDK's."""

    def __init__(self, real: Any, fast: FastHistograms, scope: Any) -> None:
        self._real, self._fast, self._scope = real, fast, scope
        self._histograms: dict[str, _FastHistogramInstrument] = {}

    def create_histogram(self, name: str, unit: str = "", description: str = "",
                         explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
                         **kwargs: Any) -> Any:
        if kwargs:  # an API this does not know: the SDK's own instrument
            return self._real.create_histogram(name, unit, description,
                                               explicit_bucket_boundaries_advisory, **kwargs)
        inst = self._histograms.get(name)
        if inst is None:
            buckets = (tuple(explicit_bucket_boundaries_advisory)
                       if explicit_bucket_boundaries_advisory is not None else _sdk_default_buckets())
            inst = self._histograms[name] = _FastHistogramInstrument(
                self._fast, Metric(name, unit, "histogram", description, buckets), self._scope)
        return inst

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class FastMeterProvider:
    """Hands a library (the requests instrumentation) meters whose histograms are pre-aggregated.

    Counters, gauges and observable instruments are the SDK meter's own. Used
    for instrumentations routerscope installs itself, on its own MeterProvider.
    """

    def __init__(self, real: Any, fast: FastHistograms) -> None:
        self._real, self._fast = real, fast

    def get_meter(self, name: str, version: str | None = None, schema_url: str | None = None,
                  attributes: Any = None) -> Any:
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        real = self._real.get_meter(name, version, schema_url, attributes)
        return _FastMeter(real, self._fast, InstrumentationScope(name, version, schema_url, attributes))


def attach(meter_provider: Any, readers: Sequence[Any], exemplar_filter: str, scope: Any
           ) -> FastHistograms | None:
    """A :class:`FastHistograms` feeding ``readers`` of ``meter_provider``, or None if it can't be exact.

    Each reader's collection (the SDK's callback) is wrapped so its MetricsData
    also carries the fast histograms, as points of ``scope`` (the meter's
    instrumentation scope). None, and nothing changed, when a reader does not
    have the SDK's default histogram aggregation or its private collection hook.
    """
    from opentelemetry.sdk.metrics._internal.aggregation import DefaultAggregation
    from opentelemetry.sdk.metrics._internal.instrument import _Histogram
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    conf = getattr(meter_provider, "_sdk_config", None)
    if conf is None or list(getattr(conf, "views", ()) or ()) or not readers:
        return None
    try:  # what collection builds points with: an SDK without them keeps its own aggregation
        from opentelemetry.sdk.metrics._internal.exemplar import Exemplar  # noqa: F401
        from opentelemetry.sdk.metrics.export import HistogramDataPoint  # noqa: F401
    except ImportError:
        return None
    shapes = []
    for reader in readers:
        try:
            temporality = reader._instrument_class_temporality[_Histogram]
            aggregation = reader._instrument_class_aggregation[_Histogram]
            limit = reader._instrument_class_cardinality_limit.get(_Histogram, _DEFAULT_LIMIT)
            inner = reader._collect
        except (AttributeError, KeyError):
            return None
        if type(aggregation) is not DefaultAggregation or not callable(inner):
            return None
        shapes.append((temporality, limit, inner))
    fast = FastHistograms([(t is AggregationTemporality.DELTA, lim) for t, lim, _ in shapes],
                          exemplar_filter, scope)
    resource = conf.resource
    for i, (reader, (temporality, _, inner)) in enumerate(zip(readers, shapes, strict=True)):
        reader._collect = _collecting(fast, i, inner, resource, temporality)
    return fast


def _collecting(fast: FastHistograms, index: int, inner: Callable[..., Any], resource: Any,
                temporality: Any) -> Callable[..., Any]:
    def collect(reader: Any, timeout_millis: float = 10_000) -> Any:
        data = inner(reader, timeout_millis=timeout_millis)
        try:
            return _merge(data, fast.collect(index), resource, temporality)
        except Exception:  # noqa: BLE001 - the SDK's own metrics still go out
            from routerscope.core import otel

            otel.swallowed("metrics.fast_collect")
            return data
    return collect
