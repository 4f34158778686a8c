"""Settings from the environment: the standard ``OTEL_*`` variables and ours.

A bad value never raises: it is logged once (naming the variable, the value
and the default used) and the default applies. Every default is a named
constant beside its variable, as in the OpenTelemetry SDK.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

_logger = logging.getLogger("routerscope.telemetry")

DEFAULT_ENDPOINT: Final = "http://127.0.0.1:4318"
"""The local sidecar (``routerscope sidecar``)."""

# Our knobs. The README's table is generated from this one (tests compare them).
ROUTERSCOPE_MEMORY_MONITOR: Final = "ROUTERSCOPE_MEMORY_MONITOR"
ROUTERSCOPE_MEMORY_INTERVAL: Final = "ROUTERSCOPE_MEMORY_INTERVAL"
ROUTERSCOPE_MEMORY_RSS_LIMIT_MB: Final = "ROUTERSCOPE_MEMORY_RSS_LIMIT_MB"
ROUTERSCOPE_MEMORY_WINDOW: Final = "ROUTERSCOPE_MEMORY_WINDOW"
ROUTERSCOPE_LOG_LEVEL: Final = "ROUTERSCOPE_LOG_LEVEL"
ROUTERSCOPE_LOG_FORMAT: Final = "ROUTERSCOPE_LOG_FORMAT"
ROUTERSCOPE_SERVICE_VERSION: Final = "ROUTERSCOPE_SERVICE_VERSION"
ROUTERSCOPE_SHUTDOWN_TIMEOUT: Final = "ROUTERSCOPE_SHUTDOWN_TIMEOUT"
ROUTERSCOPE_HARDWARE_EVENT: Final = "ROUTERSCOPE_HARDWARE_EVENT"

ENV_DOC: Final[dict[str, tuple[str, str]]] = {
    ROUTERSCOPE_MEMORY_MONITOR: ("1", "start the memory monitor on `import routerscope.auto` (0 = off)"),
    ROUTERSCOPE_MEMORY_INTERVAL: ("1", "memory sampling interval, seconds"),
    ROUTERSCOPE_MEMORY_RSS_LIMIT_MB: ("unset", "RSS limit for the memory alerts (warning at 80 %)"),
    ROUTERSCOPE_MEMORY_WINDOW: ("300", "seconds of samples behind the trend and leak detection"),
    ROUTERSCOPE_LOG_LEVEL: ("INFO", "level of routerscope's own events"),
    ROUTERSCOPE_LOG_FORMAT: ("auto", "console output of events: `json`, `console`, `none`; "
                             "`auto` = JSON to stderr when the app set up no logging"),
    ROUTERSCOPE_SERVICE_VERSION: ("unset", "`service.version` resource attribute"),
    ROUTERSCOPE_SHUTDOWN_TIMEOUT: ("5", "seconds `shutdown()` may take to flush, endpoint up or not"),
    ROUTERSCOPE_HARDWARE_EVENT: ("1", "emit the detected hardware once after start-up (0 = off)"),
    "ROUTERSCOPE_SIDECAR_TOKEN": ("unset", "bearer token the sidecar requires (`routerscope "
                                  "sidecar --token`)"),
}

_warned: set[str] = set()


def _warn_once(name: str, value: str, default: object, why: str) -> None:
    if name in _warned:
        return
    _warned.add(name)
    _logger.warning("ignoring %s=%r (%s); using %r", name, value, why, default)


def env_bool(name: str, default: bool, env: Mapping[str, str] | None = None) -> bool:
    raw = (env if env is not None else os.environ).get(name)
    if raw is None or raw.strip() == "":
        return default
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    _warn_once(name, raw, default, "expected true/false")
    return default


def env_float(name: str, default: float | None, env: Mapping[str, str] | None = None, *,
              minimum: float = 0.0) -> float | None:
    raw = (env if env is not None else os.environ).get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        _warn_once(name, raw, default, "expected a number")
        return default
    if value <= minimum:
        _warn_once(name, raw, default, f"must be > {minimum}")
        return default
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...],
               env: Mapping[str, str] | None = None) -> str:
    raw = (env if env is not None else os.environ).get(name)
    if raw is None or raw.strip() == "":
        return default
    v = raw.strip().lower()
    if v not in choices:
        _warn_once(name, raw, default, f"expected one of {', '.join(choices)}")
        return default
    return v


@dataclass(frozen=True)
class Settings:
    sdk_disabled: bool
    memory_monitor: bool
    memory_interval: float
    memory_rss_limit_mb: float | None
    memory_window: float
    log_level: int
    log_format: str
    service_version: str | None
    shutdown_timeout: float
    hardware_event: bool
    capture_content: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = env if env is not None else os.environ
        level_name = env_choice(ROUTERSCOPE_LOG_LEVEL, "info",
                                ("debug", "info", "warning", "error"), e)
        return cls(
            sdk_disabled=env_bool("OTEL_SDK_DISABLED", False, e),
            memory_monitor=env_bool(ROUTERSCOPE_MEMORY_MONITOR, True, e),
            memory_interval=env_float(ROUTERSCOPE_MEMORY_INTERVAL, 1.0, e) or 1.0,
            memory_rss_limit_mb=env_float(ROUTERSCOPE_MEMORY_RSS_LIMIT_MB, None, e),
            memory_window=env_float(ROUTERSCOPE_MEMORY_WINDOW, 300.0, e) or 300.0,
            log_level=getattr(logging, level_name.upper()),
            log_format=env_choice(ROUTERSCOPE_LOG_FORMAT, "auto",
                                  ("auto", "json", "console", "none"), e),
            service_version=e.get(ROUTERSCOPE_SERVICE_VERSION) or None,
            shutdown_timeout=env_float(ROUTERSCOPE_SHUTDOWN_TIMEOUT, 5.0, e) or 5.0,
            hardware_event=env_bool(ROUTERSCOPE_HARDWARE_EVENT, True, e),
            capture_content=env_bool("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
                                     False, e),
        )


def otlp_endpoint_set(signal: str, env: Mapping[str, str] | None = None) -> bool:
    e = env if env is not None else os.environ
    return bool(e.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or e.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"))
