"""Model caching: a thread-safe LRU bounded by bytes, with single-flight loads.

::

    cache = ModelCache(max_memory_mb=8000)
    model = cache.get_or_load("llama-8b", load_llama)       # loads once
    with cache.use("llama-8b", load_llama) as model:        # pinned while in use
        model(...)

* Concurrent misses on one key run the loader once; the other callers wait and
  get its result, or its exception (nothing is cached then).
* Sizes are measured for torch modules and tensors (parameters + buffers,
  ``nelement() * element_size()``, shared storage counted once), taken from
  ``size_bytes`` when given, or estimated (``nbytes``, ``len`` of bytes, a
  bounded ``sys.getsizeof`` walk).
* A model larger than the whole budget raises :class:`ModelTooLargeError`.
  Eviction (least recently used first) makes room *before* a new entry is
  admitted, so the budget is never exceeded. Entries pinned by :meth:`use` are
  never evicted; if pinned entries leave no room the new model is returned to
  its caller without being cached (and a warning says so).
* Evicted models are released: ``on_evict(key, model)`` is called and, for a
  torch model on CUDA, ``torch.cuda.empty_cache()``.
* ``keep_alive`` seconds: entries idle for longer expire (as in Ollama).

Hits and misses are counted in plain integers and reported through
observable instruments, so a hit costs a dict look-up under a lock and no
telemetry call.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from routerscope.core import otel, signals
from routerscope.core._log import get_logger
from routerscope.core.errors import ModelTooLargeError

__all__ = ["CacheStats", "ModelCache", "get_cache", "measure_size"]

_log = get_logger("routerscope.cache")
_MB: Final = 1024 * 1024
DEFAULT_MAX_MEMORY_MB: Final = 8000.0


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    hit_rate: float
    entries: int
    bytes_held: int
    budget_bytes: int
    evictions: dict[str, int]

    @property
    def memory_used_mb(self) -> float:
        return self.bytes_held / _MB

    def __getitem__(self, key: str) -> Any:  # the seed returned a dict
        return getattr(self, key)


class _Entry:
    __slots__ = ("last_used", "pins", "size", "value")

    def __init__(self, value: Any, size: int, now: float) -> None:
        self.value = value
        self.size = size
        self.last_used = now
        self.pins = 0


class _Flight:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def _torch_loaded() -> Any:
    return sys.modules.get("torch")


def measure_size(obj: Any) -> int:
    """Bytes held by ``obj``: exact for torch modules/tensors, estimated otherwise."""
    torch = _torch_loaded()
    if torch is not None:
        if isinstance(obj, torch.nn.Module):
            seen: set[tuple[int, int]] = set()
            total = 0
            for t in (*obj.parameters(), *obj.buffers()):
                key = (t.data_ptr(), t.nelement())
                if key in seen:
                    continue
                seen.add(key)
                total += t.nelement() * t.element_size()
            return total
        if isinstance(obj, torch.Tensor):
            return int(obj.nelement() * obj.element_size())
    nbytes = getattr(obj, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(obj, bytes | bytearray | memoryview):
        return len(obj)
    return _estimate(obj)


def _estimate(obj: Any, limit: int = 10_000) -> int:
    """A bounded ``sys.getsizeof`` walk through containers and instance dicts."""
    seen: set[int] = set()
    stack = [obj]
    total = 0
    while stack and len(seen) < limit:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        total += sys.getsizeof(o, 64)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, list | tuple | set | frozenset):
            stack.extend(o)
        elif hasattr(o, "__dict__") and not isinstance(o, type):
            stack.append(vars(o))
    return total


def _is_on_cuda(obj: Any) -> bool:
    torch = _torch_loaded()
    if torch is None:
        return False
    try:
        if isinstance(obj, torch.nn.Module):
            return any(p.is_cuda for p in obj.parameters())
        if isinstance(obj, torch.Tensor):
            return bool(obj.is_cuda)
    except Exception:  # noqa: BLE001
        return False
    return False


_caches: weakref.WeakSet[ModelCache] = weakref.WeakSet()


def _register_observers() -> None:
    """Observe every live cache (idempotent, as ``otel.observe`` is)."""

    def each(fn: Callable[[ModelCache], Iterable[tuple[float, dict[str, Any]]]]) -> Any:
        return lambda: [r for c in list(_caches) for r in fn(c)]

    otel.observe(signals.CACHE_REQUESTS, each(lambda c: [
        (c._hits, {signals.ATTR_CACHE_NAME: c.name, signals.ATTR_CACHE_RESULT: signals.CACHE_HIT}),
        (c._misses, {signals.ATTR_CACHE_NAME: c.name,
                     signals.ATTR_CACHE_RESULT: signals.CACHE_MISS}),
    ]))
    otel.observe(signals.CACHE_EVICTIONS, each(lambda c: [
        (n, {signals.ATTR_CACHE_NAME: c.name, signals.ATTR_CACHE_EVICTION_REASON: reason})
        for reason, n in list(c._evictions.items())
    ]))
    otel.observe(signals.CACHE_MEMORY_USAGE,
                  each(lambda c: [(c._bytes, {signals.ATTR_CACHE_NAME: c.name})]))
    otel.observe(signals.CACHE_MEMORY_LIMIT,
                  each(lambda c: [(c.budget_bytes, {signals.ATTR_CACHE_NAME: c.name})]))
    otel.observe(signals.CACHE_ENTRIES,
                  each(lambda c: [(len(c._entries), {signals.ATTR_CACHE_NAME: c.name})]))


class ModelCache:
    """A byte-bounded LRU of loaded models. See the module docstring."""

    def __init__(
        self,
        max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
        *,
        name: str = "models",
        keep_alive: float | None = None,
        on_evict: Callable[[Hashable, Any], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_memory_mb <= 0:
            raise ValueError(f"max_memory_mb must be > 0, got {max_memory_mb}")
        if keep_alive is not None and keep_alive <= 0:
            raise ValueError(f"keep_alive must be > 0 seconds or None, got {keep_alive}")
        self.name = name
        self.budget_bytes = int(max_memory_mb * _MB)
        self.keep_alive = keep_alive
        self.on_evict = on_evict
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._inflight: dict[Hashable, _Flight] = {}
        self._bytes = 0
        self._hit_count = itertools.count()
        self._hit_reads = 0
        self._hit_read_lock = threading.Lock()
        self._misses = 0
        self._evictions: dict[str, int] = {}
        self._next_sweep = 0.0
        _caches.add(self)
        _register_observers()

    # -- the hot path ----------------------------------------------------------------

    def get_or_load(
        self, key: Hashable, loader: Callable[[], Any], size_bytes: int | None = None
    ) -> Any:
        """The cached model for ``key``, loading it once with ``loader()`` on a miss."""
        if self.keep_alive is None:
            # The hit path takes no lock: OrderedDict.get and move_to_end are single C
            # calls and next() on itertools.count is atomic, so each step is atomic
            # and a hit costs a few dict operations (benchmarks/bench_cache.py).
            entry = self._entries.get(key)
            if entry is not None:
                try:
                    self._entries.move_to_end(key)
                except KeyError:  # evicted between the two calls: still a valid hit
                    pass
                next(self._hit_count)
                if _debug_enabled(logging.DEBUG):
                    _log.debug(signals.EVENT_CACHE_HIT, cache=self.name, key=str(key))
                return entry.value
        return self._acquire(key, loader, size_bytes, pin=False)

    def _acquire(self, key: Hashable, loader: Callable[[], Any] | None,
                 size_bytes: int | None, *, pin: bool) -> Any:
        now = self._clock()
        expired = None
        with self._lock:
            if self.keep_alive is not None and now >= self._next_sweep:
                expired = self._expire_locked(now)
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                entry.last_used = now
                if pin:
                    entry.pins += 1
                next(self._hit_count)
                value = entry.value
                hit = True
            else:
                hit = False
                self._misses += 1
                existing = self._inflight.get(key)
                leader = existing is None and loader is not None
                flight = _Flight() if existing is None else existing
                if leader:
                    self._inflight[key] = flight
        if expired:
            self._release(expired, signals.EVICT_EXPIRED)
        if hit:
            if _debug_enabled(logging.DEBUG):
                _log.debug(signals.EVENT_CACHE_HIT, cache=self.name, key=str(key))
            return value
        if loader is None:
            raise KeyError(key)
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if pin:
                self._pin(key)
            return flight.value
        return self._load(key, loader, size_bytes, flight, pin)

    def _load(self, key: Hashable, loader: Callable[[], Any], size_bytes: int | None,
              flight: _Flight, pin: bool) -> Any:
        _log.info(signals.EVENT_CACHE_MISS, cache=self.name, key=str(key))
        start = time.perf_counter()
        span = otel.tracer().start_span(
            signals.SPAN_CACHE_LOAD, attributes={signals.ATTR_CACHE_NAME: self.name,
                                                 signals.ATTR_MODEL: str(key)})
        try:
            value = loader()
            size = int(size_bytes) if size_bytes is not None else measure_size(value)
            self._admit(key, value, size, pin=pin)
        except BaseException as exc:
            flight.error = exc
            with self._lock:
                self._inflight.pop(key, None)
            flight.done.set()
            _end_span(span, exc)
            raise
        flight.value = value
        with self._lock:
            self._inflight.pop(key, None)
        flight.done.set()
        duration = time.perf_counter() - start
        try:
            otel.instrument(signals.CACHE_LOAD_DURATION).record(
                duration, {signals.ATTR_CACHE_NAME: self.name})
        except Exception:  # noqa: BLE001 - telemetry never breaks a load
            otel.swallowed("cache.load")
        _end_span(span, None)
        return value

    # -- admission and eviction --------------------------------------------------------

    def _admit(self, key: Hashable, value: Any, size: int, *, pin: bool) -> bool:
        if size < 0:
            raise ValueError(f"size of {key!r} must be >= 0, got {size}")
        if size > self.budget_bytes:
            raise ModelTooLargeError(
                f"model {key!r} needs {size / _MB:.1f} MB but cache {self.name!r} has a budget of "
                f"{self.budget_bytes / _MB:.1f} MB: raise max_memory_mb, quantise the model, or "
                "load it without the cache"
            )
        evicted: list[tuple[Hashable, _Entry]] = []
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
                evicted.append((key, old))
                self._count_eviction(signals.EVICT_EXPLICIT)
            need = self._bytes + size - self.budget_bytes
            if need > 0:
                for k in list(self._entries):
                    if need <= 0:
                        break
                    e = self._entries[k]
                    if e.pins:
                        continue
                    del self._entries[k]
                    self._bytes -= e.size
                    need -= e.size
                    evicted.append((k, e))
                    self._count_eviction(signals.EVICT_CAPACITY)
            admitted = need <= 0
            if admitted:
                entry = _Entry(value, size, self._clock())
                if pin:
                    entry.pins = 1
                self._entries[key] = entry
                self._bytes += size
        self._release(evicted, signals.EVICT_CAPACITY)
        if not admitted:
            _log.warning("Cache full of models in use; returning the model uncached",
                         cache=self.name, key=str(key), size_bytes=size)
        return admitted

    def _count_eviction(self, reason: str) -> None:
        self._evictions[reason] = self._evictions.get(reason, 0) + 1

    def _release(self, evicted: list[tuple[Hashable, _Entry]], reason: str) -> None:
        cuda = False
        for k, e in evicted:
            _log.info(signals.EVENT_CACHE_EVICT, cache=self.name, key=str(k), reason=reason,
                      size_bytes=e.size)
            cuda = cuda or _is_on_cuda(e.value)
            if self.on_evict is not None:
                try:
                    self.on_evict(k, e.value)
                except Exception:  # noqa: BLE001 - a bad hook must not break the cache
                    _log.exception("on_evict hook failed", cache=self.name, key=str(k))
            e.value = None
        if cuda:
            torch = _torch_loaded()
            if torch is not None:
                torch.cuda.empty_cache()

    def _expire_locked(self, now: float) -> list[tuple[Hashable, _Entry]]:
        """Unlink idle entries (lock held); the caller releases them after unlocking."""
        assert self.keep_alive is not None
        self._next_sweep = now + min(self.keep_alive / 4, 1.0)
        expired = [(k, e) for k, e in self._entries.items()
                   if not e.pins and now - e.last_used >= self.keep_alive]
        for k, e in expired:
            del self._entries[k]
            self._bytes -= e.size
            self._count_eviction(signals.EVICT_EXPIRED)
        return expired

    def expire(self) -> int:
        """Drop entries idle for longer than ``keep_alive``; returns how many."""
        if self.keep_alive is None:
            return 0
        with self._lock:
            expired = self._expire_locked(self._clock())
        self._release(expired, signals.EVICT_EXPIRED)
        return len(expired)

    # -- pinning -----------------------------------------------------------------------

    def _pin(self, key: Hashable) -> None:
        with self._lock:
            e = self._entries.get(key)
            if e is not None:
                e.pins += 1

    def _unpin(self, key: Hashable, value: Any) -> None:
        with self._lock:
            e = self._entries.get(key)
            if e is not None and e.value is value and e.pins > 0:
                e.pins -= 1

    @contextmanager
    def use(self, key: Hashable, loader: Callable[[], Any] | None = None,
            size_bytes: int | None = None) -> Iterator[Any]:
        """Pin ``key`` (loading it if needed) for the ``with`` block: it is not evicted."""
        value = self._acquire(key, loader, size_bytes, pin=True)
        try:
            yield value
        finally:
            self._unpin(key, value)

    # -- the seed's API ------------------------------------------------------------------

    def get_model(self, model_id: Hashable) -> tuple[Any, bool]:
        """``(model, True)`` when cached, ``(None, False)`` (counted as a miss) otherwise."""
        try:
            return self._acquire(model_id, None, None, pin=False), True
        except KeyError:
            _log.info(signals.EVENT_CACHE_MISS, cache=self.name, key=str(model_id))
            return None, False

    def add_model(self, model_id: Hashable, model: Any, size_mb: float | None = None) -> bool:
        """Cache ``model``; its size is ``size_mb`` or measured. False if no room now."""
        size = int(size_mb * _MB) if size_mb is not None else measure_size(model)
        return self._admit(model_id, model, size, pin=False)

    def remove_model(self, model_id: Hashable) -> bool:
        """Evict one model explicitly; False if it was not cached."""
        with self._lock:
            e = self._entries.pop(model_id, None)
            if e is None:
                return False
            self._bytes -= e.size
            self._count_eviction(signals.EVICT_EXPLICIT)
        self._release([(model_id, e)], signals.EVICT_EXPLICIT)
        return True

    def clear(self) -> None:
        """Evict everything that is not in use."""
        with self._lock:
            gone = [(k, e) for k, e in self._entries.items() if not e.pins]
            for k, e in gone:
                del self._entries[k]
                self._bytes -= e.size
                self._count_eviction(signals.EVICT_EXPLICIT)
        self._release(gone, signals.EVICT_EXPLICIT)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[Hashable]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    @property
    def _hits(self) -> int:
        # The hit path only calls next() on an itertools.count (atomic, no lock). Reading it
        # means calling next() too, so the reads are counted apart and subtracted; they
        # happen under their own lock, which keeps _hit_reads exact.
        with self._hit_read_lock:
            hits = next(self._hit_count) - self._hit_reads
            self._hit_reads += 1
        return hits

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def stats(self) -> CacheStats:
        with self._lock:
            hits = self._hits
            total = hits + self._misses
            return CacheStats(
                hits=hits, misses=self._misses,
                hit_rate=hits / total if total else 0.0,
                entries=len(self._entries), bytes_held=self._bytes,
                budget_bytes=self.budget_bytes, evictions=dict(self._evictions),
            )

    def print_stats(self) -> None:
        s = self.stats()
        print(f"Model cache {self.name!r}: {s.entries} models, "
              f"{s.bytes_held / _MB:.1f}/{s.budget_bytes / _MB:.1f} MB, "
              f"hit rate {s.hit_rate:.1%} ({s.hits} hits, {s.misses} misses), "
              f"evictions {s.evictions or 0}")


def _end_span(span: Any, exc: BaseException | None) -> None:
    try:
        if exc is not None:
            otel.fail_span(span, type(exc).__name__, exc)
        span.end()
    except Exception:  # noqa: BLE001 - telemetry never breaks a load
        otel.swallowed("cache.span")


_std = logging.getLogger("routerscope.cache")
_debug_enabled = _std.isEnabledFor


_global: ModelCache | None = None
_global_lock = threading.Lock()


def get_cache(max_memory_mb: float = DEFAULT_MAX_MEMORY_MB) -> ModelCache:
    """The process-wide cache (created on first call with ``max_memory_mb``)."""
    global _global
    with _global_lock:
        if _global is None:
            _global = ModelCache(max_memory_mb)
        return _global
