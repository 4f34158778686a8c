"""`import routerscope.auto` on an existing router, checked at a real OTLP receiver."""

from __future__ import annotations

import sys

import pytest

from routerscope.core import signals
from routerscope.testing import FakeProvider, OTLPReceiver, attrs_of

from .conftest import KEY, ROOT, run_python

LEGACY = str(ROOT / "examples" / "legacy_router.py")
RUN_LEGACY = (
    "import routerscope.auto\n"
    "import runpy, sys\n"
    f"sys.argv = [{LEGACY!r}]\n"
    f"runpy.run_path({LEGACY!r}, run_name='__main__')\n"
)


def _env(rx: OTLPReceiver, prov: FakeProvider, **extra: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url,
        "OTEL_SERVICE_NAME": "legacy-router",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        # credentials in the URL as well as in the header: both must be redacted
        "OPENROUTER_BASE_URL": prov.base_url.replace("http://", f"http://router:{KEY}@"),
        "OPENROUTER_API_KEY": KEY,
        "ROUTER_REQUESTS": "9",
        "ROUTERSCOPE_MEMORY_INTERVAL": "0.1",
        **extra,
    }


@pytest.fixture
def legacy_run(receiver: OTLPReceiver, provider: FakeProvider):  # type: ignore[no-untyped-def]
    out = run_python(RUN_LEGACY, _env(receiver, provider))
    assert out.returncode == 0, out.stderr
    return receiver, provider, out


def test_legacy_router_spans(legacy_run) -> None:  # type: ignore[no-untyped-def]
    """The unmodified router yields one GenAI span per LLM call carrying stable HTTP semconv."""
    rx, _, _ = legacy_run
    spans = [s for _, s in rx.spans()]
    chat = [s for s in spans if s.name.startswith("chat ")]
    assert {s.name for s in chat} >= {"chat openai/gpt-4o-mini",
                                      "chat meta-llama/llama-3.1-8b-instruct",
                                      "chat mistralai/mistral-7b-instruct"}
    a = attrs_of(chat[0].attributes)
    assert a[signals.GEN_AI_OPERATION_NAME] == "chat"
    assert a[signals.GEN_AI_PROVIDER_NAME] == "self_hosted"  # loopback: never a raw IP
    assert a[signals.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert a["http.request.method"] == "POST" and a["http.response.status_code"] == 200
    assert not [s for s in spans if s.name == "POST"], "no second (HTTP) span per LLM call"
    streamed = next(s for s in chat if s.name == "chat mistralai/mistral-7b-instruct")
    assert attrs_of(streamed.attributes)[signals.GEN_AI_USAGE_OUTPUT_TOKENS] == 8
    res, _ = next(rx.spans())
    assert res["service.name"] == "legacy-router" and "host.name" in res and "process.pid" in res


def test_legacy_router_metrics(legacy_run) -> None:  # type: ignore[no-untyped-def]
    """GenAI, HTTP, pool, start-up and memory metrics arrive with their units and attributes."""
    rx, prov, _ = legacy_run
    units = {m.name: m.unit for _, m in rx.metrics()}
    assert units[signals.GEN_AI_CLIENT_OPERATION_DURATION.name] == "s"
    assert units[signals.GEN_AI_CLIENT_TOKEN_USAGE.name] == "{token}"
    assert units[signals.HTTP_CLIENT_REQUEST_DURATION.name] == "s"
    assert units[signals.PROCESS_MEMORY_USAGE.name] == "By"
    dur = rx.data_points(signals.GEN_AI_CLIENT_OPERATION_DURATION.name)
    models = {attrs_of(p.attributes).get(signals.GEN_AI_REQUEST_MODEL) for p in dur}
    assert "openai/gpt-4o-mini" in models
    assert list(dur[-1].explicit_bounds)[:3] == [0.01, 0.02, 0.04]
    tokens = rx.data_points(signals.GEN_AI_CLIENT_TOKEN_USAGE.name)
    assert {attrs_of(p.attributes)[signals.GEN_AI_TOKEN_TYPE] for p in tokens} == {"input", "output"}
    reqs = [p for p in rx.data_points(signals.POOL_REQUESTS.name)
            if attrs_of(p.attributes).get(signals.SERVER_PORT) == prov.port]
    conns = [p for p in rx.data_points(signals.POOL_CONNECTIONS.name)
             if attrs_of(p.attributes).get(signals.SERVER_PORT) == prov.port]
    assert reqs and conns
    assert max(p.as_int for p in reqs) == 7 and max(p.as_int for p in conns) == 1
    phases = {attrs_of(p.attributes)[signals.ATTR_STARTUP_PHASE]
              for p in rx.data_points(signals.STARTUP_DURATION.name)}
    assert {"import", "first_request"} <= phases
    assert rx.data_points(signals.PROCESS_MEMORY_USAGE.name)[-1].as_int > 10_000_000


def test_legacy_router_logs_link_to_traces(legacy_run) -> None:  # type: ignore[no-untyped-def]
    """stdlib records of the app arrive as OTel logs; those inside a span carry its ids."""
    rx, _, _ = legacy_run
    bodies = [r.body.string_value for _, r in rx.logs()]
    assert any("router handled 9 requests" in b for b in bodies)
    assert any("Initializing EmbeddingManager" in b for b in bodies)


def test_api_key_appears_nowhere(legacy_run) -> None:  # type: ignore[no-untyped-def]
    """The key (in the header and in the URL) is in no byte that was exported."""
    rx, _, out = legacy_run
    assert rx.raw
    assert all(KEY.encode() not in raw for raw in rx.raw)
    assert KEY not in out.stderr and KEY not in out.stdout
    urls = [attrs_of(s.attributes).get("url.full", "") for _, s in rx.spans()]
    assert any("REDACTED" in u for u in urls)


def test_content_not_captured_by_default_and_captured_on_request(
        receiver: OTLPReceiver, provider: FakeProvider) -> None:
    """Prompts are recorded only with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true."""
    out = run_python(RUN_LEGACY, _env(receiver, provider, ROUTER_REQUESTS="3"))
    assert out.returncode == 0, out.stderr
    assert all(signals.GEN_AI_INPUT_MESSAGES not in attrs_of(s.attributes)
               for _, s in receiver.spans())
    with OTLPReceiver() as rx2:
        out = run_python(RUN_LEGACY, _env(rx2, provider, ROUTER_REQUESTS="3",
                                          OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true"))
        assert out.returncode == 0, out.stderr
        captured = [attrs_of(s.attributes).get(signals.GEN_AI_INPUT_MESSAGES)
                    for _, s in rx2.spans()]
        assert any(c and "write some code" in c for c in captured)


def test_unreachable_endpoint_never_breaks_the_app(provider: FakeProvider) -> None:
    """With nothing listening at the endpoint the router runs and exits promptly."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OPENROUTER_BASE_URL":
           provider.base_url, "ROUTER_REQUESTS": "3", "OTEL_METRIC_EXPORT_INTERVAL": "200"}
    out = run_python(RUN_LEGACY, env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "router handled 3 requests" in out.stderr


def test_bad_env_values_logged_once_defaults_used(receiver: OTLPReceiver,
                                                  provider: FakeProvider) -> None:
    """A nonsense ROUTERSCOPE_* value is reported once and the default applies."""
    code = ("import routerscope.auto, routerscope.auto\n"
            "from routerscope.telemetry._settings import Settings\n"
            "s = Settings.from_env(); s2 = Settings.from_env()\n"
            "print(s.memory_interval, s.log_format)\n")
    out = run_python(code, _env(receiver, provider, ROUTERSCOPE_MEMORY_INTERVAL="soon",
                                ROUTERSCOPE_LOG_FORMAT="xml"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1.0", "auto"]
    assert out.stderr.count("ROUTERSCOPE_MEMORY_INTERVAL") == 1
    assert out.stderr.count("ROUTERSCOPE_LOG_FORMAT") == 1


def test_sdk_disabled_exports_nothing(receiver: OTLPReceiver, provider: FakeProvider) -> None:
    """OTEL_SDK_DISABLED=true leaves every signal a no-op."""
    out = run_python(RUN_LEGACY, _env(receiver, provider, OTEL_SDK_DISABLED="true",
                                      ROUTER_REQUESTS="2"))
    assert out.returncode == 0, out.stderr
    assert receiver.attempts == 0


def test_joins_existing_providers(receiver: OTLPReceiver, provider: FakeProvider) -> None:
    """An app that installed its own TracerProvider keeps it; GenAI spans land in it."""
    code = (
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "mine = InMemorySpanExporter(); tp = TracerProvider()\n"
        "tp.add_span_processor(SimpleSpanProcessor(mine)); trace.set_tracer_provider(tp)\n"
        "import routerscope.auto, requests\n"
        "from routerscope.instrumentation import wait_instrumented\n"
        "assert wait_instrumented()\n"
        "assert trace.get_tracer_provider() is tp\n"
        f"requests.post({provider.base_url!r} + '/chat/completions', json={{'model': 'm1'}})\n"
        f"requests.get({provider.base_url!r} + '/models')\n"
        "print(sorted(s.name for s in mine.get_finished_spans()))\n"
    )
    out = run_python(code, _env(receiver, provider))
    assert out.returncode == 0, out.stderr
    assert "chat m1" in out.stdout
    assert "GET" in out.stdout  # other requests keep the requests instrumentation's span


def test_survives_fork(receiver: OTLPReceiver, provider: FakeProvider) -> None:
    """20 forks made right after the import, while its threads still start: every child exports."""
    code = (
        "import os, routerscope.auto\n"
        "from opentelemetry import trace\n"
        "from routerscope.telemetry import force_flush\n"
        "for i in range(20):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        with trace.get_tracer('t').start_as_current_span(f'in-child-{i}'): pass\n"
        "        os._exit(0 if force_flush(10) else 3)\n"
        "    _, status = os.waitpid(pid, 0)\n"
        "    assert os.waitstatus_to_exitcode(status) == 0, (i, status)\n"
        "with trace.get_tracer('t').start_as_current_span('in-parent'): pass\n"
    )
    out = run_python(code, _env(receiver, provider))
    assert out.returncode == 0, out.stderr
    want = {f"in-child-{i}" for i in range(20)} | {"in-parent"}
    assert receiver.wait_for(lambda: want <= {s.name for _, s in receiver.spans()}, 20), (
        want - {s.name for _, s in receiver.spans()})


@pytest.mark.skipif(sys.platform != "linux", reason="opentelemetry-instrument run is linux-tested")
def test_opentelemetry_instrument_entry_points(receiver: OTLPReceiver,
                                               provider: FakeProvider) -> None:
    """`opentelemetry-instrument python app.py` loads our distro and configurator."""
    import shutil

    exe = shutil.which("opentelemetry-instrument", path=str(ROOT / ".venv" / "bin") + ":"
                       + __import__("os").environ.get("PATH", ""))
    if exe is None:
        exe_path = __import__("pathlib").Path(sys.executable).with_name("opentelemetry-instrument")
        exe = str(exe_path) if exe_path.exists() else None
    assert exe is not None, "opentelemetry-instrument comes with opentelemetry-instrumentation"
    import subprocess

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")}
    env.update(_env(receiver, provider, ROUTER_REQUESTS="3"))
    out = subprocess.run([exe, sys.executable, LEGACY], env=env, capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    names = {s.name for _, s in receiver.spans()}
    assert "chat openai/gpt-4o-mini" in names
    assert signals.POOL_REQUESTS.name in receiver.metric_names()


def test_exit_prints_nothing_of_ours(receiver: OTLPReceiver, provider: FakeProvider) -> None:
    """A short script under the import exits without SDK warnings, and its metrics still arrive."""
    code = "import routerscope.auto\nprint('app done')\n"
    out = run_python(code, _env(receiver, provider, ROUTERSCOPE_LOG_FORMAT="none"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "app done\n"
    assert "MeterProvider" not in out.stderr, out.stderr
    assert receiver.wait_for(lambda: signals.STARTUP_DURATION.name in receiver.metric_names(), 10)


def test_fork_does_not_wait_for_an_export_stuck_on_a_silent_collector() -> None:
    """While an export hangs on a collector that accepts and never answers, fork() returns at once."""
    import os
    import socket
    import subprocess

    from .conftest import ROOT

    silent = socket.create_server(("127.0.0.1", 0))
    code = (
        "import os, sys, time, logging, routerscope.auto\n"
        "logging.getLogger('app').warning('something to export')\n"
        "sys.stdin.readline()\n"  # the test says when the export is stuck
        "worst = 0.0\n"
        "for _ in range(3):\n"
        "    t = time.monotonic(); pid = os.fork()\n"
        "    if pid == 0: os._exit(0)\n"
        "    worst = max(worst, time.monotonic() - t); os.waitpid(pid, 0)\n"
        "print(f'{worst:.3f}')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROUTERSCOPE_"))}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{silent.getsockname()[1]}",
               OTEL_BLRP_SCHEDULE_DELAY="50", ROUTERSCOPE_SHUTDOWN_TIMEOUT="1",
               ROUTERSCOPE_MEMORY_MONITOR="0", ROUTERSCOPE_HARDWARE_EVENT="0")
    with silent, subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) as app:
        silent.settimeout(30)
        conn, _ = silent.accept()  # the log export is now in flight, and will get no answer
        with conn:
            out, err = app.communicate("go\n", timeout=60)
    assert app.returncode == 0, err
    assert float(out.strip()) < 1.0, (out, "fork() waited for the stuck export")


def test_ctrl_c_before_the_first_export_still_dies_by_sigint(receiver: OTLPReceiver,
                                                            provider: FakeProvider) -> None:
    """An app interrupted by SIGINT before anything was exported exits by SIGINT, as without us."""
    import signal

    code = "import routerscope.auto, os, signal\nos.kill(os.getpid(), signal.SIGINT)\n"
    # the requests instrumentation loads on a thread whose imports Python 3.11 would let
    # reset the interrupted status at exit (see the README); this checks our own exit path
    out = run_python(code, _env(receiver, provider,
                                OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="requests"))
    assert out.returncode == -signal.SIGINT, out.stderr


DEFERRED_END = (
    "import os, sys, time, requests, routerscope.auto\n"
    "import routerscope.core.otel as o\n"
    "from routerscope.telemetry import force_flush\n"
    "o.DEFERRED_FLUSH_INTERVAL = 60  # the worker waits: what the call queued stays queued\n"
    "requests.post(sys.argv[1] + '/chat/completions', json={'model': 'm1'})\n"
    "returned = time.time_ns()\n"
    "print(returned)\n"
    "if sys.argv[2] == 'fork':\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        force_flush(); os._exit(0)\n"
    "    os.waitpid(pid, 0)\n"
    "force_flush()\n"
)


@pytest.mark.parametrize("fork", ["no", "fork"])
def test_llm_span_ends_off_thread_at_the_calls_end(receiver: OTLPReceiver, provider: FakeProvider,
                                                   fork: str) -> None:
    """The span ended on the worker carries the call's end time; a fork()ed child never re-ends it."""
    code = DEFERRED_END
    out = run_python(f"import sys; sys.argv[1:] = [{provider.base_url!r}, {fork!r}]\n" + code,
                     _env(receiver, provider))
    assert out.returncode == 0, out.stderr
    returned = int(out.stdout.split()[0])
    chat = [s for _, s in receiver.spans() if s.name == "chat m1"]
    assert len(chat) == 1, [s.name for _, s in receiver.spans()]
    assert chat[0].start_time_unix_nano < chat[0].end_time_unix_nano <= returned


def test_providers_own_flush_and_an_apps_processor_see_llm_spans(receiver: OTLPReceiver,
                                                                 provider: FakeProvider) -> None:
    """The provider's own force_flush() ends queued LLM spans; a processor the app adds sees them at once."""
    code = (
        "import sys, requests, routerscope.auto\n"
        "from opentelemetry import trace\n"
        "import routerscope.core.otel as o\n"
        "o.DEFERRED_FLUSH_INTERVAL = 60\n"
        f"url = {provider.base_url!r} + '/chat/completions'\n"
        "requests.post(url, json={'model': 'm1'})\n"
        "tp = trace.get_tracer_provider()\n"
        "print(len(o._deferred.queue) > 0)\n"
        "tp.force_flush()  # the SDK's flush, not routerscope's: the queued span ends first\n"
        "print(len(o._deferred.queue))\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "mine = InMemorySpanExporter(); tp.add_span_processor(SimpleSpanProcessor(mine))\n"
        "requests.post(url, json={'model': 'm2'})\n"
        "print([s.name for s in mine.get_finished_spans()], o.spans_end_later())\n"
    )
    out = run_python(code, _env(receiver, provider))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["True", "0", "['chat m2'] False"]
    assert receiver.wait_for(lambda: {"chat m1", "chat m2"} <= {s.name for _, s in receiver.spans()}, 10)


def test_a_foreign_provider_that_keeps_its_place_gets_no_late_spans_nor_fast_metrics(
        receiver: OTLPReceiver, provider: FakeProvider) -> None:
    """Where the app's own (non-SDK) providers stay global, spans end on return and records go the SDK way."""
    code = (
        "from opentelemetry import metrics, trace\n"
        "class Mine(trace.NoOpTracerProvider): pass\n"
        "class MyMeters(metrics.NoOpMeterProvider): pass\n"
        "trace.set_tracer_provider(Mine()); metrics.set_meter_provider(MyMeters())\n"
        "import routerscope.auto\n"
        "import routerscope.core.otel as o\n"
        "print(o.spans_end_later(), o._sink is None)\n"
    )
    out = run_python(code, _env(receiver, provider))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
