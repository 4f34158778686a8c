"""The demo's workload, run in its own process: ``python -m routerscope.demo.workload``.

Instrumented the way a user instruments a router, by its first line. Prints
one JSON object per line on stdout: progress and phase changes, then a summary.
API calls alternate between the pooled ``requests`` client and the ``openai``
SDK (sync and async) when it is installed; every tenth is streamed. A leak
(1 MB, written, every request: far above the model cache's churn) runs
throughout, for the memory monitor to find with its default settings.
"""

import routerscope.auto  # noqa: F401, I001 - the one import, first, as users write it

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from routerscope.core.lazy import mark_ready
from routerscope.demo.router import MODELS, DemoRouter, openai_available
from routerscope.report.quantiles import nearest_rank

API_MODELS = ("openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct",
              "mistralai/mistral-7b-instruct", "anthropic/claude-3.5-haiku")
PROMPTS = ("summarise this support ticket about a failed payment",
           "write a haiku about connection pools", "translate 'good morning' to French",
           "which model should route a code question?")


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--provider", required=True)
    ap.add_argument("--models-dir", type=Path, required=True)
    ap.add_argument("--requests", type=int, default=240)
    ap.add_argument("--duration", type=float, default=90.0)
    ap.add_argument("--cache-mb", type=float, default=60.0)
    ap.add_argument("--burst", type=int, default=6, help="requests answered 429/503 (retries)")
    args = ap.parse_args(argv)
    rng = random.Random(7)
    deadline = time.monotonic() + args.duration
    router = DemoRouter(args.provider, args.models_dir, cache_mb=args.cache_mb)
    ready_s = mark_ready()
    emit({"event": "ready", "ready_s": ready_s, "torch": router.use_torch})

    from routerscope.instrumentation import memory_monitor

    monitor = memory_monitor()
    router.optimizer.recommend_all(["Llama-3.1-8B", "Phi-3-mini-4k", "Mistral-7B-v0.3"])

    hog: list[bytearray] = []  # the slow leak the monitor should notice
    vias = ("requests", "openai", "requests", "openai-async") if openai_available() \
        else ("requests",)
    names = list(MODELS)
    weights = [0.45, 0.3, 0.15, 0.1]  # repeated models dominate, as in real routers
    api_latency: list[float] = []
    errors: dict[str, int] = {}
    total = args.requests
    burst_at = total // 2
    done = 0
    for i in range(total):
        if time.monotonic() > deadline:
            break
        if i == total // 6 and monitor is not None:  # warmed up: let the leak cross a limit
            rss_mb = monitor.sample_once().rss / 2**20
            leak_left = total - i  # MB still to leak: warn at 35 % of it, alert at 70 %
            monitor.set_rss_limit(rss_mb + 0.7 * leak_left,
                                  warn_fraction=(rss_mb + 0.35 * leak_left) / (rss_mb + 0.7 * leak_left))
        if i == burst_at and args.burst:
            emit({"event": "burst", "at": i})
        if i % 2 == 0:
            model = rng.choices(names, weights)[0]
            router.infer(model, PROMPTS[i % len(PROMPTS)])
        else:
            model = API_MODELS[(i // 2) % len(API_MODELS)]
            via = vias[(i // 2) % len(vias)] if i > burst_at + 12 or i < burst_at else "requests"
            t0 = time.perf_counter()
            try:
                router.ask(model, PROMPTS[i % len(PROMPTS)], stream=(i % 10 == 1),
                           max_tokens=rng.randint(16, 96), via=via)
                api_latency.append(time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001 - the demo reports, it does not stop
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        hog.append(bytearray(b"x") * (1024 * 1024))  # +1 MB a request, written, so resident
        done += 1
        if i % 5 == 0 or i == total - 1:
            emit({"event": "progress", "done": done, "total": total})

    from routerscope.core.pool import pool_stats

    cache = router.cache.stats()
    router.close()

    def q(p: float) -> float | None:
        return nearest_rank(api_latency, p) if api_latency else None

    mon = monitor.get_stats() if monitor is not None else {}
    emit({"event": "summary", "done": done, "ready_s": ready_s, "torch": router.use_torch,
          "cache": {"hits": cache.hits, "misses": cache.misses, "hit_rate": cache.hit_rate,
                    "evictions": cache.evictions, "bytes_held": cache.bytes_held,
                    "budget": cache.budget_bytes},
          "pool_reuse": pool_stats().reuse_ratio("127.0.0.1"),
          "api": {"calls": len(api_latency), "p50_s": q(0.5), "p95_s": q(0.95),
                  "errors": errors, "vias": sorted(set(vias))},
          "memory": {"slope_mb_per_min": mon.get("slope_mb_per_min"),
                     "alerts": mon.get("alerts"), "leak_suspected": mon.get("leak_suspected"),
                     "rss_mb": mon.get("rss_mb")},
          "leaked_mb": len(hog)})
    from routerscope.telemetry import shutdown

    shutdown(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
