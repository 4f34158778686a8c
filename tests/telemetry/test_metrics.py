"""Histograms as they reach a real OTLP receiver: exemplars linked to spans, advised buckets."""

from __future__ import annotations

from routerscope.core import signals
from routerscope.testing import FakeProvider, OTLPReceiver, attrs_of

from .conftest import run_python

QUIET = {"ROUTERSCOPE_MEMORY_MONITOR": "0", "ROUTERSCOPE_HARDWARE_EVENT": "0",
         "OTEL_METRIC_EXPORT_INTERVAL": "60000"}

CALLS = """
import requests
from opentelemetry import trace
s = requests.Session()
body = {{"model": "m1", "messages": [{{"role": "user", "content": "hi"}}]}}
for _ in range(2):
    s.post({url!r} + "/chat/completions", json=body).json()
with trace.get_tracer("app").start_as_current_span("handle request"):
    s.post({url!r} + "/chat/completions", json=body).json()
from routerscope.telemetry import shutdown
shutdown()
"""

HISTOGRAMS = (signals.GEN_AI_CLIENT_OPERATION_DURATION, signals.HTTP_CLIENT_REQUEST_DURATION,
              signals.GEN_AI_CLIENT_TOKEN_USAGE)


def test_exemplars_link_histograms_to_the_llm_call_spans(receiver: OTLPReceiver,
                                                         provider: FakeProvider) -> None:
    """GenAI and HTTP histogram exemplars carry the trace and span ids of their LLM call's span."""
    code = "import routerscope.auto\n" + CALLS.format(url=provider.base_url)
    out = run_python(code, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **QUIET})
    assert out.returncode == 0, out.stderr
    calls = {(s.trace_id, s.span_id) for _, s in receiver.spans() if s.name == "chat m1"}
    assert len(calls) == 3
    for m in HISTOGRAMS:
        linked = {(e.trace_id, e.span_id) for p in receiver.data_points(m.name)
                  for e in p.exemplars}
        assert linked, f"no exemplar on {m.name}"
        assert linked <= calls, m.name


def test_buckets_are_advised_even_into_the_apps_meter_provider(receiver: OTLPReceiver,
                                                               provider: FakeProvider) -> None:
    """Histograms get the Metric's buckets in a MeterProvider the app set up (no View of ours)."""
    code = (
        "from opentelemetry import metrics\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader\n"
        "from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter\n"
        "mp = MeterProvider(metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter("
        f"endpoint={receiver.url + '/v1/metrics'!r}), export_interval_millis=60000)])\n"
        "metrics.set_meter_provider(mp)\n"
        "import routerscope.auto\n"
        + CALLS.format(url=provider.base_url) + "mp.shutdown()\n"
    )
    out = run_python(code, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **QUIET})
    assert out.returncode == 0, out.stderr
    for m in HISTOGRAMS:
        points = receiver.data_points(m.name)
        assert points, m.name
        assert m.buckets is not None
        assert {tuple(p.explicit_bounds) for p in points} == {tuple(m.buckets)}, m.name


def test_opentelemetry_instrument_gets_the_same_buckets(receiver: OTLPReceiver,
                                                        provider: FakeProvider) -> None:
    """Under `opentelemetry-instrument` routerscope's histograms carry the Metric's buckets."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("opentelemetry-instrument")
    assert exe.exists(), "opentelemetry-instrument comes with opentelemetry-instrumentation"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROUTERSCOPE_"))}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **QUIET})
    code = CALLS.format(url=provider.base_url).replace(
        "from routerscope.telemetry import shutdown\nshutdown()\n", "")
    out = subprocess.run([str(exe), sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    m = signals.GEN_AI_CLIENT_OPERATION_DURATION
    assert receiver.wait_for(lambda: bool(receiver.data_points(m.name)), 10)
    assert m.buckets is not None
    assert {tuple(p.explicit_bounds) for p in receiver.data_points(m.name)} == {tuple(m.buckets)}


def test_sdk_self_metrics_on_without_leaving_the_variable_set(receiver: OTLPReceiver) -> None:
    """The SDK's exporter and processor metrics arrive; the app's environment has no new variable."""
    code = ("import os, routerscope.auto\n"
            "from opentelemetry import trace\n"
            "with trace.get_tracer('t').start_as_current_span('work'): pass\n"
            "from routerscope.telemetry import force_flush\n"
            "force_flush(10); force_flush(10)\n"  # the second collects the first export's counts
            "print('OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED' in os.environ)\n")
    out = run_python(code, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                            "ROUTERSCOPE_MEMORY_MONITOR": "0", "ROUTERSCOPE_HARDWARE_EVENT": "0"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    assert receiver.wait_for(lambda: {signals.OTEL_SDK_SPAN_PROCESSED.name,
                                      signals.OTEL_SDK_SPAN_EXPORTED.name}
                             <= receiver.metric_names(), 10), receiver.metric_names()


def test_environment_untouched_after_the_import(receiver: OTLPReceiver) -> None:
    """Exporters built on the first export never write os.environ (app threads walk it: KeyError)."""
    code = ("import os, routerscope.auto\n"
            "writes = []\n"
            "_put, _unset = os.putenv, os.unsetenv  # what os.environ's writes call\n"
            "os.putenv = lambda k, v: (writes.append(('set', k)), _put(k, v))\n"
            "os.unsetenv = lambda k: (writes.append(('unset', k)), _unset(k))\n"
            "from opentelemetry import trace\n"
            "with trace.get_tracer('t').start_as_current_span('work'): pass\n"
            "from routerscope.telemetry import force_flush\n"
            "force_flush(10); force_flush(10)\n"
            "print(writes)\n")
    out = run_python(code, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                            "ROUTERSCOPE_MEMORY_MONITOR": "0", "ROUTERSCOPE_HARDWARE_EVENT": "0"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert receiver.wait_for(lambda: signals.OTEL_SDK_SPAN_EXPORTED.name in receiver.metric_names(), 10)


def test_requests_instrumentation_histogram_arrives_pre_aggregated(
        receiver: OTLPReceiver, provider: FakeProvider) -> None:
    """The requests instrumentation's duration histogram arrives in its own scope, with its buckets."""
    code = ("import routerscope.auto, requests\n"
            "from routerscope.instrumentation import wait_instrumented\n"
            "assert wait_instrumented()\n"
            f"for _ in range(3): requests.get({provider.base_url!r} + '/models')\n"
            "from routerscope.telemetry import force_flush\n"
            "force_flush(10)\n")
    out = run_python(code, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                            "ROUTERSCOPE_MEMORY_MONITOR": "0", "ROUTERSCOPE_HARDWARE_EVENT": "0"})
    assert out.returncode == 0, out.stderr
    def gets() -> int:  # cumulative: each export carries all three
        return max((p.count for p in receiver.data_points("http.client.request.duration")
                    if attrs_of(p.attributes).get("http.request.method") == "GET"), default=0)
    assert receiver.wait_for(lambda: gets() == 3, 10), gets()
    scopes = {sm.scope.name for req in receiver.requests["metrics"] for rm in req.resource_metrics
              for sm in rm.scope_metrics if any(m.name == "http.client.request.duration" for m in sm.metrics)}
    assert scopes == {"opentelemetry.instrumentation.requests"}
    (point,) = [p for p in receiver.data_points("http.client.request.duration")
                if attrs_of(p.attributes).get("http.request.method") == "GET"][:1]
    assert list(point.explicit_bounds)[:3] == [0.005, 0.01, 0.025]  # the instrumentation's advice
