"""The report's PNG charts (matplotlib, the ``report`` extra), one function each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from routerscope.report._build import Summary, fmt

__all__ = ["HIT_RATE_TARGET", "draw"]

HIT_RATE_TARGET = 0.8  # the dashboards' target line for the model cache hit rate
_Q_COLOURS = {"p50": "#3274d9", "p95": "#e0752d", "p99": "#c4162a"}
_ALERT_COLOURS = {"rss_warning": "#f2a20c", "rss": "#c4162a", "system_percent": "#8f3bb8"}


def draw(sm: Summary, out: Path) -> list[Path]:
    """Draw every chart that has data into ``out``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)

    save(_startup(plt, sm), "startup.png")
    save(_hit_rate(plt, sm), "cache_hit_rate.png")
    save(_memory(plt, sm), "memory.png")
    save(_quantile_bars(plt, sm.latency, sm.calls, "API latency by model "
                        "(gen_ai.client.operation.duration)", "calls"), "api_latency.png")
    if sm.ttfc:
        save(_quantile_bars(plt, sm.ttfc, sm.ttfc_calls, "Time to first chunk by model "
                            "(streamed calls)", "streams"), "time_to_first_chunk.png")
    return made


def _startup(plt: Any, sm: Summary) -> Any:
    """Phases as consecutive bars from process start; each lazy init at its own start."""
    phases = sorted(sm.startup.items(), key=lambda kv: kv[1])
    rows = len(phases) + len(sm.lazy_timeline)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.42 * max(rows, 1)))
    labels: list[str] = []
    y = 0
    prev = 0.0
    for name, end in phases:
        ax.barh(y, max(end - prev, 0.0), left=prev, color="#3274d9", height=0.6)
        ax.text(end, y, f" {end:.2f} s", va="center", fontsize=8)
        labels.append(f"{name} (from {prev:.2f} s)")
        prev = end
        y += 1
    horizon = max([prev, *(t + d for _, t, d in sm.lazy_timeline)], default=1.0) or 1.0
    min_width = horizon / 150  # a 0.1 ms init still shows as a sliver, labelled
    for name, start, dur in sm.lazy_timeline:
        ax.barh(y, max(dur, min_width), left=start, color="#56a64b", height=0.6)
        ax.text(start + max(dur, min_width), y, f" {dur * 1000:.1f} ms", va="center", fontsize=8)
        labels.append(f"lazy {name}")
        y += 1
    if not labels:
        labels = ["(no start-up data)"]
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, horizon * 1.18)
    ax.set_xlabel("seconds from process start")
    ax.set_title("Start-up timeline: phases (blue), lazy inits where they ran (green)")
    return fig


def _hit_rate(plt: Any, sm: Summary) -> Any:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    if sm.hit_rate_over_time:
        ax.plot([t for t, _ in sm.hit_rate_over_time],
                [100 * v for _, v in sm.hit_rate_over_time], color="#56a64b",
                label=f"hit rate (final {fmt(sm.hit_rate * 100 if sm.hit_rate else None, ' %', 1)})")
    ax.axhline(100 * HIT_RATE_TARGET, color="#c4162a", linestyle="--",
               label=f"target {HIT_RATE_TARGET:.0%}")
    ax.set_ylim(0, 105)
    ax.set_xlabel("seconds since the first memory sample")
    ax.set_ylabel("hit rate %")
    ax.legend(loc="lower right")
    ax.set_title("Model cache hit rate (cumulative since start)")
    return fig


def _memory(plt: Any, sm: Summary) -> Any:
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ts = [t for t, _ in sm.rss_mb]
    vs = [v for _, v in sm.rss_mb]
    if sm.rss_mb:
        ax.plot(ts, vs, color="#e0752d", label="RSS")
    if sm.rss_limit_mb:
        ax.axhline(sm.rss_limit_mb, color="#c4162a", linestyle="--",
                   label=f"RSS limit {sm.rss_limit_mb:.0f} MB")
    seen: set[str] = set()
    for t, kind in sm.alert_marks:
        at = min(range(len(ts)), key=lambda i: abs(ts[i] - t)) if ts else None
        yv = vs[at] if at is not None else 0.0
        ax.axvline(t, color=_ALERT_COLOURS.get(kind, "grey"), alpha=0.5, linewidth=1)
        ax.plot([t], [yv], marker="v", markersize=9, color=_ALERT_COLOURS.get(kind, "grey"),
                linestyle="none", label=f"alert: {kind}" if kind not in seen else None)
        seen.add(kind)
    if sm.leak_first_s is not None:
        ax.axvline(sm.leak_first_s, color="black", linestyle=":",
                   label=f"leak suspected from {sm.leak_first_s:.0f} s")
    ax.set_xlabel("seconds since the first memory sample")
    ax.set_ylabel("RSS MB")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"Memory: RSS, trend {fmt(sm.trend_mb_per_min, ' MB/min', 1)}, "
                 f"{sm.alerts:.0f} alerts")
    return fig


def _quantile_bars(plt: Any, qs: dict[str, dict[str, float]], calls: dict[str, int],
                   title: str, unit: str) -> Any:
    """Horizontal grouped bars (full model names), p50/p95/p99, log axis in seconds."""
    models = [k for k in qs if k != "all"] + (["all"] if "all" in qs else [])
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.75 * max(len(models), 1)))
    height = 0.26
    values = [v for m in models for v in qs[m].values() if v == v and v > 0]
    for i, q in enumerate(("p50", "p95", "p99")):
        ys = [n + (i - 1) * height for n in range(len(models))]
        xs = [qs[m][q] if qs[m][q] == qs[m][q] else 0.0 for m in models]
        ax.barh(ys, xs, height, label=q, color=_Q_COLOURS[q])
        for y, x in zip(ys, xs, strict=True):
            if x > 0:
                ax.text(x, y, f" {x:.3g}", va="center", fontsize=7)
    ax.set_yticks(range(len(models)), [f"{m} ({calls.get(m, 0)} {unit})" for m in models]
                  or ["(no data)"])
    ax.invert_yaxis()
    if values:
        from matplotlib.ticker import FormatStrFormatter, NullFormatter

        ax.set_xscale("log")
        ax.set_xlim(min(values) / 1.5, max(values) * 3)
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("seconds (log scale)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    return fig
