"""Memory monitor overhead: CPU per sample and CPU share at a 1 s interval.

Two measures, side by side: the monitor thread's own CPU time
(``time.thread_time`` around each sample) over a real run at a 1 s interval,
and the cost of one full sample (psutil reads, trend, alerts) timed over many
samples, scaled to 1 Hz.
"""

from __future__ import annotations

import threading
import time

from benchmarks._common import Row


def run(quick: bool = False) -> list[Row]:
    from routerscope.core.memory import MemoryMonitor

    m = MemoryMonitor(interval=0.001, window=300, percent_limit=None)
    for _ in range(300):  # fill the trend window as a long-running monitor would
        m.sample_once()
    n = 300
    t0 = time.thread_time()
    for _ in range(n):
        m.sample_once()
    per_sample = (time.thread_time() - t0) / n
    live = MemoryMonitor(interval=1.0, window=300, percent_limit=None)
    live.start()
    threading.Event().wait(5 if quick else 15)
    stats = live.get_stats()
    live.stop()
    share = per_sample * 100.0  # % of one core at one sample per second
    return [
        Row("memory", "monitor CPU at a 1 s interval (% of one core)", "measured thread CPU",
            stats["monitor_cpu_percent"], "from per-sample cost x 1 Hz", share, "% CPU",
            2.0 / max(stats["monitor_cpu_percent"], 1e-9), claim="under 2% CPU (aim 0.5%)",
            verdict="holds" if max(share, stats["monitor_cpu_percent"]) < 0.5 else
            ("holds (under 2%)" if max(share, stats["monitor_cpu_percent"]) < 2 else
             "does not hold")),
    ]


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
