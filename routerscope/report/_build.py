"""``routerscope report PATH.jsonl``: the dashboards' views as PNG charts, markdown and HTML.

Reads OTLP JSON lines (the sidecar's ``file://`` output or the OpenTelemetry
Collector's file exporter) for one service (``--service``; by default the only
one, else the one with the most GenAI calls). Every number is what the
dashboards' PromQL gives over the whole run, computed the same way:

* start-up per phase: ``routerscope_startup_duration_seconds_sum / _count``;
* cache hit rate: ``sum(routerscope_cache_requests_total{routerscope_cache_result="hit"})
  / sum(routerscope_cache_requests_total)`` (last values);
* memory: ``process_memory_usage_bytes`` over time, ``routerscope_memory_trend_bytes_per_second``,
  ``routerscope_memory_leak_suspected_ratio`` (1 at any point: suspected),
  ``routerscope_memory_alerts_total`` (each increase is an alert);
* API latency and time to first chunk: ``histogram_quantile(q, sum by (le,
  gen_ai_request_model) (…_bucket))`` on the last cumulative values, with
  Prometheus' interpolation (tests compare with VictoriaMetrics).

The start-up timeline places each lazy init (its ``routerscope.lazy_init`` span)
after process start, which the "Router ready" log record gives (its time minus
its ``startup_s``).
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

__all__ = ["Summary", "Telemetry", "load", "markdown", "summarise", "write_report"]

Key = tuple[tuple[str, Any], ...]
QUANTILES = (0.5, 0.95, 0.99)
SERVICE = "service.name"


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


@dataclass(frozen=True)
class SpanRecord:
    service: str | None
    name: str
    start: int  # unix ns
    end: int
    attrs: dict[str, Any]


@dataclass(frozen=True)
class LogRecord:
    service: str | None
    t: int  # unix ns
    body: str
    attrs: dict[str, Any]


@dataclass
class Telemetry:
    points: dict[str, list[Point]] = field(default_factory=lambda: defaultdict(list))
    span_records: list[SpanRecord] = field(default_factory=list)
    log_records: list[LogRecord] = field(default_factory=list)
    lines: int = 0
    bad_lines: int = 0

    @property
    def spans(self) -> int:
        return len(self.span_records)

    @property
    def logs(self) -> int:
        return len(self.log_records)

    def services(self) -> list[str]:
        """Every service.name seen in spans, logs or metrics, sorted."""
        names = {r.service for r in self.span_records} | {r.service for r in self.log_records}
        for pts in self.points.values():
            names |= {p.attrs.get(SERVICE) for p in pts}
        return sorted(str(n) for n in names if n)

    def counts(self, service: str) -> dict[str, int]:
        """Spans, log records and metric points of one service."""
        return {"spans": sum(r.service == service for r in self.span_records),
                "logs": sum(r.service == service for r in self.log_records),
                "points": sum(p.attrs.get(SERVICE) == service
                              for pts in self.points.values() for p in pts)}

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
            if not isinstance(req, dict):
                tel.bad_lines += 1
                continue
            for rs in req.get("resourceSpans", []):
                svc = _attrs(rs.get("resource", {}).get("attributes")).get(SERVICE)
                for ss in rs.get("scopeSpans", []):
                    for sp in ss.get("spans", []):
                        tel.span_records.append(SpanRecord(
                            svc, str(sp.get("name", "")), int(sp.get("startTimeUnixNano", 0)),
                            int(sp.get("endTimeUnixNano", 0)), _attrs(sp.get("attributes"))))
            for rl in req.get("resourceLogs", []):
                svc = _attrs(rl.get("resource", {}).get("attributes")).get(SERVICE)
                for sl in rl.get("scopeLogs", []):
                    for lr in sl.get("logRecords", []):
                        body = _value(lr.get("body", {}))
                        tel.log_records.append(LogRecord(
                            svc, int(lr.get("timeUnixNano") or lr.get("observedTimeUnixNano") or 0),
                            str(body) if body is not None else "", _attrs(lr.get("attributes"))))
            for rm in req.get("resourceMetrics", []):
                res = _attrs(rm.get("resource", {}).get("attributes"))
                for sm in rm.get("scopeMetrics", []):
                    for m in sm.get("metrics", []):
                        _add_metric(tel, m, res)
    return tel


def _add_metric(tel: Telemetry, m: dict[str, Any], res: dict[str, Any]) -> None:
    name = m.get("name", "")
    base = {SERVICE: res.get(SERVICE), "service.instance.id": res.get("service.instance.id")}
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


def genai_calls(tel: Telemetry, service: str) -> int:
    """GenAI operations recorded by ``service`` (the duration histogram's count)."""
    return sum(p.count for p in tel.series_last(s.GEN_AI_CLIENT_OPERATION_DURATION.name,
                                                **{SERVICE: service}))


def pick_service(tel: Telemetry) -> str | None:
    """The only service, else the one with the most GenAI calls (then most data, then name)."""
    names = tel.services()
    if len(names) <= 1:
        return names[0] if names else None
    return max(names, key=lambda n: (genai_calls(tel, n), sum(tel.counts(n).values()),
                                     [-ord(c) for c in n]))


@dataclass
class Summary:
    service: str | None
    others: dict[str, int]  # the other services: name -> GenAI calls
    counts: dict[str, int]  # this service's spans, logs, metric points
    startup: dict[str, float]  # phase -> seconds from process start
    lazy_inits: dict[str, tuple[int, float]]  # owner.attribute -> (count, mean seconds)
    lazy_timeline: list[tuple[str, float, float]]  # (owner.attribute, start s, seconds)
    hits: float
    misses: float
    hit_rate: float | None
    hit_rate_over_time: list[tuple[float, float]]  # (seconds, cumulative hit rate)
    evictions: dict[str, float]
    rss_mb: list[tuple[float, float]]  # (seconds since first sample, MB)
    rss_limit_mb: float | None
    trend_mb_per_min: float | None
    leak_suspected: bool | None  # None: the monitor reported nothing
    leak_first_s: float | None
    alerts: float
    alert_marks: list[tuple[float, str]]  # (seconds, kind)
    latency: dict[str, dict[str, float]]  # model -> p50/p95/p99 (+ "all")
    calls: dict[str, int]
    ttfc: dict[str, dict[str, float]]  # model -> p50/p95/p99 of time to first chunk
    ttfc_calls: dict[str, int]
    tokens: dict[str, float]
    retries: float
    pool_reuse: float | None


def _quantiles(points: list[Point], key: str) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    qs: dict[str, dict[str, float]] = {}
    calls: dict[str, int] = {}
    for model, pts in sorted(by(points, key).items(), key=lambda kv: str(kv[0])):
        cum = cumulative(pts)
        qs[str(model)] = {f"p{int(q * 100)}": histogram_quantile(q, cum) for q in QUANTILES}
        calls[str(model)] = sum(p.count for p in pts)
    if points:
        cum = cumulative(points)
        qs["all"] = {f"p{int(q * 100)}": histogram_quantile(q, cum) for q in QUANTILES}
        calls["all"] = sum(p.count for p in points)
    return qs, calls


def _alert_marks(tel: Telemetry, m: dict[str, Any], t0: int) -> list[tuple[float, str]]:
    """Each increase of an alert counter series, at the time of the point that shows it."""
    marks = []
    series: dict[Key, list[Point]] = defaultdict(list)
    for p in tel.points.get(s.MEMORY_ALERTS.name, []):
        if all(p.attrs.get(k) == v for k, v in m.items()):
            series[tuple(sorted((k, str(v)) for k, v in p.attrs.items()))].append(p)
    for pts in series.values():
        prev = 0.0
        for p in sorted(pts, key=lambda p: p.t):
            v = p.value or 0.0
            for _ in range(int(v - prev)):
                marks.append(((p.t - t0) / 1e9, str(p.attrs.get(s.ATTR_MEMORY_ALERT_KIND))))
            prev = max(prev, v)
    return sorted(marks)


def _lazy_timeline(tel: Telemetry, service: str | None) -> list[tuple[str, float, float]]:
    ready = [r for r in tel.log_records if r.service == service and r.body == s.EVENT_READY
             and isinstance(r.attrs.get("startup_s"), int | float)]
    if not ready:
        return []
    start_ns = ready[0].t - float(ready[0].attrs["startup_s"]) * 1e9
    out = []
    for r in tel.span_records:
        if r.service == service and r.name.startswith(s.SPAN_LAZY_INIT):
            name = f"{r.attrs.get(s.ATTR_LAZY_OWNER)}.{r.attrs.get(s.ATTR_LAZY_ATTRIBUTE)}"
            out.append((name, (r.start - start_ns) / 1e9, (r.end - r.start) / 1e9))
    return sorted(out, key=lambda x: x[1])


def summarise(tel: Telemetry, service: str | None = None) -> Summary:
    """The report's numbers for ``service`` (default: :func:`pick_service`)."""
    if service is None:
        service = pick_service(tel)
    m = {SERVICE: service}
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
    hit_t: dict[int, float] = defaultdict(float)
    tot_t: dict[int, float] = defaultdict(float)
    for p in tel.points.get(s.CACHE_REQUESTS.name, []):
        if p.attrs.get(SERVICE) == service:
            tot_t[p.t] += p.value or 0
            if p.attrs.get(s.ATTR_CACHE_RESULT) == s.CACHE_HIT:
                hit_t[p.t] += p.value or 0
    evictions: dict[str, float] = defaultdict(float)
    for p in tel.series_last(s.CACHE_EVICTIONS.name, **m):
        evictions[str(p.attrs.get(s.ATTR_CACHE_EVICTION_REASON))] += p.value or 0
    rss = tel.over_time(s.PROCESS_MEMORY_USAGE.name, **m)
    t0 = rss[0][0] if rss else min(tot_t, default=0)
    ts = sorted(t for t in tot_t if tot_t[t])
    trend = tel.series_last(s.MEMORY_TREND.name, **m)
    limit = tel.series_last(s.MEMORY_RSS_LIMIT.name, **m)
    leak = tel.over_time(s.MEMORY_LEAK_SUSPECTED.name, **m)
    leak_first = next((t for t, v in leak if v >= 1), None)
    alerts = sum(p.value or 0 for p in tel.series_last(s.MEMORY_ALERTS.name, **m))
    latency, calls = _quantiles(tel.series_last(s.GEN_AI_CLIENT_OPERATION_DURATION.name, **m),
                                s.GEN_AI_REQUEST_MODEL)
    ttfc, ttfc_calls = _quantiles(
        tel.series_last(s.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK.name, **m),
        s.GEN_AI_REQUEST_MODEL)
    tokens: dict[str, float] = defaultdict(float)
    for p in tel.series_last(s.GEN_AI_CLIENT_TOKEN_USAGE.name, **m):
        tokens[str(p.attrs.get(s.GEN_AI_TOKEN_TYPE))] += p.sum
    retries = sum(p.value or 0 for p in tel.series_last(s.POOL_RETRIES.name, **m))
    conns = sum(p.value or 0 for p in tel.series_last(s.POOL_CONNECTIONS.name, **m))
    reqs = sum(p.value or 0 for p in tel.series_last(s.POOL_REQUESTS.name, **m))
    return Summary(
        service=service,
        others={n: genai_calls(tel, n) for n in tel.services() if n != service},
        counts=tel.counts(service) if service else {"spans": 0, "logs": 0, "points": 0},
        startup=startup, lazy_inits=lazy_inits, lazy_timeline=_lazy_timeline(tel, service),
        hits=hits, misses=misses, hit_rate=hits / (hits + misses) if hits + misses else None,
        hit_rate_over_time=[((t - t0) / 1e9, hit_t[t] / tot_t[t]) for t in ts],
        evictions=dict(evictions),
        rss_mb=[((t - t0) / 1e9, v / 2**20) for t, v in rss],
        rss_limit_mb=(limit[0].value or 0) / 2**20 if limit else None,
        trend_mb_per_min=(trend[0].value or 0) * 60 / 2**20 if trend else None,
        leak_suspected=bool(leak_first is not None) if leak else None,
        leak_first_s=(leak_first - t0) / 1e9 if leak_first is not None else None,
        alerts=alerts, alert_marks=_alert_marks(tel, m, t0),
        latency=latency, calls=calls, ttfc=ttfc, ttfc_calls=ttfc_calls, tokens=dict(tokens),
        retries=retries, pool_reuse=1 - conns / reqs if reqs else None,
    )


# --- text ---------------------------------------------------------------------------------

def fmt(v: float | None, unit: str = "", digits: int = 3) -> str:
    """A number for people: ``n/a`` for missing or NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}{unit}"


def _pct(v: float | None) -> str:
    return fmt(v * 100 if v is not None else None, " %", 1)


def _named_counts(d: dict[str, float]) -> str:
    """``{'capacity': 11.0}`` as ``11 (capacity 11)``; ``none`` when empty."""
    total = sum(d.values())
    if not total:
        return "none"
    return f"{total:.0f} (" + ", ".join(f"{k} {v:.0f}" for k, v in sorted(d.items())) + ")"


def leak_text(sm: Summary) -> str:
    if sm.leak_suspected is None:
        return "not reported (memory monitor off)"
    if not sm.leak_suspected:
        return "no"
    return f"yes, from {sm.leak_first_s:.0f} s" if sm.leak_first_s is not None else "yes"


def latency_text(sm: Summary) -> str:
    qs = sm.latency.get("all")
    if not qs:
        return "no GenAI calls recorded"
    return (f"p50 {fmt(qs['p50'])} s, p95 {fmt(qs['p95'])} s, p99 {fmt(qs['p99'])} s over "
            f"{sm.calls['all']} calls (failed calls included; histogram_quantile, as the dashboards)")


def console_rows(sm: Summary) -> list[tuple[str, str]]:
    """The headline rows that ``routerscope demo`` and ``routerscope report`` print."""
    rows = [("model cache hit rate", f"{_pct(sm.hit_rate)} ({sm.hits:.0f} hits, "
                                     f"{sm.misses:.0f} misses, evictions "
                                     f"{_named_counts(sm.evictions)})"),
            ("connection reuse", _pct(sm.pool_reuse)),
            ("API latency", latency_text(sm))]
    if sm.ttfc.get("all"):
        q = sm.ttfc["all"]
        rows.append(("time to first chunk", f"p50 {fmt(q['p50'])} s, p95 {fmt(q['p95'])} s over "
                                            f"{sm.ttfc_calls['all']} streams"))
    last = sm.rss_mb[-1][1] if sm.rss_mb else None
    rows.append(("memory", f"RSS {fmt(last, ' MB', 0)}, trend "
                           f"{fmt(sm.trend_mb_per_min, ' MB/min', 1)}, alerts {sm.alerts:.0f}, "
                           f"leak suspected: {leak_text(sm)}"))
    return rows


def format_rows(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def markdown(sm: Summary, tel: Telemetry, charts: list[str] | None = None) -> str:
    c = sm.counts
    lines = [f"# routerscope report — service `{sm.service}`", "",
             f"{c['spans']} spans, {c['logs']} log records and {c['points']} metric points "
             f"from `{sm.service}` ({tel.lines} OTLP requests read"
             + (f", {tel.bad_lines} unreadable lines skipped" if tel.bad_lines else "") + ")."]
    if sm.others:
        lines += ["", "Other services in the file (choose one with `--service NAME`): "
                  + ", ".join(f"`{n}` ({k} GenAI calls)" for n, k in sorted(sm.others.items()))
                  + "."]
    lines += ["", "## Start-up", "", "| phase | seconds from process start |", "|---|---|"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in sorted(sm.startup.items(), key=lambda kv: kv[1])]
    if sm.lazy_inits:
        starts = {n: t for n, t, _ in sm.lazy_timeline}
        lines += ["", "| lazy init | count | mean seconds | first start, s from process start |",
                  "|---|---|---|---|"]
        lines += [f"| {k} | {n} | {fmt(v, digits=4)} | {fmt(starts.get(k))} |"
                  for k, (n, v) in sorted(sm.lazy_inits.items())]
    lines += ["", "## Model cache", "",
              f"Hit rate **{_pct(sm.hit_rate)}** ({sm.hits:.0f} hits, {sm.misses:.0f} misses); "
              f"evictions {_named_counts(sm.evictions)}.", "", "## Memory", ""]
    if sm.rss_mb:
        lines.append(f"RSS {sm.rss_mb[0][1]:.1f} MB -> {sm.rss_mb[-1][1]:.1f} MB over "
                     f"{sm.rss_mb[-1][0]:.0f} s; trend {fmt(sm.trend_mb_per_min, ' MB/min', 1)}; "
                     f"limit {fmt(sm.rss_limit_mb, ' MB', 0)}; alerts {sm.alerts:.0f}"
                     + (" (" + ", ".join(f"{k} at {t:.0f} s" for t, k in sm.alert_marks) + ")"
                        if sm.alert_marks else "")
                     + f"; leak suspected: **{leak_text(sm)}**.")
    else:
        lines.append("No memory samples (the memory monitor was off).")
    for title, qs, calls in (
            ("API latency (gen_ai.client.operation.duration)", sm.latency, sm.calls),
            ("Time to first chunk (gen_ai.client.operation.time_to_first_chunk)", sm.ttfc,
             sm.ttfc_calls)):
        if not qs:
            continue
        lines += ["", f"## {title}", "", "| model | calls | p50 s | p95 s | p99 s |",
                  "|---|---|---|---|---|"]
        for model, q in qs.items():
            lines.append(f"| {model} | {calls.get(model, 0)} | {fmt(q['p50'])} | "
                         f"{fmt(q['p95'])} | {fmt(q['p99'])} |")
    if not sm.latency:
        lines += ["", "## API latency", "", "No GenAI calls recorded."]
    tokens = ", ".join(f"{k} {v:.0f}" for k, v in sorted(sm.tokens.items())) or "none"
    lines += ["", "Quantiles are Prometheus' `histogram_quantile` over every recorded call, "
                  "failed ones included.",
              "", f"Tokens: {tokens}; retries {sm.retries:.0f}; connection reuse "
                  f"{_pct(sm.pool_reuse)}."]
    if charts:
        lines += ["", "Charts: " + ", ".join(f"`{c}`" for c in charts) + "."]
    return "\n".join(lines) + "\n"


def write_report(path: str | Path, out: str | Path,
                 service: str | None = None) -> tuple[Summary, list[Path]]:
    """Write ``summary.md``, the PNG charts and a self-contained ``report.html`` into ``out``.

    Raises ``ValueError`` when ``service`` is not in the file.
    """
    tel = load(path)
    if service is not None and service not in tel.services():
        raise ValueError(f"no service {service!r} in {path}; it holds: "
                         + (", ".join(tel.services()) or "none"))
    sm = summarise(tel, service)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    charts: list[Path] = []
    note = ""
    try:
        from routerscope.report._charts import draw

        charts = draw(sm, out_dir)
    except ImportError:
        note = "\n(PNG charts need matplotlib: pip install 'routerscope[report]')\n"
    md = markdown(sm, tel, [p.name for p in charts]) + note
    (out_dir / "summary.md").write_text(md, encoding="utf-8")
    from routerscope.report._html import page

    (out_dir / "report.html").write_text(page(sm, tel, charts), encoding="utf-8")
    return sm, [out_dir / "summary.md", out_dir / "report.html", *charts]
