"""Generate the Grafana dashboards from Python (grafana-foundation-sdk==0.0.21).

    python -m dashboards.generate           # write dashboards/*.json
    python -m dashboards.generate --check   # exit 1 if the committed JSON is stale

Every metric name comes from ``routerscope.core.signals`` (through
``Metric.prometheus_name()``), so renaming a metric breaks this build, not a
dashboard. Queries select one service with the ``service_name`` variable and
use ``$__rate_interval``; every panel has a unit and a description.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routerscope.core import signals as s

OUT = Path(__file__).resolve().parent
PROM = {"type": "prometheus", "uid": "prometheus"}
SEL = 'service_name="$service_name"'
RI = "$__rate_interval"


def n(m: s.Metric, suffix: str = "") -> str:
    """A metric's Prometheus name (with _bucket/_sum/_count when given)."""
    return m.prometheus_name() + suffix


def label(attr: str) -> str:
    return attr.replace(".", "_")


@dataclass
class P:
    """One panel: title, kind (timeseries | stat), queries (expr, legend), unit, description."""

    title: str
    queries: list[tuple[str, str]]
    unit: str
    description: str
    kind: str = "timeseries"
    width: int = 8
    thresholds: list[tuple[float | None, str]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (title, url)
    min: float | None = None
    max: float | None = None


def q(expr: str, legend: str = "") -> tuple[str, str]:
    return expr, legend


def _tempo_link(filter_expr: str) -> tuple[str, str]:
    left = json.dumps({"datasource": "tempo", "queries": [{"refId": "A", "queryType": "traceql",
                                                           "query": filter_expr}],
                       "range": {"from": "${__from}", "to": "${__to}"}})
    return "Traces in Tempo", "/explore?left=" + left


def _loki_link(expr: str) -> tuple[str, str]:
    left = json.dumps({"datasource": "loki", "queries": [{"refId": "A", "expr": expr}],
                       "range": {"from": "${__from}", "to": "${__to}"}})
    return "Logs in Loki", "/explore?left=" + left


GOOD_HIGH = [(None, "red"), (0.5, "orange"), (0.8, "green")]


def rows() -> list[tuple[str, list[P]]]:
    dur = s.GEN_AI_CLIENT_OPERATION_DURATION
    model, provider = label(s.GEN_AI_REQUEST_MODEL), label(s.GEN_AI_PROVIDER_NAME)
    trace_link = _tempo_link('{ resource.service.name = "$service_name" && '
                             'span.gen_ai.request.model = "${__field.labels.gen_ai_request_model}" }')
    lat = [q(f"histogram_quantile({p}, sum by (le, {model}, {provider}) "
             f"(rate({n(dur, '_bucket')}{{{SEL}}}[{RI}])))", f"p{int(p * 100)} {{{{{model}}}}}")
           for p in (0.5, 0.95, 0.99)]
    ttfc = s.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK
    first_chunk = [q(f"histogram_quantile({p}, sum by (le, {model}, {provider}) "
                     f"(rate({n(ttfc, '_bucket')}{{{SEL}}}[{RI}])))",
                     f"p{int(p * 100)} {{{{{model}}}}}") for p in (0.5, 0.95)]
    phase = label(s.ATTR_STARTUP_PHASE)
    st = s.STARTUP_DURATION
    lazy_owner, lazy_attr = label(s.ATTR_LAZY_OWNER), label(s.ATTR_LAZY_ATTRIBUTE)
    cache_res = label(s.ATTR_CACHE_RESULT)
    cr = s.CACHE_REQUESTS
    return [
        ("Start-up", [
            P("Process start-up time (last run)", [q(
                f"max by ({phase}) ({n(st, '_sum')}{{{SEL}}} / {n(st, '_count')}{{{SEL}}})",
                f"{{{{{phase}}}}}")], "s", "Seconds from process start to each start-up phase "
              "(import of routerscope.auto, first outgoing request, mark_ready()).", kind="stat",
              thresholds=[(None, "green"), (5, "orange"), (15, "red")]),
            P("Start-up time trend", [q(
                f"avg by ({phase}) ({n(st, '_sum')}{{{SEL}}} / {n(st, '_count')}{{{SEL}}})",
                f"{{{{{phase}}}}}")], "s", "Start-up phases over time, averaged over instances."),
            P("Import to ready", [q(
                f"avg(({n(st, '_sum')}{{{SEL},{phase}=\"ready\"}} - ignoring({phase}) "
                f"{n(st, '_sum')}{{{SEL},{phase}=\"import\"}}))", "import -> ready")], "s",
              "From `import routerscope.auto` to the router's mark_ready(): its own start-up work.",
              kind="stat"),
            P("Lazy inits by component", [q(
                f"sum by ({lazy_owner}, {lazy_attr}) ({n(s.LAZY_INIT_DURATION, '_sum')}{{{SEL}}})"
                f" / sum by ({lazy_owner}, {lazy_attr}) "
                f"({n(s.LAZY_INIT_DURATION, '_count')}{{{SEL}}})",
                f"{{{{{lazy_owner}}}}}.{{{{{lazy_attr}}}}}")], "s",
              s.LAZY_INIT_DURATION.description + " Mean seconds per build.", width=24),
        ]),
        ("Model cache", [
            P("Cache hit rate", [q(
                f"sum(rate({n(cr)}{{{SEL},{cache_res}=\"hit\"}}[{RI}])) / "
                f"sum(rate({n(cr)}{{{SEL}}}[{RI}]))", "hit rate")], "percentunit",
              "Share of model look-ups served from the cache.", kind="stat", thresholds=GOOD_HIGH,
              min=0, max=1),
            P("Hits and misses", [q(f"sum by ({cache_res}) (rate({n(cr)}{{{SEL}}}[{RI}]))",
                                    f"{{{{{cache_res}}}}}")], "reqps", cr.description),
            P("Evictions by reason", [q(
                f"sum by ({label(s.ATTR_CACHE_EVICTION_REASON)}) "
                f"(rate({n(s.CACHE_EVICTIONS)}{{{SEL}}}[{RI}]))",
                f"{{{{{label(s.ATTR_CACHE_EVICTION_REASON)}}}}}")], "ops",
              s.CACHE_EVICTIONS.description),
            P("Bytes held vs budget", [
                q(f"sum({n(s.CACHE_MEMORY_USAGE)}{{{SEL}}})", "held"),
                q(f"sum({n(s.CACHE_MEMORY_LIMIT)}{{{SEL}}})", "budget")], "bytes",
              "Bytes held by cached models against the cache's byte budget."),
            P("Model load time (p50, p95)", [
                q(f"histogram_quantile({p}, sum by (le) "
                  f"(rate({n(s.CACHE_LOAD_DURATION, '_bucket')}{{{SEL}}}[{RI}])))",
                  f"p{int(p * 100)}") for p in (0.5, 0.95)], "s",
              s.CACHE_LOAD_DURATION.description),
            P("Cached models", [q(f"sum({n(s.CACHE_ENTRIES)}{{{SEL}}})", "entries")], "short",
              s.CACHE_ENTRIES.description, kind="stat"),
        ]),
        ("Memory", [
            P("RSS and VMS", [
                q(f"sum by (service_instance_id) ({n(s.PROCESS_MEMORY_USAGE)}{{{SEL}}})",
                  "RSS {{service_instance_id}}"),
                q(f"sum by (service_instance_id) ({n(s.PROCESS_MEMORY_VIRTUAL)}{{{SEL}}})",
                  "VMS {{service_instance_id}}")], "bytes",
              "Process resident (RSS) and virtual (VMS) memory, per instance.", width=12,
              links=[_loki_link('{service_name="$service_name"} |= "MEMORY ALERT"')]),
            P("CUDA memory (0 without CUDA)", [
                q(f"sum by ({label(s.ATTR_DEVICE)}) ({n(s.MEMORY_CUDA_ALLOCATED)}{{{SEL}}}) "
                  f"or on() vector(0)", "allocated {{routerscope_device}}"),
                q(f"sum by ({label(s.ATTR_DEVICE)}) ({n(s.MEMORY_CUDA_RESERVED)}{{{SEL}}}) "
                  f"or on() vector(0)", "reserved {{routerscope_device}}")], "bytes",
              "CUDA memory allocated by tensors and reserved by the caching allocator, per "
              "device; 0 when the process has no CUDA.", width=12),
            P("Memory trend (Theil-Sen slope)", [q(
                f"max by (service_instance_id) ({n(s.MEMORY_TREND)}{{{SEL}}})",
                "{{service_instance_id}}")], "Bps", s.MEMORY_TREND.description +
              " Orange above 10 MiB/min, red above 50 MiB/min.",
              thresholds=[(None, "green"), (10 * 2**20 / 60, "orange"), (50 * 2**20 / 60, "red")]),
            P("Leak suspected", [q(f"max({n(s.MEMORY_LEAK_SUSPECTED)}{{{SEL}}})", "leak")],
              "bool_yes_no", s.MEMORY_LEAK_SUSPECTED.description, kind="stat",
              thresholds=[(None, "green"), (1, "red")]),
            P("Memory alerts", [q(
                f"sum by ({label(s.ATTR_MEMORY_ALERT_KIND)}) "
                f"(increase({n(s.MEMORY_ALERTS)}{{{SEL}}}[{RI}]))",
                f"{{{{{label(s.ATTR_MEMORY_ALERT_KIND)}}}}}")], "short",
              s.MEMORY_ALERTS.description + " Click through to the MEMORY ALERT log lines.",
              links=[_loki_link('{service_name="$service_name"} |= "MEMORY ALERT"')]),
        ]),
        ("API latency", [
            P("LLM call latency p50 / p95 / p99 by model and provider", lat, "s",
              dur.description + " From the gen_ai.client.operation.duration histogram.",
              width=12, links=[trace_link]),
            P("Time to first chunk p50 / p95 by model (streamed calls)", first_chunk, "s",
              ttfc.description + " From the gen_ai.client.operation.time_to_first_chunk "
              "histogram; empty when no call streams.", width=12, links=[trace_link]),
            P("Request rate by model", [q(
                f"sum by ({model}) (rate({n(dur, '_count')}{{{SEL}}}[{RI}]))",
                f"{{{{{model}}}}}")], "reqps", "LLM calls per second by requested model.",
              width=12, links=[trace_link]),
            P("Errors by type", [q(
                f"sum by (error_type) (rate({n(dur, '_count')}{{{SEL},error_type!=\"\"}}[{RI}]))",
                "{{error_type}}")], "reqps",
              "Failed LLM calls per second by error.type (HTTP status or exception).",
              links=[_loki_link('{service_name="$service_name"} |= "LLM call failed"')]),
            P("Retries by reason", [q(
                f"sum by ({label(s.ATTR_RETRY_REASON)}) "
                f"(rate({n(s.POOL_RETRIES)}{{{SEL}}}[{RI}]))",
                f"{{{{{label(s.ATTR_RETRY_REASON)}}}}}")], "ops", s.POOL_RETRIES.description),
            P("Connection reuse", [q(
                f"1 - sum({n(s.POOL_CONNECTIONS)}{{{SEL}}}) / sum({n(s.POOL_REQUESTS)}{{{SEL}}})",
                "reuse")], "percentunit", "1 - connections opened / requests sent, since "
              "start (urllib3 pools). Low means a new connection per call.", kind="stat",
              thresholds=GOOD_HIGH, min=0, max=1),
            P("Tokens in / out", [q(
                f"sum by ({label(s.GEN_AI_TOKEN_TYPE)}) "
                f"(rate({n(s.GEN_AI_CLIENT_TOKEN_USAGE, '_sum')}{{{SEL}}}[{RI}]))",
                f"{{{{{label(s.GEN_AI_TOKEN_TYPE)}}}}}")], "short",
              "Tokens per second from the responses' usage (gen_ai.client.token.usage)."),
            P("HTTP client latency p95 by server", [q(
                f"histogram_quantile(0.95, sum by (le, server_address) "
                f"(rate({n(s.HTTP_CLIENT_REQUEST_DURATION, '_bucket')}{{{SEL}}}[{RI}])))",
                "{{server_address}}")], "s", s.HTTP_CLIENT_REQUEST_DURATION.description,
              width=16, links=[_tempo_link('{ resource.service.name = "$service_name" && '
                                           'span.server.address = '
                                           '"${__field.labels.server_address}" }')]),
            P("SDK spans processed / dropped", [q(
                f"sum by (error_type) (rate({n(s.OTEL_SDK_SPAN_PROCESSED)}{{{SEL}}}[{RI}]))",
                "processed {{error_type}}")], "ops",
              "Spans through the SDK's batch processor; an error_type (queue_full) means "
              "dropped telemetry.", width=8),
        ]),
        ("Sidecar", [
            P("Queue depth", [
                q(f"sum by (service_instance_id) ({n(s.SIDECAR_QUEUE_REQUESTS)}{{}})",
                  "requests {{service_instance_id}}")], "short",
              s.SIDECAR_QUEUE_REQUESTS.description, thresholds=[(None, "green"), (1000, "orange"),
                                                                (10000, "red")]),
            P("Spooled bytes", [q(f"sum by (service_instance_id) ({n(s.SIDECAR_QUEUE_BYTES)}{{}})",
                                  "{{service_instance_id}}")], "bytes",
              s.SIDECAR_QUEUE_BYTES.description),
            P("Received / shipped", [
                q(f"sum(rate({n(s.SIDECAR_RECEIVED)}[{RI}]))", "received"),
                q(f"sum(rate({n(s.SIDECAR_SHIPPED)}[{RI}]))", "shipped")], "reqps",
              "OTLP requests accepted and delivered upstream per second."),
            P("Dropped by reason", [q(
                f"sum by ({label(s.ATTR_SIDECAR_DROP_REASON)}) "
                f"(increase({n(s.SIDECAR_DROPPED)}[{RI}]))",
                f"{{{{{label(s.ATTR_SIDECAR_DROP_REASON)}}}}}")], "short",
              s.SIDECAR_DROPPED.description),
            P("Upstream retries", [q(f"sum(increase({n(s.SIDECAR_RETRIES)}[{RI}]))", "retries")],
              "short", s.SIDECAR_RETRIES.description),
            P("Send latency p50 / p99", [
                q(f"histogram_quantile({p}, sum by (le) "
                  f"(rate({n(s.SIDECAR_SEND_DURATION, '_bucket')}[{RI}])))", f"p{int(p * 100)}")
                for p in (0.5, 0.99)], "s", s.SIDECAR_SEND_DURATION.description),
        ]),
    ]


def build_dashboard() -> dict[str, Any]:
    with warnings.catch_warnings():  # the v1 dashboard model warns that v2 exists
        warnings.simplefilter("ignore", DeprecationWarning)
        from grafana_foundation_sdk.builders import dashboard as dash
        from grafana_foundation_sdk.builders import prometheus, stat, timeseries
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
        from grafana_foundation_sdk.models.common import DataSourceRef
        from grafana_foundation_sdk.models.dashboard import (
            DashboardLinkType,
            Threshold,
            ThresholdsMode,
            VariableRefresh,
            VariableSort,
        )

        ds = DataSourceRef(type_val=PROM["type"], uid=PROM["uid"])
        d = (dash.Dashboard("routerscope overview").uid("routerscope-overview")
             .description("Start-up, model cache, memory, API latency and the sidecar of "
                          "routers instrumented with routerscope.")
             .tags(["routerscope", "llm", "router"]).refresh("30s").time("now-1h", "now")
             .timezone("browser").editable()
             .with_variable(dash.QueryVariable("service_name").label("service")
                            .datasource(ds)
                            .query(f"label_values({n(s.PROCESS_MEMORY_USAGE)}, service_name)")
                            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
                            .sort(VariableSort.ALPHABETICAL_ASC))
             .annotation(dash.AnnotationQuery().name("Memory alerts").datasource(ds).enable(True)
                         .icon_color("red")
                         .expr(f"increase({n(s.MEMORY_ALERTS)}{{{SEL}}}[1m]) > 0")
                         .title_format("MEMORY ALERT {{routerscope_memory_alert_kind}}")
                         .step("30s")))
        for row_title, panels in rows():
            d = d.with_row(dash.Row(row_title))
            for p in panels:
                builder: Any = (stat.Panel() if p.kind == "stat" else timeseries.Panel())
                builder = (builder.title(p.title).description(p.description).unit(p.unit)
                           .datasource(ds).span(p.width).height(7))
                for i, (expr, legend) in enumerate(p.queries):
                    target = prometheus.Dataquery().expr(expr).ref_id(chr(65 + i)).datasource(ds)
                    if legend:
                        target = target.legend_format(legend)
                    builder = builder.with_target(target)
                if p.thresholds:
                    builder = builder.thresholds(
                        dash.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE)
                        .steps([Threshold(value=v, color=c) for v, c in p.thresholds]))
                if p.min is not None:
                    builder = builder.min(p.min)
                if p.max is not None:
                    builder = builder.max(p.max)
                if p.links:
                    builder = builder.data_links([
                        dash.DashboardLink(t).type(DashboardLinkType.LINK).url(u)
                        .target_blank(False) for t, u in p.links])
                d = d.with_panel(builder)
        built: dict[str, Any] = json.loads(json.dumps(d.build(), cls=JSONEncoder))
        return built


def render() -> dict[str, str]:
    """file name -> JSON text of every dashboard."""
    return {"routerscope-overview.json": json.dumps(build_dashboard(), indent=2,
                                                    sort_keys=True) + "\n"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if the committed JSON is stale")
    args = ap.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"stale dashboards: {', '.join(stale)}: run python -m dashboards.generate",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
