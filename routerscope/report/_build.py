"""``routerscope report PATH.jsonl``: the dashboards' four views as PNG charts and markdown.

Reads OTLP JSON lines (the sidecar's ``file://`` output or the OpenTelemetry
Collector's file exporter). Every number is what the dashboards' PromQL gives
over the whole run, computed the same way:

* start-up per phase: ``routerscope_startup_duration_seconds_sum / _count``;
* cache hit rate: ``sum(routerscope_cache_requests_total{routerscope_cache_result="hit"})
  / sum(routerscope_cache_requests_total)`` (last values);
* memory: ``process_memory_usage_bytes`` over time, ``routerscope_memory_trend_bytes_per_second``;
* API latency: ``histogram_quantile(q, sum by (le, gen_ai_request_model)
  (gen_ai_client_operation_duration_seconds_bucket))`` on the last cumulative values,
  with Prometheus' interpolation (tests compare with VictoriaMetrics).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routerscope.core import signals as s
from routerscope.report.quantiles import histogram_quantile

__all__ = ["Telemetry", "histogram_quantile", "load", "write_report"]

Key = tuple[tuple[str, Any], ...]


def _value(v: dict[str, Any]) -> Any:
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in v:
            return v[k]
    if "intValue" in v:
        return int(v["intValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    return None


def _attrs(kvs: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    return {kv["key"]: _value(kv.get("value", {})) for kv in kvs or []}


@dataclass
class Point:
    t: int  # unix ns
    attrs: dict[str, Any]
    value: float | None = None  # sum / gauge
    count: int = 0  # histogram
    sum: float = 0.0
    bounds: list[float] = field(default_factory=list)
    buckets: list[int] = field(default_factory=list)


@dataclass
class Telemetry:
    points: dict[str, list[Point]] = field(default_factory=lambda: defaultdict(list))
    spans: int = 0
    logs: int = 0
    lines: int = 0
    bad_lines: int = 0

    def series_last(self, name: str, **match: Any) -> list[Point]:
        """The last point of each series (attribute set) of ``name`` that matches."""
        last: dict[Key, Point] = {}
        for p in self.points.get(name, []):
            if any(p.attrs.get(k) != v for k, v in match.items()):
                continue
            key = tuple(sorted((k, str(v)) for k, v in p.attrs.items()))
            if key not in last or p.t >= last[key].t:
                last[key] = p
        return list(last.values())

    def over_time(self, name: str, **match: Any) -> list[tuple[int, float]]:
        pts = [p for p in self.points.get(name, [])
               if all(p.attrs.get(k) == v for k, v in match.items()) and p.value is not None]
        return sorted((p.t, float(p.value)) for p in pts if p.value is not None)


def load(path: str | Path) -> Telemetry:
    """Parse OTLP JSON lines; a line that is not OTLP JSON is counted and skipped."""
    tel = Telemetry()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            tel.lines += 1
            try:
                req = json.loads(line)
            except ValueError:
                tel.bad_lines += 1
                continue
            for rs in req.get("resourceSpans", []):
                tel.spans += sum(len(ss.get("spans", [])) for ss in rs.get("scopeSpans", []))
            for rl in req.get("resourceLogs", []):
                tel.logs += sum(len(sl.get("logRecords", [])) for sl in rl.get("scopeLogs", []))
            for rm in req.get("resourceMetrics", []):
                res = _attrs(rm.get("resource", {}).get("attributes"))
                for sm in rm.get("scopeMetrics", []):
                    for m in sm.get("metrics", []):
                        _add_metric(tel, m, res)
    return tel


def _add_metric(tel: Telemetry, m: dict[str, Any], res: dict[str, Any]) -> None:
    name = m.get("name", "")
    base = {"service.name": res.get("service.name"),
            "service.instance.id": res.get("service.instance.id")}
    for kind in ("sum", "gauge"):
        for dp in m.get(kind, {}).get("dataPoints", []):
            v = dp.get("asDouble", dp.get("asInt"))
            tel.points[name].append(Point(int(dp.get("timeUnixNano", 0)),
                                          {**base, **_attrs(dp.get("attributes"))},
                                          value=float(v) if v is not None else None))
    for dp in m.get("histogram", {}).get("dataPoints", []):
        tel.points[name].append(Point(
            int(dp.get("timeUnixNano", 0)), {**base, **_attrs(dp.get("attributes"))},
            count=int(dp.get("count", 0)), sum=float(dp.get("sum", 0.0)),
            bounds=[float(b) for b in dp.get("explicitBounds", [])],
            buckets=[int(c) for c in dp.get("bucketCounts", [])]))


def cumulative(points: Iterable[Point]) -> list[tuple[float, float]]:
    """Sum histogram points (same bounds) into Prometheus' cumulative ``le`` buckets."""
    acc: dict[float, float] = defaultdict(float)
    for p in points:
        running = 0
        for bound, c in zip([*p.bounds, math.inf], p.buckets, strict=False):
            running += c
            acc[bound] += running
    return sorted(acc.items())


def by(points: Iterable[Point], label: str) -> dict[Any, list[Point]]:
    out: dict[Any, list[Point]] = defaultdict(list)
    for p in points:
        out[p.attrs.get(label)].append(p)
    return out


@dataclass
class Summary:
    startup: dict[str, float]
    lazy_inits: dict[str, tuple[int, float]]
    hits: float
    misses: float
    hit_rate: float | None
    evictions: dict[str, float]
    rss_mb: list[tuple[float, float]]  # (seconds since first sample, MB)
    trend_mb_per_min: float | None
    alerts: float
    latency: dict[str, dict[str, float]]  # model -> p50/p95/p99 (+ "all")
    calls: dict[str, int]
    tokens: dict[str, float]
    retries: float
    pool_reuse: float | None
    service: str | None


def summarise(tel: Telemetry, service: str | None = None) -> Summary:
    """The report's numbers (see the module docstring for their PromQL)."""
    if service is None:  # the router: the service with GenAI or cache data, not the sidecar
        for name in (s.GEN_AI_CLIENT_OPERATION_DURATION.name, s.CACHE_REQUESTS.name,
                     s.STARTUP_DURATION.name):
            svcs = {p.attrs.get("service.name") for p in tel.points.get(name, [])}
            if svcs:
                service = sorted(x for x in svcs if x)[0] if any(svcs) else None
                break
    m = {"service.name": service} if service else {}
    startup = {str(p.attrs.get(s.ATTR_STARTUP_PHASE)): p.sum / p.count
               for p in tel.series_last(s.STARTUP_DURATION.name, **m) if p.count}
    lazy_inits = {}
    for p in tel.series_last(s.LAZY_INIT_DURATION.name, **m):
        if p.count:
            lazy_inits[f"{p.attrs.get(s.ATTR_LAZY_OWNER)}.{p.attrs.get(s.ATTR_LAZY_ATTRIBUTE)}"] \
                = (p.count, p.sum / p.count)
    hits = sum(p.value or 0 for p in tel.series_last(s.CACHE_REQUESTS.name, **m,
                                                      **{s.ATTR_CACHE_RESULT: s.CACHE_HIT}))
    misses = sum(p.value or 0 for p in tel.series_last(s.CACHE_REQUESTS.name, **m,
                                                        **{s.ATTR_CACHE_RESULT: s.CACHE_MISS}))
    evictions: dict[str, float] = defaultdict(float)
    for p in tel.series_last(s.CACHE_EVICTIONS.name, **m):
        evictions[str(p.attrs.get(s.ATTR_CACHE_EVICTION_REASON))] += p.value or 0
    rss = tel.over_time(s.PROCESS_MEMORY_USAGE.name, **m)
    t0 = rss[0][0] if rss else 0
    trend = tel.series_last(s.MEMORY_TREND.name, **m)
    alerts = sum(p.value or 0 for p in tel.series_last(s.MEMORY_ALERTS.name, **m))
    dur = tel.series_last(s.GEN_AI_CLIENT_OPERATION_DURATION.name, **m)
    latency: dict[str, dict[str, float]] = {}
    calls: dict[str, int] = {}
    groups = by(dur, s.GEN_AI_REQUEST_MODEL)
    for model, pts in sorted(groups.items(), key=lambda kv: str(kv[0])):
        cum = cumulative(pts)
        latency[str(model)] = {f"p{int(q * 100)}": histogram_quantile(q, cum)
                               for q in (0.5, 0.95, 0.99)}
        calls[str(model)] = sum(p.count for p in pts)
    if dur:
        cum = cumulative(dur)
        latency["all"] = {f"p{int(q * 100)}": histogram_quantile(q, cum) for q in (0.5, 0.95, 0.99)}
        calls["all"] = sum(p.count for p in dur)
    tokens: dict[str, float] = defaultdict(float)
    for p in tel.series_last(s.GEN_AI_CLIENT_TOKEN_USAGE.name, **m):
        tokens[str(p.attrs.get(s.GEN_AI_TOKEN_TYPE))] += p.sum
    retries = sum(p.value or 0 for p in tel.series_last(s.POOL_RETRIES.name, **m))
    conns = sum(p.value or 0 for p in tel.series_last(s.POOL_CONNECTIONS.name, **m))
    reqs = sum(p.value or 0 for p in tel.series_last(s.POOL_REQUESTS.name, **m))
    return Summary(
        startup=startup, lazy_inits=lazy_inits, hits=hits, misses=misses,
        hit_rate=hits / (hits + misses) if hits + misses else None, evictions=dict(evictions),
        rss_mb=[((t - t0) / 1e9, v / 2**20) for t, v in rss],
        trend_mb_per_min=(trend[0].value or 0) * 60 / 2**20 if trend else None, alerts=alerts,
        latency=latency, calls=calls, tokens=dict(tokens), retries=retries,
        pool_reuse=1 - conns / reqs if reqs else None, service=service,
    )


def _fmt(v: float | None, unit: str = "", digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}{unit}"


def markdown(sm: Summary, tel: Telemetry) -> str:
    lines = [f"# routerscope report — service `{sm.service}`", "",
             f"{tel.lines} OTLP requests read: {tel.spans} spans, {tel.logs} log records, "
             f"{sum(len(v) for v in tel.points.values())} metric points"
             + (f", {tel.bad_lines} unreadable lines skipped" if tel.bad_lines else "") + ".", "",
             "## Start-up", "", "| phase | seconds from process start |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(sm.startup.items(), key=lambda kv: kv[1])]
    if sm.lazy_inits:
        lines += ["", "| lazy init | count | mean seconds |", "|---|---|---|"]
        lines += [f"| {k} | {n} | {_fmt(v, digits=4)} |" for k, (n, v) in sorted(sm.lazy_inits.items())]
    lines += ["", "## Model cache", "",
              f"hit rate **{_fmt(sm.hit_rate * 100 if sm.hit_rate is not None else None, ' %', 1)}**"
              f" ({sm.hits:.0f} hits, {sm.misses:.0f} misses); evictions "
              f"{dict(sm.evictions) or 'none'}.", "",
              "## Memory", ""]
    if sm.rss_mb:
        lines.append(f"RSS {sm.rss_mb[0][1]:.1f} MB -> {sm.rss_mb[-1][1]:.1f} MB over "
                     f"{sm.rss_mb[-1][0]:.0f} s; trend {_fmt(sm.trend_mb_per_min, ' MB/min', 2)}; "
                     f"alerts {sm.alerts:.0f}.")
    lines += ["", "## API latency (gen_ai.client.operation.duration)", "",
              "| model | calls | p50 s | p95 s | p99 s |", "|---|---|---|---|---|"]
    for model, qs in sm.latency.items():
        lines.append(f"| {model} | {sm.calls.get(model, 0)} | {_fmt(qs['p50'])} | "
                     f"{_fmt(qs['p95'])} | {_fmt(qs['p99'])} |")
    lines += ["", f"Tokens: {dict((k, int(v)) for k, v in sm.tokens.items()) or 'none'}; "
                  f"retries {sm.retries:.0f}; connection reuse "
                  f"{_fmt(sm.pool_reuse * 100 if sm.pool_reuse is not None else None, ' %', 1)}.",
              "", "Charts: `startup.png`, `cache_hit_rate.png`, `memory.png`, `api_latency.png`."]
    return "\n".join(lines) + "\n"


def _charts(sm: Summary, tel: Telemetry, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    items = sorted(sm.startup.items(), key=lambda kv: kv[1])
    items += [(f"lazy {k}", v) for k, (_, v) in sorted(sm.lazy_inits.items())]
    ax.barh([k for k, _ in items] or ["(none)"], [v for _, v in items] or [0], color="#3274d9")
    ax.set_xlabel("seconds")
    ax.set_title("Start-up: phases from process start, lazy inits")
    save(fig, "startup.png")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    hits = {p.t: 0.0 for p in tel.points.get(s.CACHE_REQUESTS.name, [])}
    tot = dict(hits)
    for p in tel.points.get(s.CACHE_REQUESTS.name, []):
        if sm.service and p.attrs.get("service.name") != sm.service:
            continue
        tot[p.t] += p.value or 0
        if p.attrs.get(s.ATTR_CACHE_RESULT) == s.CACHE_HIT:
            hits[p.t] += p.value or 0
    ts = sorted(t for t in tot if tot[t])
    if ts:
        ax.plot([(t - ts[0]) / 1e9 for t in ts], [100 * hits[t] / tot[t] for t in ts],
                color="#56a64b")
    ax.set_ylim(0, 100)
    ax.set_xlabel("seconds")
    ax.set_ylabel("hit rate %")
    ax.set_title("Model cache hit rate (cumulative)")
    save(fig, "cache_hit_rate.png")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    if sm.rss_mb:
        ax.plot([t for t, _ in sm.rss_mb], [v for _, v in sm.rss_mb], color="#e0752d")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS MB")
    ax.set_title(f"Memory: RSS, trend {_fmt(sm.trend_mb_per_min, ' MB/min', 2)}, "
                 f"{sm.alerts:.0f} alerts")
    save(fig, "memory.png")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    models = [k for k in sm.latency if k != "all"] + (["all"] if "all" in sm.latency else [])
    width = 0.25
    for i, qname in enumerate(("p50", "p95", "p99")):
        ax.bar([x + i * width for x in range(len(models))],
               [sm.latency[mdl][qname] for mdl in models], width, label=qname)
    ax.set_xticks([x + width for x in range(len(models))])
    ax.set_xticklabels([m.split("/")[-1][:18] for m in models], rotation=20, ha="right")
    ax.set_ylabel("seconds")
    ax.legend()
    ax.set_title("API latency percentiles by model")
    save(fig, "api_latency.png")
    return made


def write_report(path: str | Path, out: str | Path) -> tuple[Summary, list[Path]]:
    """Write ``summary.md`` and the four PNG charts into ``out``."""
    tel = load(path)
    sm = summarise(tel)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.md").write_text(markdown(sm, tel), encoding="utf-8")
    made = [out_dir / "summary.md"]
    try:
        made += _charts(sm, tel, out_dir)
    except ImportError:
        (out_dir / "summary.md").open("a").write(
            "\n(PNG charts need matplotlib: pip install 'routerscope[report]')\n")
    return sm, made
