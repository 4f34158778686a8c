"""Lazily created OpenTelemetry API objects shared by the core.

Only the API is used here. Until an SDK provider is installed the API hands out
proxies that do nothing; once one is installed they delegate to it, so the core
never needs to know whether telemetry is on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

from routerscope._version import __version__
from routerscope.core.signals import Metric

SCOPE = "routerscope"

_lock = threading.Lock()
_sync: dict[str, Any] = {}
_observed: set[str] = set()
_tracer: trace.Tracer | None = None
_meter: metrics.Meter | None = None


def tracer() -> trace.Tracer:
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer(SCOPE, __version__)
    return _tracer


def meter() -> metrics.Meter:
    global _meter
    if _meter is None:
        _meter = metrics.get_meter(SCOPE, __version__)
    return _meter


def _create(m: Metric) -> Any:
    mt = meter()
    if m.kind == "counter":
        return mt.create_counter(m.name, unit=m.unit, description=m.description)
    if m.kind == "updowncounter":
        return mt.create_up_down_counter(m.name, unit=m.unit, description=m.description)
    if m.kind == "histogram":
        return mt.create_histogram(m.name, unit=m.unit, description=m.description)
    return mt.create_gauge(m.name, unit=m.unit, description=m.description)


def instrument(m: Metric) -> Any:
    """The synchronous instrument for ``m``, created once."""
    inst = _sync.get(m.name)
    if inst is None:
        with _lock:
            inst = _sync.get(m.name)
            if inst is None:
                inst = _sync[m.name] = _create(m)
    return inst


Reading = Iterable[tuple[float, dict[str, Any]]]


def observe(m: Metric, read: Callable[[], Reading]) -> None:
    """Register ``read`` as the callback of an observable instrument for ``m``.

    ``read`` returns (value, attributes) pairs; an exception inside it is
    swallowed (the SDK logs it) so a broken reading never reaches the host.
    Registering the same metric twice is a no-op.
    """
    with _lock:
        if m.name in _observed:
            return
        _observed.add(m.name)

    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v, a) for v, a in read()]

    mt = meter()
    if m.kind == "counter":
        mt.create_observable_counter(m.name, [callback], unit=m.unit, description=m.description)
    elif m.kind == "updowncounter":
        mt.create_observable_up_down_counter(m.name, [callback], unit=m.unit, description=m.description)
    else:
        mt.create_observable_gauge(m.name, [callback], unit=m.unit, description=m.description)
