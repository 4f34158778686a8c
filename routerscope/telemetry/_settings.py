"""Settings from the environment: the standard ``OTEL_*`` variables and ours.

A bad value never raises: one warning line names the variable, the value and
what is used instead, and that applies. Every default is a named constant
beside its variable; :data:`ENV_DOC` (the README's table of ``ROUTERSCOPE_*``
variables, compared by ``tests/test_readme.py``) shows those same constants.

The ``OTEL_*`` values routerscope hands to the SDK (batch sizes, intervals,
sampler, limits, exporter endpoint, timeout and compression) are validated
here and passed to the SDK's constructors explicitly, so the SDK never parses
a bad value itself (where it would raise or print a traceback).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

_logger = logging.getLogger("routerscope.telemetry")

DEFAULT_ENDPOINT: Final = "http://127.0.0.1:4318"
"""The local sidecar (``routerscope sidecar``)."""

# --- routerscope's own variables, each with its default ------------------------------------
ROUTERSCOPE_MEMORY_MONITOR: Final = "ROUTERSCOPE_MEMORY_MONITOR"
DEFAULT_MEMORY_MONITOR: Final = True
ROUTERSCOPE_MEMORY_INTERVAL: Final = "ROUTERSCOPE_MEMORY_INTERVAL"
DEFAULT_MEMORY_INTERVAL: Final = 1.0
MAX_MEMORY_INTERVAL: Final = 3600.0
ROUTERSCOPE_MEMORY_RSS_LIMIT_MB: Final = "ROUTERSCOPE_MEMORY_RSS_LIMIT_MB"
DEFAULT_MEMORY_RSS_LIMIT_MB: Final = None
ROUTERSCOPE_MEMORY_WINDOW: Final = "ROUTERSCOPE_MEMORY_WINDOW"
DEFAULT_MEMORY_WINDOW: Final = 300.0
MAX_MEMORY_WINDOW: Final = 86_400.0
ROUTERSCOPE_LOG_LEVEL: Final = "ROUTERSCOPE_LOG_LEVEL"
DEFAULT_LOG_LEVEL: Final = "info"
ROUTERSCOPE_LOG_FORMAT: Final = "ROUTERSCOPE_LOG_FORMAT"
DEFAULT_LOG_FORMAT: Final = "auto"
ROUTERSCOPE_LOGS: Final = "ROUTERSCOPE_LOGS"
DEFAULT_LOGS: Final = True
ROUTERSCOPE_GENAI: Final = "ROUTERSCOPE_GENAI"
DEFAULT_GENAI: Final = True
ROUTERSCOPE_POOL_COUNTING: Final = "ROUTERSCOPE_POOL_COUNTING"
DEFAULT_POOL_COUNTING: Final = True
ROUTERSCOPE_INSTRUMENT_HTTPX: Final = "ROUTERSCOPE_INSTRUMENT_HTTPX"
ROUTERSCOPE_INSTRUMENT_HTTPX2: Final = "ROUTERSCOPE_INSTRUMENT_HTTPX2"
ROUTERSCOPE_INSTRUMENT_AIOHTTP: Final = "ROUTERSCOPE_INSTRUMENT_AIOHTTP"
DEFAULT_INSTRUMENT_CLIENT: Final = True
ROUTERSCOPE_SERVICE_VERSION: Final = "ROUTERSCOPE_SERVICE_VERSION"
DEFAULT_SERVICE_VERSION: Final = None
ROUTERSCOPE_SHUTDOWN_TIMEOUT: Final = "ROUTERSCOPE_SHUTDOWN_TIMEOUT"
DEFAULT_SHUTDOWN_TIMEOUT: Final = 5.0
MAX_SHUTDOWN_TIMEOUT: Final = 30.0
ROUTERSCOPE_HARDWARE_EVENT: Final = "ROUTERSCOPE_HARDWARE_EVENT"
DEFAULT_HARDWARE_EVENT: Final = True
ROUTERSCOPE_SIDECAR_TOKEN: Final = "ROUTERSCOPE_SIDECAR_TOKEN"
DEFAULT_SIDECAR_TOKEN: Final = None

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
LOG_FORMATS: Final = ("auto", "json", "console", "none")


def shown(default: object) -> str:
    """How a default reads in the README's table: 1/0, unset, 5 (not 5.0)."""
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return "1" if default else "0"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


ENV_DOC: Final[dict[str, tuple[object, str]]] = {
    ROUTERSCOPE_MEMORY_MONITOR: (DEFAULT_MEMORY_MONITOR,
                                 "start the memory monitor on `import routerscope.auto` (0 = off)"),
    ROUTERSCOPE_MEMORY_INTERVAL: (DEFAULT_MEMORY_INTERVAL, "memory sampling interval, seconds "
                                  f"(at most {shown(MAX_MEMORY_INTERVAL)})"),
    ROUTERSCOPE_MEMORY_RSS_LIMIT_MB: (DEFAULT_MEMORY_RSS_LIMIT_MB,
                                      "RSS limit for the memory alerts (warning at 80 %)"),
    ROUTERSCOPE_MEMORY_WINDOW: (DEFAULT_MEMORY_WINDOW, "seconds of samples behind the trend and "
                                f"leak detection (at most {shown(MAX_MEMORY_WINDOW)})"),
    ROUTERSCOPE_LOG_LEVEL: (DEFAULT_LOG_LEVEL, "level of the `routerscope` logger: routerscope's "
                            "own events exported at this level; the app's loggers keep theirs"),
    ROUTERSCOPE_LOG_FORMAT: (DEFAULT_LOG_FORMAT, "console output of routerscope's own events: "
                             "`auto` = what the app's root level lets through (warnings by "
                             "default), via the app's handlers, as for any library; `json`, "
                             "`console` = routerscope's own stderr lines at its level; `none`"),
    ROUTERSCOPE_LOGS: (DEFAULT_LOGS, "send the app's log records to OTel logs at the levels the "
                       "app set (0 = no log bridge, no handler on the root logger)"),
    ROUTERSCOPE_GENAI: (DEFAULT_GENAI, "wrap `requests.Session.send` to record OpenAI-compatible "
                        "calls as GenAI spans and metrics (0 = off)"),
    ROUTERSCOPE_INSTRUMENT_HTTPX: (DEFAULT_INSTRUMENT_CLIENT, "patch `httpx` (and `httpcore`) when the "
                                   "app imports it: GenAI spans, HTTP metrics, pool reuse (0 = off)"),
    ROUTERSCOPE_INSTRUMENT_HTTPX2: (DEFAULT_INSTRUMENT_CLIENT, "the same for `httpx2`/`httpcore2`, "
                                    "the HTTP layer of the `openai` and `anthropic` SDKs (0 = off)"),
    ROUTERSCOPE_INSTRUMENT_AIOHTTP: (DEFAULT_INSTRUMENT_CLIENT, "the same for `aiohttp` (0 = off)"),
    ROUTERSCOPE_POOL_COUNTING: (DEFAULT_POOL_COUNTING, "count connections and requests of every "
                                "urllib3 pool (0 = off)"),
    ROUTERSCOPE_SERVICE_VERSION: (DEFAULT_SERVICE_VERSION, "`service.version` resource attribute"),
    ROUTERSCOPE_SHUTDOWN_TIMEOUT: (DEFAULT_SHUTDOWN_TIMEOUT, "seconds the flush at exit may take, "
                                   f"endpoint up or not (at most {shown(MAX_SHUTDOWN_TIMEOUT)})"),
    ROUTERSCOPE_HARDWARE_EVENT: (DEFAULT_HARDWARE_EVENT,
                                 "emit the detected hardware once after start-up (0 = off)"),
    ROUTERSCOPE_SIDECAR_TOKEN: (DEFAULT_SIDECAR_TOKEN, "bearer token the sidecar requires "
                                "(read by `routerscope sidecar`; or `--token-file`)"),
}

# --- the standard variables routerscope validates, with the SDK's defaults ----------------
OTEL_SDK_DISABLED: Final = "OTEL_SDK_DISABLED"
DEFAULT_SDK_DISABLED: Final = False
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: Final = (
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
DEFAULT_CAPTURE_CONTENT: Final = False
OTEL_PYTHON_DISABLED_INSTRUMENTATIONS: Final = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
OTEL_METRIC_EXPORT_INTERVAL: Final = "OTEL_METRIC_EXPORT_INTERVAL"
DEFAULT_METRIC_EXPORT_INTERVAL_MS: Final = 60_000.0
OTEL_METRIC_EXPORT_TIMEOUT: Final = "OTEL_METRIC_EXPORT_TIMEOUT"
DEFAULT_METRIC_EXPORT_TIMEOUT_MS: Final = 30_000.0
OTEL_METRICS_EXEMPLAR_FILTER: Final = "OTEL_METRICS_EXEMPLAR_FILTER"
DEFAULT_EXEMPLAR_FILTER: Final = "trace_based"
EXEMPLAR_FILTERS: Final = ("trace_based", "always_on", "always_off")
OTEL_TRACES_SAMPLER: Final = "OTEL_TRACES_SAMPLER"
DEFAULT_TRACES_SAMPLER: Final = "parentbased_always_on"
BUILTIN_SAMPLERS: Final = ("always_on", "always_off", "traceidratio", "parentbased_always_on",
                           "parentbased_always_off", "parentbased_traceidratio")
OTEL_TRACES_SAMPLER_ARG: Final = "OTEL_TRACES_SAMPLER_ARG"
DEFAULT_TRACES_SAMPLER_ARG: Final = 1.0
OTEL_PROPAGATORS: Final = "OTEL_PROPAGATORS"
OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: Final = (
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")
DEFAULT_TEMPORALITY: Final = "cumulative"
TEMPORALITIES: Final = ("cumulative", "delta", "lowmemory")
OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION: Final = (
    "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION")
DEFAULT_HISTOGRAM_AGGREGATION: Final = "explicit_bucket_histogram"
HISTOGRAM_AGGREGATIONS: Final = ("explicit_bucket_histogram", "base2_exponential_bucket_histogram")
OTEL_EXPORTER_OTLP_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_PROTOCOL"
PROTOCOL: Final = "http/protobuf"
"""The only protocol routerscope's exporters speak (the sidecar's and collectors' default)."""
DEFAULT_EXPORTER_TIMEOUT_S: Final = 10.0
DEFAULT_COMPRESSION: Final = "none"
COMPRESSIONS: Final = ("gzip", "deflate", "none")
OTEL_RESOURCE_ATTRIBUTES: Final = "OTEL_RESOURCE_ATTRIBUTES"
OTEL_EXPERIMENTAL_RESOURCE_DETECTORS: Final = "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"
SIGNALS: Final = ("traces", "metrics", "logs")

DEFAULT_SCHEDULE_DELAY_MS: Final = {"BSP": 5000.0, "BLRP": 1000.0}
DEFAULT_MAX_QUEUE_SIZE: Final = 2048
DEFAULT_MAX_EXPORT_BATCH_SIZE: Final = 512
DEFAULT_EXPORT_TIMEOUT_MS: Final = 30_000.0

# SpanLimits / LogRecordLimits argument of each limit variable; None = unlimited
SPAN_LIMITS: Final = {
    "OTEL_ATTRIBUTE_COUNT_LIMIT": ("max_attributes", 128),
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": ("max_span_attributes", 128),
    "OTEL_SPAN_EVENT_COUNT_LIMIT": ("max_events", 128),
    "OTEL_SPAN_LINK_COUNT_LIMIT": ("max_links", 128),
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": ("max_event_attributes", 128),
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": ("max_link_attributes", 128),
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("max_attribute_length", None),
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("max_span_attribute_length", None),
}
LOG_LIMITS: Final = {
    "OTEL_ATTRIBUTE_COUNT_LIMIT": ("max_attributes", 128),
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("max_attribute_length", None),
    "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT": ("max_log_record_attributes", 128),
    "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("max_log_record_attribute_length", None),
}

_warned: set[str] = set()


def warn_bad(name: str, value: str, why: str, instead: object) -> None:
    """One warning line per variable: its name, the bad value and what is used instead."""
    if name in _warned:
        return
    _warned.add(name)
    _logger.warning("routerscope: ignoring %s=%r (%s); using %s", name, _without_secrets(name, value),
                    why, shown(instead) if not isinstance(instead, str) else instead)


def _without_secrets(name: str, value: str) -> str:
    """``value`` as a warning may show it: header values masked, keys and URL credentials redacted."""
    from routerscope.telemetry._secrets import REDACTED, redact

    if name.endswith("_HEADERS"):
        value = ",".join(f"{item.partition('=')[0]}={REDACTED}" if "=" in item else item
                         for item in value.split(","))
    return redact(value)


class DropSdkRepeats(logging.Filter):
    """Drops an SDK log line about a variable routerscope already warned about (one line each)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = f"{record.msg} {record.args}"
        return not any(name in text for name in _warned)


def _raw(name: str, env: Mapping[str, str] | None) -> str | None:
    raw = (env if env is not None else os.environ).get(name)
    if raw is None or raw.strip() == "":
        return None
    return raw


def env_bool(name: str, default: bool, env: Mapping[str, str] | None = None) -> bool:
    raw = _raw(name, env)
    if raw is None:
        return default
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    warn_bad(name, raw, "expected true/false", default)
    return default


def env_float(name: str, default: float | None, env: Mapping[str, str] | None = None, *,
              minimum: float = 0.0, maximum: float | None = None) -> float | None:
    """A finite number above ``minimum``; above ``maximum`` it is clamped (with a warning)."""
    raw = _raw(name, env)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        warn_bad(name, raw, "expected a number", default)
        return default
    if not math.isfinite(value):
        warn_bad(name, raw, "expected a finite number", default)
        return default
    if value <= minimum:
        warn_bad(name, raw, f"must be > {shown(minimum)}", default)
        return default
    if maximum is not None and value > maximum:
        warn_bad(name, raw, f"at most {shown(maximum)}", maximum)
        return maximum
    return value


def env_int(name: str, default: int | None, env: Mapping[str, str] | None = None, *,
            minimum: int = 0) -> int | None:
    raw = _raw(name, env)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        warn_bad(name, raw, "expected an integer", default)
        return default
    if value < minimum:
        warn_bad(name, raw, f"must be >= {minimum}", default)
        return default
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...],
               env: Mapping[str, str] | None = None) -> str:
    raw = _raw(name, env)
    if raw is None:
        return default
    v = raw.strip().lower()
    if v not in choices:
        warn_bad(name, raw, f"expected one of {', '.join(choices)}", default)
        return default
    return v


EXPORTER_CHOICES: Final = ("otlp", "none")
"""What ``OTEL_{TRACES,METRICS,LOGS}_EXPORTER`` may say to routerscope: it exports OTLP or nothing."""


def exporter_wanted(signal: str, env: Mapping[str, str] | None = None) -> bool:
    """False when ``OTEL_<SIGNAL>_EXPORTER=none`` turns that signal's OTLP export off."""
    return env_choice(f"OTEL_{signal.upper()}_EXPORTER", "otlp", EXPORTER_CHOICES, env) == "otlp"


def _url_ok(url: str) -> str | None:
    """Why ``url`` cannot be an OTLP/HTTP endpoint, or None if it can."""
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises on a bad or out-of-range port
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "expected an http:// or https:// URL"
    if not parts.hostname:
        return "no host"
    return None


def env_endpoint(signal: str, env: Mapping[str, str] | None = None) -> str:
    """The full OTLP/HTTP URL for ``signal``, as the SDK's exporter derives it, validated."""
    default = f"{DEFAULT_ENDPOINT}/v1/{signal}"
    per_name = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    per = _raw(per_name, env)
    if per is not None:
        why = _url_ok(per)
        if why is None:
            return per.strip()
        warn_bad(per_name, per, why, default)
    base = _raw("OTEL_EXPORTER_OTLP_ENDPOINT", env)
    if base is None:
        return default
    why = _url_ok(base)
    if why is not None:
        warn_bad("OTEL_EXPORTER_OTLP_ENDPOINT", base, why, DEFAULT_ENDPOINT)
        return default
    return f"{base.strip().rstrip('/')}/v1/{signal}"


@dataclass(frozen=True)
class BatchArgs:
    """The keyword arguments of a batch span / log record processor."""

    schedule_delay_millis: float
    max_queue_size: int
    max_export_batch_size: int
    export_timeout_millis: float


def _batch(prefix: str, env: Mapping[str, str]) -> BatchArgs:
    delay = env_float(f"OTEL_{prefix}_SCHEDULE_DELAY", DEFAULT_SCHEDULE_DELAY_MS[prefix], env)
    queue = env_int(f"OTEL_{prefix}_MAX_QUEUE_SIZE", DEFAULT_MAX_QUEUE_SIZE, env, minimum=1)
    batch = env_int(f"OTEL_{prefix}_MAX_EXPORT_BATCH_SIZE", DEFAULT_MAX_EXPORT_BATCH_SIZE, env,
                    minimum=1)
    timeout = env_float(f"OTEL_{prefix}_EXPORT_TIMEOUT", DEFAULT_EXPORT_TIMEOUT_MS, env)
    assert delay is not None and queue is not None and batch is not None and timeout is not None
    if batch > queue:
        warn_bad(f"OTEL_{prefix}_MAX_EXPORT_BATCH_SIZE", str(batch),
                 f"above OTEL_{prefix}_MAX_QUEUE_SIZE={queue}", queue)
        batch = queue
    return BatchArgs(delay, queue, batch, timeout)


def _limits(table: Mapping[str, tuple[str, int | None]], env: Mapping[str, str]) -> dict[str, int]:
    """Explicit arguments for the limit variables that are set (a bad one: its default).

    -1 is the SDK's ``UNSET``: no limit. Variables not set are left to the SDK.
    """
    out: dict[str, int] = {}
    for name, (arg, default) in table.items():
        if _raw(name, env) is not None:
            value = env_int(name, default, env)
            out[arg] = -1 if value is None else value
    return out


def _sampler(env: Mapping[str, str]) -> tuple[str | None, float]:
    """(built-in sampler name or None for an installed plug-in sampler, ratio argument)."""
    raw = _raw(OTEL_TRACES_SAMPLER, env)
    name: str | None = DEFAULT_TRACES_SAMPLER
    if raw is not None:
        v = raw.strip().lower()
        if v in BUILTIN_SAMPLERS:
            name = v
        elif _entry_point("opentelemetry_traces_sampler", raw.strip()):
            name = None
        else:
            warn_bad(OTEL_TRACES_SAMPLER, raw, "no such sampler", DEFAULT_TRACES_SAMPLER)
    ratio = DEFAULT_TRACES_SAMPLER_ARG
    if name is not None and name.endswith("traceidratio"):
        arg = _raw(OTEL_TRACES_SAMPLER_ARG, env)
        if arg is not None:
            try:
                ratio = float(arg)
                ok = 0.0 <= ratio <= 1.0
            except ValueError:
                ok = False
            if not ok:
                warn_bad(OTEL_TRACES_SAMPLER_ARG, arg, "expected a ratio in [0, 1]",
                         DEFAULT_TRACES_SAMPLER_ARG)
                ratio = DEFAULT_TRACES_SAMPLER_ARG
    return name, ratio


def _entry_point(group: str, name: str) -> bool:
    from importlib.metadata import entry_points

    try:
        return bool(entry_points(group=group, name=name))
    except Exception:  # noqa: BLE001 - a broken distribution's metadata: treat as missing
        return False


def _installed(var: str, group: str, builtin: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    """For a list of plug-in names: the installed part if some are missing (warned), else None."""
    raw = _raw(var, env)
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    missing = [n for n in names if n not in builtin and not _entry_point(group, n)]
    if not missing:
        return None
    usable = ",".join(n for n in names if n not in missing)
    warn_bad(var, raw, f"{', '.join(missing)} not installed", repr(usable) if usable else "none")
    return usable


def _headers(var: str, env: Mapping[str, str]) -> None:
    """Warn (once) about items of an OTLP headers variable that are not name=value."""
    raw = _raw(var, env)
    if raw is None:
        return
    bad = [p for p in raw.split(",") if p.strip() and "=" not in p]
    if bad:
        warn_bad(var, raw, f"{', '.join(map(repr, bad))} not name=value", "the other headers")


def _resource_attributes(env: Mapping[str, str]) -> str | None:
    """The key=value pairs of OTEL_RESOURCE_ATTRIBUTES if some are malformed (warned), else None."""
    raw = _raw(OTEL_RESOURCE_ATTRIBUTES, env)
    if raw is None:
        return None
    pairs = [p for p in raw.split(",") if p.strip()]
    bad = [p for p in pairs if "=" not in p]
    if not bad:
        return None
    warn_bad(OTEL_RESOURCE_ATTRIBUTES, raw, f"{', '.join(map(repr, bad))} not key=value",
             "the other pairs")
    return ",".join(p for p in pairs if "=" in p)


def _env_overrides(env: Mapping[str, str]) -> dict[str, str | None]:
    """Variables the SDK reads while its modules are imported, narrowed to usable values.

    ``opentelemetry.propagate`` raises at import for a propagator that is not
    installed, ``opentelemetry.sdk.trace`` for a bad OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT,
    and ``Resource.create`` logs a traceback per unknown detector. Each bad one is
    warned once here; set-up runs with these values (None: unset) and restores
    the originals after.
    """
    out: dict[str, str | None] = {}
    props = _installed(OTEL_PROPAGATORS, "opentelemetry_propagator", ("none",), env)
    if props is not None:
        out[OTEL_PROPAGATORS] = props or "none"
    detectors = _installed(OTEL_EXPERIMENTAL_RESOURCE_DETECTORS, "opentelemetry_resource_detector",
                           ("otel",), env)
    if detectors is not None:
        out[OTEL_EXPERIMENTAL_RESOURCE_DETECTORS] = detectors or None
    attrs = _resource_attributes(env)
    if attrs is not None:
        out[OTEL_RESOURCE_ATTRIBUTES] = attrs or None
    if _raw("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", env) is not None and env_int(
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", -1, env) == -1:
        out["OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT"] = None
    return out


@dataclass(frozen=True)
class SdkArgs:
    """Validated ``OTEL_*`` values, handed to the SDK's constructors explicitly."""

    bsp: BatchArgs
    blrp: BatchArgs
    metric_export_interval_ms: float
    metric_export_timeout_ms: float
    exemplar_filter: str
    sampler: str | None
    sampler_ratio: float
    span_limits: dict[str, int]
    log_limits: dict[str, int]
    endpoints: dict[str, str]
    exporter_timeout_s: dict[str, float]
    compression: dict[str, str]
    temporality: str
    histogram_aggregation: str
    env_overrides: dict[str, str | None]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SdkArgs:
        timeouts: dict[str, float] = {}
        compression: dict[str, str] = {}
        base_timeout = env_float("OTEL_EXPORTER_OTLP_TIMEOUT", DEFAULT_EXPORTER_TIMEOUT_S, env)
        base_comp = env_choice("OTEL_EXPORTER_OTLP_COMPRESSION", DEFAULT_COMPRESSION,
                               COMPRESSIONS, env)
        for s in SIGNALS:
            timeouts[s] = env_float(f"OTEL_EXPORTER_OTLP_{s.upper()}_TIMEOUT", base_timeout,
                                    env) or DEFAULT_EXPORTER_TIMEOUT_S
            compression[s] = env_choice(f"OTEL_EXPORTER_OTLP_{s.upper()}_COMPRESSION", base_comp,
                                        COMPRESSIONS, env)
        name, ratio = _sampler(env)
        for var in ("OTEL_EXPORTER_OTLP_HEADERS",
                    *(f"OTEL_EXPORTER_OTLP_{sig.upper()}_HEADERS" for sig in SIGNALS)):
            _headers(var, env)
        for var in (OTEL_EXPORTER_OTLP_PROTOCOL,
                    *(f"OTEL_EXPORTER_OTLP_{sig.upper()}_PROTOCOL" for sig in SIGNALS)):
            env_choice(var, PROTOCOL, (PROTOCOL,), env)  # warns once about any other
        return cls(
            bsp=_batch("BSP", env), blrp=_batch("BLRP", env),
            metric_export_interval_ms=env_float(
                OTEL_METRIC_EXPORT_INTERVAL, DEFAULT_METRIC_EXPORT_INTERVAL_MS, env)
            or DEFAULT_METRIC_EXPORT_INTERVAL_MS,
            metric_export_timeout_ms=env_float(
                OTEL_METRIC_EXPORT_TIMEOUT, DEFAULT_METRIC_EXPORT_TIMEOUT_MS, env)
            or DEFAULT_METRIC_EXPORT_TIMEOUT_MS,
            exemplar_filter=env_choice(OTEL_METRICS_EXEMPLAR_FILTER, DEFAULT_EXEMPLAR_FILTER,
                                       EXEMPLAR_FILTERS, env),
            sampler=name, sampler_ratio=ratio,
            span_limits=_limits(SPAN_LIMITS, env), log_limits=_limits(LOG_LIMITS, env),
            endpoints={s: env_endpoint(s, env) for s in SIGNALS},
            exporter_timeout_s=timeouts, compression=compression,
            temporality=env_choice(OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE,
                                   DEFAULT_TEMPORALITY, TEMPORALITIES, env),
            histogram_aggregation=env_choice(
                OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION,
                DEFAULT_HISTOGRAM_AGGREGATION, HISTOGRAM_AGGREGATIONS, env),
            env_overrides=_env_overrides(env),
        )


@dataclass(frozen=True)
class Settings:
    sdk_disabled: bool
    memory_monitor: bool
    memory_interval: float
    memory_rss_limit_mb: float | None
    memory_window: float
    log_level: int
    log_format: str
    logs: bool
    genai: bool
    pool_counting: bool
    instrument_httpx: bool
    instrument_httpx2: bool
    instrument_aiohttp: bool
    disabled_instrumentations: frozenset[str]
    service_version: str | None
    shutdown_timeout: float
    hardware_event: bool
    capture_content: bool
    sdk: SdkArgs | None = field(default=None)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = env if env is not None else os.environ
        disabled = env_bool(OTEL_SDK_DISABLED, DEFAULT_SDK_DISABLED, e)
        level_name = env_choice(ROUTERSCOPE_LOG_LEVEL, DEFAULT_LOG_LEVEL, LOG_LEVELS, e)
        return cls(
            sdk_disabled=disabled,
            memory_monitor=env_bool(ROUTERSCOPE_MEMORY_MONITOR, DEFAULT_MEMORY_MONITOR, e),
            memory_interval=env_float(ROUTERSCOPE_MEMORY_INTERVAL, DEFAULT_MEMORY_INTERVAL, e,
                                      maximum=MAX_MEMORY_INTERVAL) or DEFAULT_MEMORY_INTERVAL,
            memory_rss_limit_mb=env_float(ROUTERSCOPE_MEMORY_RSS_LIMIT_MB,
                                          DEFAULT_MEMORY_RSS_LIMIT_MB, e),
            memory_window=env_float(ROUTERSCOPE_MEMORY_WINDOW, DEFAULT_MEMORY_WINDOW, e,
                                    maximum=MAX_MEMORY_WINDOW) or DEFAULT_MEMORY_WINDOW,
            log_level=getattr(logging, level_name.upper()),
            log_format=env_choice(ROUTERSCOPE_LOG_FORMAT, DEFAULT_LOG_FORMAT, LOG_FORMATS, e),
            logs=env_bool(ROUTERSCOPE_LOGS, DEFAULT_LOGS, e),
            genai=env_bool(ROUTERSCOPE_GENAI, DEFAULT_GENAI, e),
            pool_counting=env_bool(ROUTERSCOPE_POOL_COUNTING, DEFAULT_POOL_COUNTING, e),
            instrument_httpx=env_bool(ROUTERSCOPE_INSTRUMENT_HTTPX, DEFAULT_INSTRUMENT_CLIENT, e),
            instrument_httpx2=env_bool(ROUTERSCOPE_INSTRUMENT_HTTPX2, DEFAULT_INSTRUMENT_CLIENT, e),
            instrument_aiohttp=env_bool(ROUTERSCOPE_INSTRUMENT_AIOHTTP, DEFAULT_INSTRUMENT_CLIENT, e),
            disabled_instrumentations=frozenset(
                n.strip() for n in e.get(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "").split(",")
                if n.strip()),
            service_version=e.get(ROUTERSCOPE_SERVICE_VERSION) or DEFAULT_SERVICE_VERSION,
            shutdown_timeout=env_float(ROUTERSCOPE_SHUTDOWN_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, e,
                                       maximum=MAX_SHUTDOWN_TIMEOUT) or DEFAULT_SHUTDOWN_TIMEOUT,
            hardware_event=env_bool(ROUTERSCOPE_HARDWARE_EVENT, DEFAULT_HARDWARE_EVENT, e),
            capture_content=env_bool(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT,
                                     DEFAULT_CAPTURE_CONTENT, e),
            sdk=None if disabled else SdkArgs.from_env(e),
        )


SDK_METRICS_VAR: Final = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
_sdk_metrics_lock = threading.Lock()


@contextlib.contextmanager
def sdk_self_metrics() -> Iterator[None]:
    """``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true`` while SDK parts are built, then restored.

    The SDK reads the variable only when a processor or exporter is constructed.
    Left set, it would make every tracer created later count per span, and every
    request pay for one more variable (``requests`` walks the environment on each
    call). An application that set the variable itself keeps its value.
    """
    with _sdk_metrics_lock:
        owned = SDK_METRICS_VAR not in os.environ
        if owned:
            os.environ[SDK_METRICS_VAR] = "true"
        try:
            yield
        finally:
            if owned:
                os.environ.pop(SDK_METRICS_VAR, None)

