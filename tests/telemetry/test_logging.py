"""The host's logging stays the host's; its records still reach OTel logs, linked to traces."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from routerscope.telemetry._logging import OTelLogHandler
from routerscope.telemetry._redact import RedactingFilter
from routerscope.testing import OTLPReceiver, attrs_of

from .conftest import KEY, run_python

QUIET = {"ROUTERSCOPE_MEMORY_MONITOR": "0", "ROUTERSCOPE_HARDWARE_EVENT": "0"}

# What the host's logging looks like, printed as one JSON line on stdout.
STATE = """
import json, logging
root = logging.getLogger()
print(json.dumps({"level": root.level,
                  "handlers": [type(h).__name__ for h in root.handlers
                               if type(h).__name__ != "OTelLogHandler"],
                  "openai_effective": logging.getLogger("openai").getEffectiveLevel()}))
"""

APPS = {
    "no logging set up": "",
    "basicConfig after the import": "logging.basicConfig(level=logging.INFO)\n",
    "dictConfig after the import": (
        "import logging.config\n"
        "logging.config.dictConfig({'version': 1, 'handlers': {'h': {'class': "
        "'logging.StreamHandler'}}, 'root': {'level': 'DEBUG', 'handlers': ['h']}})\n"),
}


@pytest.mark.parametrize("setup", list(APPS), ids=list(APPS))
def test_host_logging_is_unchanged(receiver: OTLPReceiver, setup: str) -> None:
    """Root level, root handlers and every line on stderr are those of the app without the import."""
    body = (
        "import logging\n" + APPS[setup]
        + "logging.getLogger('openai').info('third-party INFO line')\n"
        "logging.getLogger('litellm').warning('third-party WARNING line')\n"
        "logging.getLogger('app').debug('app DEBUG line')\n" + STATE
    )
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **QUIET}
    bare = run_python(body, env)
    with_import = run_python("import routerscope.auto\n" + body, env)
    assert bare.returncode == 0 and with_import.returncode == 0, with_import.stderr
    assert with_import.stdout == bare.stdout
    assert with_import.stderr == bare.stderr
    assert "third-party WARNING line" in bare.stderr


def test_app_records_reach_otel_logs_at_the_apps_levels(receiver: OTLPReceiver) -> None:
    """Records the app's levels let through are exported, with the span's ids; others are not."""
    code = (
        "import logging, routerscope.auto\n"
        "from opentelemetry import trace\n"
        "from routerscope.telemetry import shutdown\n"
        "logging.getLogger('quiet').info('below root WARNING: not exported')\n"
        "logging.getLogger('chatty').setLevel(logging.INFO)\n"
        "with trace.get_tracer('t').start_as_current_span('work') as span:\n"
        "    logging.getLogger('chatty').info('chatty info %s', 'inside', extra={'tokens': 3})\n"
        "    logging.getLogger('app').warning('warning with key %s', " + repr(KEY) + ")\n"
        "    print(format(span.get_span_context().trace_id, '032x'))\n"
        "shutdown()\n"
    )
    out = run_python(code, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **QUIET})
    assert out.returncode == 0, out.stderr
    trace_id = out.stdout.strip()
    recs = {r.body.string_value: r for _, r in receiver.logs()}
    assert "below root WARNING: not exported" not in recs
    inside = recs["chatty info inside"]
    assert inside.trace_id.hex() == trace_id and attrs_of(inside.attributes)["tokens"] == 3
    assert recs["warning with key REDACTED"].severity_text == "WARN"
    assert all(KEY.encode() not in raw for raw in receiver.raw)


def test_structlog_keeps_its_output_and_is_exported(receiver: OTLPReceiver) -> None:
    """An unconfigured structlog prints as it did; its events reach OTel logs with the span's ids."""
    body = (
        "import structlog\n"
        "from opentelemetry import trace\n"
        "log = structlog.get_logger('app')\n"
        "with trace.get_tracer('t').start_as_current_span('work') as span:\n"
        "    log.info('structured inside', model='m1', tokens=3)\n"
        "    tid = format(span.get_span_context().trace_id, '032x')\n"
    )
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **QUIET}
    bare = run_python(body + "print('TRACE', 'none')\n", env)
    code = ("import routerscope.auto\n" + body + "print('TRACE', tid)\n"
            "from routerscope.telemetry import shutdown\nshutdown()\n")
    out = run_python(code, env)
    assert out.returncode == 0, out.stderr
    printed = [x for x in out.stdout.splitlines() if "structured inside" in x]
    expected = [x for x in bare.stdout.splitlines() if "structured inside" in x]
    assert len(printed) == 1 and len(expected) == 1

    def fields(line: str) -> str:  # the rendered event and fields, without the timestamp
        return line[line.index("structured inside"):]

    assert fields(printed[0]) == fields(expected[0])
    trace_id = out.stdout.split("TRACE ", 1)[1].strip()
    rec = next(r for _, r in receiver.logs() if r.body.string_value == "structured inside")
    assert rec.trace_id.hex() == trace_id
    assert attrs_of(rec.attributes)["model"] == "m1" and attrs_of(rec.attributes)["tokens"] == 3


def test_routerscope_events_follow_their_own_level(receiver: OTLPReceiver) -> None:
    """ROUTERSCOPE_LOG_LEVEL sets what is exported; ROUTERSCOPE_LOG_FORMAT=json prints it on stderr."""
    code = ("import logging, routerscope.auto\n"
            "logging.getLogger('routerscope.x').info('ours at info')\n"
            "logging.getLogger('routerscope.x').error('ours at error')\n"
            "print(logging.getLogger().level)\n")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **QUIET, "ROUTERSCOPE_LOG_FORMAT": "json"}
    info = run_python(code, env)
    error = run_python(code, {**env, "ROUTERSCOPE_LOG_LEVEL": "error"})
    assert info.returncode == 0 and error.returncode == 0, error.stderr
    events = [json.loads(x)["event"] for x in info.stderr.splitlines() if x.startswith("{")]
    assert events == ["ours at info", "ours at error"]
    assert [json.loads(x)["event"] for x in error.stderr.splitlines()
            if x.startswith("{")] == ["ours at error"]
    assert info.stdout.strip() == str(logging.WARNING)
    assert receiver.wait_for(lambda: sum(1 for _, r in receiver.logs()
                                         if "ours at" in r.body.string_value) == 3, 10)


@pytest.mark.parametrize("setup", ["", "logging.basicConfig()\n"], ids=["no logging", "basicConfig after"])
def test_routerscope_events_reach_the_host_as_any_librarys(receiver: OTLPReceiver,
                                                           setup: str) -> None:
    """By default the host prints routerscope's warnings once, plainly, and none of its info lines."""
    code = ("import logging, routerscope.auto\n" + setup +
            "logging.getLogger('routerscope.x').info('ours at info')\n"
            "logging.getLogger('routerscope.x').warning('ours at warning')\n")
    out = run_python(code, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **QUIET})
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("ours at warning") == 1, out.stderr
    assert "ours at info" not in out.stderr
    assert not out.stderr.lstrip().startswith("{"), out.stderr
    assert receiver.wait_for(lambda: {"ours at info", "ours at warning"} <= {
        r.body.string_value for _, r in receiver.logs()}, 10)


def test_logs_switch_off_leaves_root_alone(receiver: OTLPReceiver) -> None:
    """ROUTERSCOPE_LOGS=0 adds no handler to the root logger and exports no log record."""
    code = ("import logging, routerscope.auto\n"
            "logging.getLogger('app').warning('not bridged')\n"
            "print([type(h).__name__ for h in logging.getLogger().handlers])\n"
            "from routerscope.telemetry import shutdown\nshutdown()\n")
    out = run_python(code, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "ROUTERSCOPE_LOGS": "0",
                            **QUIET})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert "not bridged" in out.stderr
    assert not list(receiver.logs())


class _Unreadable(list):  # type: ignore[type-arg]
    """A value whose redaction fails: iterating it raises."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        raise RuntimeError("cannot iterate")


def _record_with_failing_redaction() -> logging.LogRecord:
    rec = logging.LogRecord("app", logging.WARNING, "f", 1, "key %s", (KEY,), None)
    rec.broken = _Unreadable()
    rec.secret = f"Bearer {KEY}"
    return rec


def test_log_filter_fails_closed() -> None:
    """When redaction fails the filter drops the record and leaves no field half-redacted."""
    rec = _record_with_failing_redaction()
    assert RedactingFilter().filter(rec) is False
    assert rec.args == (KEY,) and rec.__dict__["secret"] == f"Bearer {KEY}"  # untouched, and not passed on


def test_otel_handler_drops_a_record_it_cannot_redact() -> None:
    """The OTel handler exports nothing for a record whose redaction fails."""
    mem = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    lp = LoggerProvider()
    lp.add_log_record_processor(SimpleLogRecordProcessor(mem))
    handler = OTelLogHandler(lp)
    handler.handle(_record_with_failing_redaction())
    handler.handle(logging.LogRecord("app", logging.WARNING, "f", 1, "clean %s", ("x",), None))
    assert [r.log_record.body for r in mem.get_finished_logs()] == ["clean x"]


def test_app_debug_logs_show_no_telemetry_traffic(receiver: OTLPReceiver) -> None:
    """An app logging urllib3 at DEBUG sees its own requests, not the exporters' POSTs."""
    code = ("import logging, requests, routerscope.auto\n"
            "logging.basicConfig(level=logging.DEBUG)\n"
            f"requests.get({receiver.url!r} + '/app-request')\n"
            "from routerscope.telemetry import force_flush\n"
            "force_flush(10)\n")
    out = run_python(code, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **QUIET})
    assert out.returncode == 0, out.stderr
    assert "/app-request" in out.stderr, out.stderr
    assert "/v1/metrics" not in out.stderr and "/v1/traces" not in out.stderr, out.stderr
    assert receiver.metric_names()
