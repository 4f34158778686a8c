"""The byte-bounded, single-flight model cache."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routerscope.core import signals
from routerscope.core.cache import ModelCache, get_cache, measure_size
from routerscope.core.errors import ModelTooLargeError
from tests.conftest import Records, Telemetry

MB = 1024 * 1024


def const(value: object) -> Callable[[], object]:
    """A loader that returns ``value``."""
    return lambda: value


def test_single_flight_sixteen_threads() -> None:
    """16 threads missing one key run the loader once and all get the same object."""
    cache = ModelCache(100)
    calls = 0
    barrier = threading.Barrier(16)
    release = threading.Event()

    def loader() -> object:
        nonlocal calls
        calls += 1
        release.wait(5)
        return object()

    got: list[object] = []

    def worker() -> None:
        barrier.wait()
        got.append(cache.get_or_load("m", loader, size_bytes=MB))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    # let the leader finish only after every thread has missed
    while cache.stats().misses < 16:
        threading.Event().wait(0.001)
    release.set()
    for t in threads:
        t.join()
    assert calls == 1
    assert len(got) == 16 and all(g is got[0] for g in got)


def test_loader_error_wakes_waiters_and_caches_nothing() -> None:
    """A raising loader gives every waiter the error; the next call loads again."""
    cache = ModelCache(100)
    gate = threading.Event()
    errors: list[BaseException] = []

    def bad() -> object:
        gate.wait(5)
        raise OSError("disk gone")

    def worker() -> None:
        try:
            cache.get_or_load("m", bad, size_bytes=1)
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    while cache.stats().misses < 4:
        threading.Event().wait(0.001)
    gate.set()
    for t in threads:
        t.join()
    assert len(errors) == 4
    assert "m" not in cache
    assert cache.get_or_load("m", lambda: "ok", size_bytes=1) == "ok"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(1, 40)), min_size=1, max_size=60))
def test_budget_never_exceeded(ops: list[tuple[int, int]]) -> None:
    """Whatever the sizes and order, bytes held never exceed the budget."""
    cache = ModelCache(64 / 1024)  # 64 KiB budget
    for key, kib in ops:
        try:
            cache.get_or_load(key, lambda: object(), size_bytes=kib * 1024)
        except ModelTooLargeError:
            assert kib * 1024 > cache.budget_bytes
        assert cache.bytes_held <= cache.budget_bytes
        assert cache.bytes_held == sum(e.size for e in cache._entries.values())


def test_lru_order_of_eviction() -> None:
    """The least recently used entry goes first."""
    cache = ModelCache(3)
    for k in "abc":
        cache.get_or_load(k, const(k), size_bytes=MB)
    cache.get_or_load("a", lambda: "never")  # touch a
    cache.get_or_load("d", lambda: "d", size_bytes=MB)
    assert cache.keys() == ["c", "a", "d"]
    assert cache.stats().evictions == {signals.EVICT_CAPACITY: 1}


def test_in_use_entry_survives_eviction_pressure() -> None:
    """An entry pinned with use() is never evicted while its caller holds it."""
    evicted: list[object] = []
    cache = ModelCache(2, on_evict=lambda k, v: evicted.append(k))
    with cache.use("pinned", lambda: "P", size_bytes=MB) as model:
        for i in range(10):
            cache.get_or_load(i, const(i), size_bytes=MB)
            assert "pinned" in cache
        assert model == "P"
    assert "pinned" not in evicted
    for i in range(10, 12):
        cache.get_or_load(i, const(i), size_bytes=MB)
    assert "pinned" in evicted  # unpinned, it can go


def test_full_of_pinned_returns_uncached() -> None:
    """With every byte pinned, a new model is returned to its caller but not cached."""
    cache = ModelCache(1)
    with cache.use("a", lambda: "A", size_bytes=MB):
        assert cache.get_or_load("b", lambda: "B", size_bytes=MB) == "B"
        assert "b" not in cache
        assert cache.bytes_held <= cache.budget_bytes


def test_too_large_is_refused() -> None:
    """A model larger than the whole budget raises a clear error and is not cached."""
    cache = ModelCache(1)
    with pytest.raises(ModelTooLargeError, match="max_memory_mb"):
        cache.get_or_load("big", lambda: "x", size_bytes=2 * MB)
    assert "big" not in cache and cache.bytes_held == 0


def test_keep_alive_expires_idle_entries() -> None:
    """Entries idle longer than keep_alive expire and are released."""
    now = [0.0]
    released: list[object] = []
    cache = ModelCache(10, keep_alive=5, clock=lambda: now[0],
                       on_evict=lambda k, v: released.append(k))
    cache.get_or_load("a", lambda: "A", size_bytes=MB)
    now[0] = 3
    cache.get_or_load("b", lambda: "B", size_bytes=MB)
    now[0] = 6
    assert cache.expire() == 1
    assert cache.keys() == ["b"] and released == ["a"]
    assert cache.stats().evictions[signals.EVICT_EXPIRED] == 1


def test_seed_api_round_trip() -> None:
    """get_cache/get_model/add_model/stats behave as the seed documented."""
    cache = get_cache(max_memory_mb=8000)
    assert get_cache() is cache
    model, was_cached = cache.get_model("seed/model")
    assert (model, was_cached) == (None, False)
    assert cache.add_model("seed/model", {"w": 1}, size_mb=18.0)
    model, was_cached = cache.get_model("seed/model")
    assert was_cached and model == {"w": 1}
    s = cache.stats()
    assert s["hits"] >= 1 and s["misses"] >= 1 and 0 < s.hit_rate < 1
    assert s.bytes_held >= 18 * MB and s.budget_bytes == 8000 * MB
    assert cache.remove_model("seed/model")


def test_torch_module_size_matches_hand_count() -> None:
    """A torch module's size is its parameters plus buffers, shared weights counted once."""
    torch = pytest.importorskip("torch", reason="torch extra not installed")
    lin = torch.nn.Linear(100, 50)  # 100*50 + 50 fp32 params
    assert measure_size(lin) == (100 * 50 + 50) * 4
    bn = torch.nn.BatchNorm1d(10)  # weight, bias, running_mean, running_var (fp32) + counter
    assert measure_size(bn) == 4 * 10 * 4 + 8
    half = torch.nn.Linear(64, 64, bias=False).half()
    assert measure_size(half) == 64 * 64 * 2
    tied = torch.nn.Sequential(torch.nn.Embedding(10, 8), torch.nn.Linear(8, 10, bias=False))
    tied[1].weight = tied[0].weight
    assert measure_size(tied) == 10 * 8 * 4


def test_plain_objects_are_estimated() -> None:
    """Without torch, bytes and nbytes are exact and other objects estimated > 0."""
    assert measure_size(b"x" * 1000) == 1000
    assert measure_size({"a": list(range(100))}) > 800


def test_cache_signals(otel: Telemetry, logs: Records) -> None:
    """Hits/misses, evictions, bytes, entries and load time reach the SDK; miss is an event."""
    cache = ModelCache(2, name="sig-test")
    cache.get_or_load("a", lambda: "A", size_bytes=MB)
    cache.get_or_load("a", lambda: "A")
    cache.get_or_load("b", lambda: "B", size_bytes=MB)
    cache.get_or_load("c", lambda: "C", size_bytes=MB)
    mine = {signals.ATTR_CACHE_NAME: "sig-test"}

    def val(metric: signals.Metric, **extra: str) -> float:
        want = {**mine, **extra}
        return float(next(p.value for a, p in otel.points(metric.name) if a == want))

    assert val(signals.CACHE_REQUESTS, **{signals.ATTR_CACHE_RESULT: "hit"}) == 1
    assert val(signals.CACHE_REQUESTS, **{signals.ATTR_CACHE_RESULT: "miss"}) == 3
    assert val(signals.CACHE_EVICTIONS, **{signals.ATTR_CACHE_EVICTION_REASON: "capacity"}) == 1
    assert val(signals.CACHE_MEMORY_USAGE) == 2 * MB
    assert val(signals.CACHE_MEMORY_LIMIT) == 2 * MB
    assert val(signals.CACHE_ENTRIES) == 2
    load = [p for a, p in otel.points(signals.CACHE_LOAD_DURATION.name) if a == mine]
    assert load and load[0].count == 3
    assert logs.events().count(signals.EVENT_CACHE_MISS) == 3
    assert logs.events().count(signals.EVENT_CACHE_HIT) == 1  # debug level is on in `logs`


def test_bad_arguments() -> None:
    """Nonsense budgets fail at construction."""
    with pytest.raises(ValueError):
        ModelCache(0)
    with pytest.raises(ValueError):
        ModelCache(1, keep_alive=-1)


def test_hit_count_is_exact_while_read_concurrently() -> None:
    """Hits counted on the lock-free path stay exact while other threads read the stats."""
    cache = ModelCache(100)
    cache.get_or_load("m", lambda: b"x" * 10)
    threads, per_thread = 8, 2_000
    start = threading.Barrier(threads + 1)
    reads: list[int] = []

    def hit() -> None:
        start.wait(5)
        for _ in range(per_thread):
            cache.get_or_load("m", lambda: b"never")

    workers = [threading.Thread(target=hit) for _ in range(threads)]
    for t in workers:
        t.start()
    start.wait(5)
    while any(t.is_alive() for t in workers):
        reads.append(cache.stats().hits)
    for t in workers:
        t.join()
    assert reads == sorted(reads)  # never goes backwards
    assert cache.stats().hits == threads * per_thread
    assert cache.stats().hits == threads * per_thread  # reading does not change it
