"""Lazy loading: build heavy managers on first use, and measure start-up.

``lazy`` replaces the seed's ``@property`` lazy managers::

    class Router:
        @lazy
        def embeddings(self) -> EmbeddingManager:
            return EmbeddingManager()   # runs once, on first access

The first access builds the value under a per-instance lock (eight racing
threads build it once), stores it in the instance ``__dict__`` and from then
on Python finds it there before the descriptor: reading it costs what a plain
attribute costs. An exception is not cached: the next access tries again.
``reset(obj, "embeddings")`` forgets the value.

Each build emits a ``routerscope.lazy_init`` span, the
``routerscope.lazy.init.duration`` histogram (owner class, attribute) and the
seed's "Initializing X (lazy load)" event. :func:`mark_ready` records the time
from process start to ready.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from routerscope.core import otel, signals
from routerscope.core._log import get_logger

__all__ = [
    "is_initialized",
    "lazy",
    "mark_ready",
    "process_start_time",
    "record_startup_phase",
    "reset",
]

T = TypeVar("T")
_log = get_logger("routerscope.lazy")


class lazy(Generic[T]):  # noqa: N801 - used as a decorator, like property
    """A thread-safe, resettable, instrumented cached attribute."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.owner_name = ""
        self.__doc__ = func.__doc__
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.owner_name = owner.__qualname__

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> lazy[T]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> T | lazy[T]:
        if instance is None:
            return self
        try:
            store = instance.__dict__
        except AttributeError:
            raise TypeError(
                f"@lazy needs an instance __dict__; {type(instance).__qualname__} uses "
                f"__slots__ without '__dict__': add '__dict__' to its slots"
            ) from None
        if self.name in store:  # another thread finished while we were getting here
            return store[self.name]  # type: ignore[no-any-return]
        key = id(instance)
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
        try:
            with lock:
                if self.name in store:
                    return store[self.name]  # type: ignore[no-any-return]
                value = self._build(instance)
                store[self.name] = value
                return value
        finally:
            with self._guard:
                if self.name in store:
                    self._locks.pop(key, None)

    def _build(self, instance: object) -> T:
        owner = self.owner_name or type(instance).__qualname__
        attrs = {signals.ATTR_LAZY_OWNER: owner, signals.ATTR_LAZY_ATTRIBUTE: self.name}
        _log.info(
            signals.EVENT_LAZY_INIT.format(name=self.name),
            **{"lazy.owner": owner, "lazy.attribute": self.name},
        )
        span = otel.tracer().start_span(f"{signals.SPAN_LAZY_INIT} {owner}.{self.name}", attributes=attrs)
        start = time.perf_counter()
        failed: BaseException | None = None
        try:
            return self.func(instance)
        except BaseException as exc:
            failed = exc
            raise
        finally:
            duration = time.perf_counter() - start
            try:
                if failed is not None:
                    otel.fail_span(span, type(failed).__name__, failed)
                    attrs = {**attrs, signals.ERROR_TYPE: type(failed).__name__}
                otel.instrument(signals.LAZY_INIT_DURATION).record(duration, attrs)
                span.end()
            except Exception:  # noqa: BLE001 - telemetry never breaks the build
                otel.swallowed("lazy.init")


def _descriptor(obj: object, name: str) -> lazy[Any]:
    desc = getattr(type(obj), name, None)
    if not isinstance(desc, lazy):
        raise AttributeError(f"{type(obj).__qualname__}.{name} is not a @lazy attribute")
    return desc


def reset(obj: object, name: str) -> None:
    """Forget the built value of ``obj.name``; the next access builds it again."""
    _descriptor(obj, name)
    obj.__dict__.pop(name, None)


def is_initialized(obj: object, name: str) -> bool:
    """Whether ``obj.name`` has been built (without building it)."""
    _descriptor(obj, name)
    return name in obj.__dict__


# --- start-up --------------------------------------------------------------------------

_start_time: float | None = None
_phases_recorded: set[str] = set()
_phase_lock = threading.Lock()


def _proc_start_time() -> float | None:
    """Linux: start time from /proc (what psutil reads), without importing psutil."""
    try:
        import os

        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        # fields after the parenthesised command name; starttime is field 22
        ticks = int(stat.rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration, AttributeError):
        return None


def process_start_time() -> float:
    """This process' start as a Unix timestamp (as psutil's create_time gives it)."""
    global _start_time
    if _start_time is None:
        start = _proc_start_time()
        if start is None:
            import psutil

            start = psutil.Process().create_time()
        _start_time = start
    return _start_time


def record_startup_phase(phase: str, *, once: bool = True, at: float | None = None) -> float:
    """Record seconds from process start to ``phase`` (now, or the Unix time ``at``).

    With ``once`` (the default) only the first call per phase is recorded;
    later calls return the seconds elapsed without emitting anything.
    """
    elapsed = max(0.0, (time.time() if at is None else at) - process_start_time())
    with _phase_lock:
        if once and phase in _phases_recorded:
            return elapsed
        _phases_recorded.add(phase)
    try:
        otel.instrument(signals.STARTUP_DURATION).record(elapsed, {signals.ATTR_STARTUP_PHASE: phase})
        if phase == signals.PHASE_READY:
            _log.info(signals.EVENT_READY, startup_s=round(elapsed, 4))
        else:
            _log.debug("Start-up phase", phase=phase, startup_s=round(elapsed, 4))
    except Exception:  # noqa: BLE001 - telemetry never breaks start-up
        otel.swallowed("lazy.startup_phase")
    return elapsed


def mark_ready() -> float:
    """Mark the router ready: record and return seconds since the process started."""
    return record_startup_phase(signals.PHASE_READY)
