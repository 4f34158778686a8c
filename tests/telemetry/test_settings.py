"""Hostile settings never hurt the app: one warning line each, the app's exit code, bounded exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from routerscope.telemetry._settings import (
    DEFAULT_ENDPOINT,
    DEFAULT_MEMORY_INTERVAL,
    MAX_SHUTDOWN_TIMEOUT,
    SdkArgs,
    Settings,
)
from routerscope.testing import OTLPReceiver

from .conftest import ROOT

APP = """
import routerscope.auto
import logging, sys
from opentelemetry import trace
with trace.get_tracer("app").start_as_current_span("work"):
    logging.getLogger("app").warning("app warning")
print("app done", flush=True)
sys.exit(3)
"""

HOSTILE: list[tuple[str, str]] = [
    ("OTEL_PROPAGATORS", "b3"),
    ("OTEL_PROPAGATORS", "xray"),
    ("OTEL_PROPAGATORS", "tracecontext,bogus"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:notaport"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:99999"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "not a url"),
    ("ROUTERSCOPE_SHUTDOWN_TIMEOUT", "inf"),
    ("ROUTERSCOPE_SHUTDOWN_TIMEOUT", "1e9"),
    ("ROUTERSCOPE_SHUTDOWN_TIMEOUT", "-1"),
    ("ROUTERSCOPE_SHUTDOWN_TIMEOUT", "nan"),
    ("ROUTERSCOPE_MEMORY_INTERVAL", "inf"),
    ("ROUTERSCOPE_MEMORY_INTERVAL", "0"),
    ("ROUTERSCOPE_MEMORY_INTERVAL", "-5"),
    ("ROUTERSCOPE_MEMORY_WINDOW", "1e300"),
    ("ROUTERSCOPE_MEMORY_RSS_LIMIT_MB", "-3"),
    ("ROUTERSCOPE_LOG_LEVEL", "loud"),
    ("ROUTERSCOPE_LOGS", "maybe"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "-1"),
    ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
    ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "0"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "abc"),
    ("OTEL_TRACES_SAMPLER", "bogus"),
    ("OTEL_SDK_DISABLED", "maybe"),
    ("OTEL_METRICS_EXEMPLAR_FILTER", "sometimes"),
    ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "abc"),
    ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "-1"),
    ("OTEL_RESOURCE_ATTRIBUTES", "garbage"),
    ("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "bogus"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "garbage"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "abc"),
    ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes"),
    ("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "sometimes"),
    ("OTEL_TRACES_EXPORTER", "zipkin"),
]


def _run_app(env: dict[str, str], timeout: float = 60) -> tuple[int, str, str, float]:
    """Run APP; returns (exit code, stdout, stderr, seconds from its last line to its exit)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROUTERSCOPE_"))}
    full.update(env)
    with subprocess.Popen([sys.executable, "-c", APP], env=full, cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        err: list[str] = []
        reader = threading.Thread(target=lambda: err.append(proc.stderr.read()))  # type: ignore[union-attr]
        reader.start()
        try:
            first = proc.stdout.readline()
            last_line_at = time.monotonic()
            rc = proc.wait(timeout)
            exit_after = time.monotonic() - last_line_at
            rest = proc.stdout.read()
        finally:
            proc.kill()
            reader.join(timeout)
    return rc, first + rest, "".join(err), exit_after


@pytest.mark.parametrize(("name", "value"), HOSTILE, ids=[f"{n}={v}" for n, v in HOSTILE])
def test_hostile_value_warns_once_and_the_app_runs(receiver: OTLPReceiver, name: str,
                                                   value: str) -> None:
    """The app runs and exits with its own code; one warning line names the variable and value."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "ROUTERSCOPE_SHUTDOWN_TIMEOUT": "2",
           "ROUTERSCOPE_HARDWARE_EVENT": "0", "ROUTERSCOPE_MEMORY_INTERVAL": "0.2", name: value}
    rc, out, err, exit_after = _run_app(env)
    assert rc == 3, err
    assert out == "app done\n"
    assert "Traceback" not in err and "Error" not in err, err
    lines = [x for x in err.splitlines() if name in x]
    assert len(lines) == 1, err
    assert repr(value) in lines[0] and "using" in lines[0], lines[0]
    assert exit_after < MAX_SHUTDOWN_TIMEOUT


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An endpoint on 127.0.0.1 that accepts connections and never answers."""
    srv = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join(5)
    for c in held:
        c.close()
    srv.close()


def test_exit_is_bounded_when_the_endpoint_never_answers(black_hole: str) -> None:
    """Against an endpoint that accepts and never answers, exit follows within the timeout."""
    rc, out, err, exit_after = _run_app({"OTEL_EXPORTER_OTLP_ENDPOINT": black_hole,
                                         "ROUTERSCOPE_SHUTDOWN_TIMEOUT": "1",
                                         "ROUTERSCOPE_HARDWARE_EVENT": "0"})
    assert rc == 3 and out == "app done\n", err
    assert "Traceback" not in err
    assert exit_after < 1 + 1.5  # the timeout, plus the interpreter's own exit


def test_timeouts_are_clamped_and_bad_values_fall_back() -> None:
    """The values in use: the shutdown timeout clamped, bad OTEL_* values back to the defaults."""
    st = Settings.from_env({"ROUTERSCOPE_SHUTDOWN_TIMEOUT": "1e9", "ROUTERSCOPE_MEMORY_INTERVAL": "inf",
                            "OTEL_BSP_MAX_QUEUE_SIZE": "-1", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "9999",
                            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1"})
    assert st.shutdown_timeout == MAX_SHUTDOWN_TIMEOUT and st.memory_interval == DEFAULT_MEMORY_INTERVAL
    assert st.sdk is not None
    assert st.sdk.bsp.max_queue_size == 2048 and st.sdk.bsp.max_export_batch_size == 2048
    assert st.sdk.endpoints["traces"] == f"{DEFAULT_ENDPOINT}/v1/traces"
    good = SdkArgs.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
                             "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://logs:1/x",
                             "OTEL_TRACES_SAMPLER": "traceidratio",
                             "OTEL_TRACES_SAMPLER_ARG": "0.25"})
    assert good.endpoints == {"traces": "http://collector:4318/v1/traces",
                              "metrics": "http://collector:4318/v1/metrics",
                              "logs": "https://logs:1/x"}
    assert (good.sampler, good.sampler_ratio) == ("traceidratio", 0.25)


def test_unreachable_endpoint_said_once_and_exit_is_prompt() -> None:
    """Nothing listening: one line says so, the SDK's retries are cut short, exit is prompt."""
    rc, out, err, exit_after = _run_app({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                                         "OTEL_METRIC_EXPORT_INTERVAL": "100",
                                         "ROUTERSCOPE_HARDWARE_EVENT": "0"})
    assert rc == 3 and out == "app done\n", err
    assert err.count("nothing listens at http://127.0.0.1:9/v1/") == 1, err
    assert err.count("Transient error") <= 1, err
    assert exit_after < 2.5  # not the 5 s shutdown timeout: nothing waits on a dead endpoint


def test_exporter_none_turns_that_signal_off(receiver: OTLPReceiver) -> None:
    """OTEL_TRACES_EXPORTER=none exports no span; the other signals still arrive."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_TRACES_EXPORTER": "none",
           "ROUTERSCOPE_HARDWARE_EVENT": "0"}
    rc, _, err, _ = _run_app(env)
    assert rc == 3, err
    assert receiver.wait_for(lambda: any(True for _ in receiver.logs()), 10)
    assert receiver.metric_names()
    assert list(receiver.spans()) == []



def test_warnings_never_show_a_secret(receiver: OTLPReceiver) -> None:
    """A bad headers value or an endpoint with credentials is named in the warning, its secrets not."""
    secret = "sk-or-v1-0123456789abcdef0123"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://user:{secret}@127.0.0.1:notaport",
           "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {secret},x-api-key=plain0123,bad",
           "ROUTERSCOPE_HARDWARE_EVENT": "0"}
    rc, _, err, _ = _run_app(env)
    assert rc == 3, err
    assert "OTEL_EXPORTER_OTLP_HEADERS" in err and "OTEL_EXPORTER_OTLP_ENDPOINT" in err, err
    assert secret not in err and "plain0123" not in err, err
