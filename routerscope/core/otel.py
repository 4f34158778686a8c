"""The OpenTelemetry API objects the core records through (public: instrumentation uses them too).

Only the API is used here. Until an SDK provider is installed the API hands out
proxies that do nothing; once one is installed they delegate to it, so the core
never needs to know whether telemetry is on.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import get_current
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, Status, StatusCode

from routerscope._version import __version__
from routerscope.core import signals
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
        # the buckets travel as the API's advice: no View needed, under any SDK set-up
        return mt.create_histogram(m.name, unit=m.unit, description=m.description,
                                   explicit_bucket_boundaries_advisory=(
                                       list(m.buckets) if m.buckets is not None else None))
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


# --- work off the main thread, and fork() -----------------------------------------------

FORK_WAIT_S = 5.0
"""How long ``fork()`` waits for background work in progress before it goes ahead."""


class _ForkGate:
    """Background work (a lazy import, an export) runs inside :meth:`hold`; fork() waits for it.

    A ``fork()`` made while another thread imports a module or holds a lock copies
    that state into the child, where the thread that would release it does not
    exist: the child's next import of that module, or its next export, waits
    forever. Any number of threads may hold the gate at once; ``fork()`` closes it
    to new holders, waits until the holders are gone (at most :data:`FORK_WAIT_S`),
    and the child starts with a fresh, open gate.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._holders = 0
        self._forking = False
        self._mine = threading.local()

    @contextmanager
    def hold(self) -> Iterator[None]:
        depth = getattr(self._mine, "depth", 0)
        if depth == 0:  # a thread already inside never waits on a fork it would block
            with self._cond:
                self._cond.wait_for(lambda: not self._forking, timeout=FORK_WAIT_S)
                self._holders += 1
        self._mine.depth = depth + 1
        try:
            yield
        finally:
            self._mine.depth = depth
            if depth == 0:
                with self._cond:
                    self._holders -= 1
                    self._cond.notify_all()

    def before_fork(self) -> None:
        with self._cond:
            self._forking = True
            self._cond.wait_for(lambda: self._holders == 0, timeout=FORK_WAIT_S)

    def after_fork_in_parent(self) -> None:
        with self._cond:
            self._forking = False
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        self.__init__()  # type: ignore[misc]  # the parent's threads are not here


_gate = _ForkGate()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_gate.before_fork, after_in_parent=_gate.after_fork_in_parent,
                        after_in_child=_gate.after_fork_in_child)


def background_work() -> Any:
    """Context manager for work on a background thread that ``fork()`` must not cut in half.

    Wrap lazy imports and exports done off the main thread in it; a ``fork()`` from
    any thread waits for them to finish (at most :data:`FORK_WAIT_S`).
    """
    return _gate.hold()


# --- deferred recording and work -----------------------------------------------------------

MAX_DEFERRED = 65_536
"""Records waiting for the worker; beyond this new records are dropped and counted."""
DEFERRED_FLUSH_INTERVAL = 0.2


class _Deferred:
    """Hands metric records, and work such as ending an LLM call's span, to a worker thread.

    Recording into the SDK costs tens of microseconds per call (attribute
    cleaning and hashing, aggregation look-up). On the router's hot path we
    only append ``(metric, value, attributes, span or context)`` (or ``(None,
    function, arguments, None)`` for :func:`later`) to a deque; a daemon thread
    applies them in order :data:`DEFERRED_FLUSH_INTERVAL` seconds after the
    first item of a batch (it sleeps on an event while nothing is queued, so
    an idle process pays nothing), and :func:`drain` applies them at once
    (``routerscope.telemetry`` calls it before every flush and at shutdown).
    The worker restarts after ``fork()``; the child drops the parent's queue.

    Each record keeps the caller's trace context so the SDK's trace-based
    exemplar filter sees the span the value belongs to: either the span the
    caller names (the context is built on the worker) or the caller's current
    context (one context-variable read on the caller's thread).
    """

    def __init__(self) -> None:
        self.queue: deque[tuple[Any, ...]] = deque()
        self.dropped = 0
        self._thread: threading.Thread | None = None  # None again in a fork()ed child
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._drain_lock = threading.Lock()

    def record(self, m: Metric, value: float, attrs: dict[str, Any], where: Any) -> bool:
        """Queue one item; False (nothing queued) when the queue is full.

        The worker is started before the first item is queued: if it cannot start
        (no thread to be had), this raises and nothing is left queued.
        """
        if self._thread is None:
            self._start()
        q = self.queue
        if len(q) >= MAX_DEFERRED:
            return False
        q.append((m, value, attrs, where))
        # after the append: a worker that cleared the event since then drains this record
        if not self._wake.is_set():
            self._wake.set()
        return True

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name="routerscope-metrics", daemon=True)
            thread.start()
            self._thread = thread  # only once it runs: a failed start is tried again next time

    def _run(self) -> None:
        wake, pause = self._wake, threading.Event()
        while True:
            wake.wait()
            pause.wait(DEFERRED_FLUSH_INTERVAL)  # let the batch fill
            wake.clear()  # before the drain: a record appended after it sets the event again
            self.drain()

    def drain(self) -> None:
        """Apply what is queued, in order, on this thread.

        Metric records going to the SDK are applied inside the fork gate (its locks
        stay consistent in a child); deferred calls (span ends) run outside it, so a
        slow span processor never makes ``fork()`` wait.
        """
        with self._drain_lock:
            q = self.queue
            while q:
                with background_work():
                    item = self._apply_records(q)
                if item is None:
                    return
                try:
                    item[1](*item[2])  # later(fn, *args)
                except Exception:  # noqa: BLE001 - counted by swallowed()
                    swallowed("deferred.call")

    def _apply_records(self, q: deque[tuple[Any, ...]]) -> tuple[Any, ...] | None:
        """Apply queued metric records up to the next deferred call, which is returned (None: empty)."""
        last_span: Any = None
        last_ctx: Any = None
        while q:
            try:
                item = q.popleft()
            except IndexError:
                return None
            m, value, attrs, where = item
            if m is None:
                return item
            sink = _sink
            if sink is not None:
                try:
                    if sink(m, value, attrs, where if isinstance(where, Span) else None
                            if where is None else trace.get_current_span(where)):
                        continue
                except Exception:  # noqa: BLE001 - the SDK way below still records it
                    swallowed("metrics.sink")
            try:
                if isinstance(where, Span):  # one context per span: its records come together
                    if where is not last_span:
                        last_span, last_ctx = where, trace.set_span_in_context(where)
                    ctx = last_ctx
                else:
                    ctx = where
                inst = instrument(m)
                if m.kind in ("counter", "updowncounter"):
                    inst.add(value, attrs, context=ctx)
                else:
                    inst.record(value, attrs, context=ctx)
            except Exception:  # noqa: BLE001 - counted here and by swallowed()
                self.dropped += 1
                swallowed("metrics.deferred")
        return None

    def later(self, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        # (None, fn, args): a call; with the queue full it runs now, on the caller (back-pressure)
        if not self.record(None, fn, args, None):  # type: ignore[arg-type]
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - as on the worker: counted, never raised
                swallowed("deferred.call")

    def _after_fork(self) -> None:
        self.queue = deque()  # the parent applies what it queued; the child would do it twice
        self._thread = None
        self._wake = threading.Event()
        self._drain_lock = threading.Lock()
        self._start_lock = threading.Lock()


_deferred = _Deferred()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_deferred._after_fork)


RecordSink = Callable[[Metric, float, dict[str, Any], Span | None], bool]
_sink: RecordSink | None = None


def set_record_sink(sink: RecordSink | None) -> None:
    """Send deferred records to ``sink`` first (None: the SDK).

    The telemetry layer installs its pre-aggregating histograms here when the
    result is the SDK's by construction (``routerscope.telemetry._fast_metrics``).
    ``sink(metric, value, attributes, span)`` returns False for a metric it does
    not take; those, and any record it raises on, go the SDK way.
    """
    global _sink
    _sink = sink


def record_later(m: Metric, value: float, attrs: dict[str, Any], *,
                 span: Span | None = None) -> None:
    """Record ``value`` on ``m`` from the worker thread (hot paths use this).

    The worker hands it to the record sink (:func:`set_record_sink`) if one takes
    it, else to the SDK. The record keeps its trace context for exemplars:
    ``span`` when given (the operation's own span, which may not be current),
    else the caller's current context, captured here on the caller's thread.
    A full queue drops it (counted); a worker that cannot be started raises.
    """
    if not _deferred.record(m, value, attrs, span if span is not None else get_current()):
        _deferred.dropped += 1


_end_later = False


def set_spans_end_later(on: bool) -> None:
    """Whether LLM call spans end on the worker (routerscope's own TracerProvider, which drains first)."""
    global _end_later
    _end_later = on


def spans_end_later() -> bool:
    return _end_later


def record_now(m: Metric, value: float, attrs: dict[str, Any], span: Span) -> None:
    """Record ``value`` on ``m`` now, with ``span`` for exemplars (work that is already deferred)."""
    sink = _sink
    if sink is not None:
        try:
            if sink(m, value, attrs, span):
                return
        except Exception:  # noqa: BLE001 - the SDK way below still records it
            swallowed("metrics.sink")
    inst = instrument(m)
    with background_work():  # the SDK's locks: a fork() waits for the record
        if m.kind in ("counter", "updowncounter"):
            inst.add(value, attrs, context=trace.set_span_in_context(span))
        else:
            inst.record(value, attrs, context=trace.set_span_in_context(span))


def later(fn: Callable[..., None], *args: Any) -> None:
    """Call ``fn(*args)`` off the caller's thread, in order with the deferred records.

    The work runs on the worker within :data:`DEFERRED_FLUSH_INTERVAL` seconds, or at
    :func:`drain` (every flush and shutdown). An exception in it is swallowed and counted.
    With the queue full it runs now, on the caller's thread; if the worker cannot be
    started this raises (nothing is queued) and the caller does the work itself.
    """
    _deferred.later(fn, args)


def drain() -> None:
    """Apply every deferred record now."""
    _deferred.drain()


def deferred_dropped() -> int:
    return _deferred.dropped


# --- spans and swallowed errors ------------------------------------------------------------


def fail_span(span: Span, error_type: str, exception: BaseException | None = None, *,
              attributes: dict[str, Any] | None = None, timestamp: int | None = None) -> None:
    """Mark ``span`` failed: ``error.type``, ERROR status, and the exception event if there is one.

    ``attributes`` and ``timestamp`` go to the exception event (a stack trace taken
    earlier replaces the one the SDK would format now).
    """
    span.set_status(Status(StatusCode.ERROR, error_type))
    span.set_attribute(signals.ERROR_TYPE, error_type)
    if exception is not None:
        try:  # an exception whose str() raises still leaves the span failed
            span.record_exception(exception, attributes=attributes, timestamp=timestamp)
        except Exception:  # noqa: BLE001 - counted; the status and error.type are set
            swallowed("span.exception_event")


_internal_logger = logging.getLogger("routerscope.telemetry")
_internal_errors: Counter[str] = Counter()


def swallowed(where: str) -> None:
    """Account for an error that telemetry caught so the host never sees it.

    Call it inside the ``except`` block. The first error at each place is logged
    at debug with its traceback (``routerscope.telemetry`` logger); every one is
    counted in ``routerscope.telemetry.internal_errors`` by place. Never raises.
    """
    try:
        _internal_errors[where] += 1
        if _internal_errors[where] == 1:
            _internal_logger.debug("routerscope: internal error in %s (counted, not raised)", where,
                                   exc_info=True)
        observe(signals.TELEMETRY_INTERNAL_ERRORS,
                lambda: [(float(n), {signals.ATTR_WHERE: w}) for w, n in list(_internal_errors.items())])
    except Exception:  # noqa: BLE001 - the error accounting itself must not raise
        return


def internal_errors() -> dict[str, int]:
    """How many internal errors :func:`swallowed` has counted, by place."""
    return dict(_internal_errors)
