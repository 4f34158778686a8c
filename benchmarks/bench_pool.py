"""Pooled vs a new session per call (HTTP and HTTPS), and the cost of instrumentation.

Throughput: N sequential calls to a loopback OpenAI-compatible server, in one
process, alternating the two modes in rounds so machine noise hits both.

Instrumentation overhead: each mode runs in its own child process (the OTel
providers are process-global), all against the same server, interleaved:

* ``bare``       pooled ``requests`` session, no OpenTelemetry SDK;
* ``otel``       the same session with the OTel SDK (batch span processor,
                 periodic metric reader) and ``RequestsInstrumentor`` — what
                 ``opentelemetry-instrument`` sets up for a requests app;
* ``routerscope`` ``OpenRouterClient.chat`` on our pooled session with the same
                 SDK: GenAI span + metrics, pool counts, retry policy.

Exporters discard what they get, so the numbers are the cost on the caller's
thread, not the network.
"""

from __future__ import annotations

import statistics
import sys
import time

from benchmarks._common import Row, emit, run_child

BODY = {"model": "demo/small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def _install_sdk() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Spans(SpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            return SpanExportResult.SUCCESS

    class Metrics(MetricExporter):
        def export(self, metrics_data, timeout_millis=10_000, **kw):  # type: ignore[no-untyped-def]
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis=10_000):  # type: ignore[no-untyped-def]
            return True

        def shutdown(self, timeout_millis=30_000, **kw):  # type: ignore[no-untyped-def]
            pass

    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(Spans()))
    trace.set_tracer_provider(tp)
    reader = PeriodicExportingMetricReader(Metrics(), export_interval_millis=5000)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))


def child(url: str, n: int, rounds: int) -> None:
    """Per-call cost of each mode, interleaved in rounds inside this one process.

    The SDK is installed once; ``RequestsInstrumentor`` is switched on only for
    the ``otel`` block. CPU time (all threads of the process, including our
    metrics worker and the SDK's batch processor) is the measure: wall time on
    a shared 2-core machine varies more than the differences we look for.
    """
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    from routerscope.core import otel
    from routerscope.core.openrouter import OpenRouterClient
    from routerscope.core.pool import pooled_session

    _install_sdk()
    session = pooled_session()
    client = OpenRouterClient(url, api_key="sk-bench")
    inst = RequestsInstrumentor()

    def plain() -> object:
        r = session.post(f"{url}/chat/completions", json=BODY)
        return r.json()

    def ours() -> object:
        return client.chat(**BODY)  # type: ignore[arg-type]

    def measure(fn: object) -> tuple[float, float]:
        call = fn  # type: ignore[assignment]
        w0, p0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            call()  # type: ignore[operator]
        otel.drain()  # deferred records are part of the cost
        return (time.perf_counter() - w0) / n * 1e6, (time.process_time() - p0) / n * 1e6

    for fn in (plain, ours):
        for _ in range(30):
            fn()
    cpu: dict[str, list[float]] = {"bare": [], "otel": [], "routerscope": []}
    wall: dict[str, list[float]] = {"bare": [], "otel": [], "routerscope": []}
    for _ in range(rounds):
        w, c = measure(plain)
        wall["bare"].append(w)
        cpu["bare"].append(c)
        inst.instrument()
        w, c = measure(plain)
        inst.uninstrument()
        wall["otel"].append(w)
        cpu["otel"].append(c)
        w, c = measure(ours)
        wall["routerscope"].append(w)
        cpu["routerscope"].append(c)
    emit({"cpu_us": {k: statistics.median(v) for k, v in cpu.items()},
          "wall_us": {k: statistics.median(v) for k, v in wall.items()},
          "cpu_added_us": {k: statistics.median(x - b for x, b in zip(v, cpu["bare"], strict=True))
                           for k, v in cpu.items() if k != "bare"}})


def _throughput(base_url: str, verify: str | bool, n: int, rounds: int) -> tuple[float, float]:
    import requests

    from routerscope.core.pool import pooled_session

    pooled, fresh = [], []
    session = pooled_session()
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            session.post(f"{base_url}/chat/completions", json=BODY, verify=verify).json()
        pooled.append(n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(n):
            with requests.Session() as s:
                s.post(f"{base_url}/chat/completions", json=BODY, verify=verify).json()
        fresh.append(n / (time.perf_counter() - t0))
    return statistics.median(pooled), statistics.median(fresh)


def run(quick: bool = False) -> list[Row]:
    import ssl
    import tempfile

    import trustme

    from routerscope.testing import FakeProvider

    n = 100 if quick else 300
    rows: list[Row] = []
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as f:
        f.write(ca.cert_pem.bytes())
    for label, tls, verify in (("HTTP", None, True), ("HTTPS", ctx, f.name)):
        with FakeProvider(tls=tls) as prov:
            pooled, fresh = _throughput(prov.base_url, verify, n, 3)
        rows.append(Row("pool", f"throughput, loopback {label}", "pooled session", pooled,
                        "new session per call", fresh, "calls/s", pooled / fresh,
                        claim="+20% throughput (1.2x)",
                        verdict="holds" if pooled / fresh >= 1.2 else "does not hold"))
    with FakeProvider() as prov:
        res = run_child("benchmarks.bench_pool", "child", prov.base_url, str(n),
                        str(4 if quick else 10))
    added = res["cpu_added_us"]
    ours, otel = added["routerscope"], added["otel"]
    rows.append(Row("pool", "CPU added per pooled LLM call by instrumentation", "routerscope",
                    ours, "OTel SDK + requests instrumentation (opentelemetry-instrument)", otel,
                    "us/call", otel / max(ours, 1e-9), claim="below opentelemetry-instrument",
                    verdict="holds" if ours < otel else "does not hold"))
    bare = res["cpu_us"]["bare"]
    rows.append(Row("pool", "CPU per call, instrumented / bare", "routerscope",
                    (bare + ours) / bare, "opentelemetry-instrument", (bare + otel) / bare, "x",
                    (bare + otel) / (bare + ours)))
    return rows


if __name__ == "__main__":
    if sys.argv[1] == "child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
