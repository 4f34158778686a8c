"""Model cache: repeated inference cached vs cold-loaded, and the cost of a hit.

* Repeated inference: a small torch MLP saved to disk; "uncached" loads it with
  ``torch.load`` and runs one forward pass per request (what a router without
  a cache does), "cached" gets it from :class:`ModelCache` and runs the same
  pass. Without torch, the model is a pickled dict of lists.
* Hit path: ``ModelCache.get_or_load`` hits with the OTel SDK installed and
  metrics collected, against a plain function returning ``d[key]`` and against
  ``functools.lru_cache``.
"""

from __future__ import annotations

import functools
import os
import pickle
import tempfile
import time

from benchmarks._common import Row, per_call_us


def _inference_ratio(quick: bool) -> Row:
    from routerscope.core.cache import ModelCache

    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "model.pt")
    if torch is not None:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(512, 2048), torch.nn.ReLU(),
                                    torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                                    torch.nn.Linear(2048, 512))
        torch.save(model.state_dict(), path)
        x = torch.randn(8, 512)

        def load() -> object:
            m = torch.nn.Sequential(torch.nn.Linear(512, 2048), torch.nn.ReLU(),
                                    torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                                    torch.nn.Linear(2048, 512))
            m.load_state_dict(torch.load(path, weights_only=True))
            return m.eval()

        def infer(m: object) -> object:
            with torch.inference_mode():
                return m(x)  # type: ignore[operator]
        what = "torch MLP (6.3M params, 25 MB) from disk + forward pass"
    else:
        with open(path, "wb") as f:
            pickle.dump({"w": list(range(2_000_000))}, f)

        def load() -> object:
            with open(path, "rb") as f:
                return pickle.load(f)

        def infer(m: object) -> object:
            return sum(m["w"][:1000])  # type: ignore[index]
        what = "pickled model (no torch) from disk + work"
    cache = ModelCache(1024)
    n = 10 if quick else 30
    uncached = per_call_us(lambda: infer(load()), n, repeats=3)
    cached = per_call_us(lambda: infer(cache.get_or_load("m", load)), n, repeats=3)
    ratio = uncached / cached
    return Row("cache", f"repeated inference: {what}", "cached", cached / 1000, "uncached",
               uncached / 1000, "ms/request", ratio, claim="5-10x faster",
               verdict="holds" if ratio >= 5 else "does not hold")


def _hit_rows(quick: bool) -> list[Row]:
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from routerscope.core.cache import ModelCache

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    cache = ModelCache(100)
    cache.get_or_load("k", lambda: object(), size_bytes=1)
    d = {"k": object()}

    def plain(key: str) -> object:
        return d[key]

    @functools.lru_cache(maxsize=128)
    def lru(key: str) -> object:
        return object()

    lru("k")
    n = 100_000 if quick else 300_000
    ours = per_call_us(lambda: cache.get_or_load("k", object), n)
    base = per_call_us(lambda: plain("k"), n)
    peer = per_call_us(lambda: lru("k"), n)
    reader.get_metrics_data()  # the hits were counted and are exportable
    return [
        Row("cache", f"cache hit, telemetry on, vs a plain function returning d[key] "
                     f"(a hit costs {ours / base:.1f}x)",
            "ModelCache hit", ours * 1000, "plain d[key]", base * 1000, "ns/hit", base / ours,
            claim="a hit under 5x the plain function",
            verdict="holds" if ours < 5 * base else "does not hold"),
        Row("cache", "cache hit vs functools.lru_cache", "ModelCache hit", ours * 1000,
            "functools.lru_cache", peer * 1000, "ns/hit", peer / ours),
    ]


def run(quick: bool = False) -> list[Row]:
    return [_inference_ratio(quick), *_hit_rows(quick)]


if __name__ == "__main__":
    t = time.perf_counter()
    for r in run(quick=True):
        print(r)
    print(f"{time.perf_counter() - t:.1f} s")
