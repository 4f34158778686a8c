"""Structured events: structlog and stdlib logging, to the console and to OTel logs.

* structlog (when the application has not configured it) renders through
  stdlib logging, like routerscope's own events, so one set of handlers sees
  everything.
* :class:`OTelLogHandler` turns every record into an OTel log record: the
  message as body, the structured fields as attributes, the current span's
  trace and span ids, so a log line in Loki links to its trace in Tempo.
* Console output is JSON (timestamp, level, event, logger, fields, and
  ``trace_id``/``span_id`` inside a span) or a human console format.
* Secrets are redacted on both handlers (:mod:`._redact`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from time import time_ns
from typing import Any, Final

from opentelemetry import trace
from opentelemetry._logs import LoggerProvider, LogRecord, SeverityNumber, get_logger
from opentelemetry.context import get_current

from routerscope.telemetry._redact import RedactingFilter

__all__ = ["OTelLogHandler", "add_trace_context", "install_logging", "uninstall_logging"]

_RESERVED: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "_record", "_from_structlog", "_logger", "_name",
}
_SEVERITY: Final = {
    logging.DEBUG: (SeverityNumber.DEBUG, "DEBUG"),
    logging.INFO: (SeverityNumber.INFO, "INFO"),
    logging.WARNING: (SeverityNumber.WARN, "WARN"),
    logging.ERROR: (SeverityNumber.ERROR, "ERROR"),
    logging.CRITICAL: (SeverityNumber.FATAL, "FATAL"),
}
# Records from these loggers never go to OTel: the export path itself logs through
# them, and shipping its failures through itself would loop.
_SKIP_PREFIXES: Final = ("opentelemetry", "urllib3", "requests")


_configured_structlog = False


def add_trace_context(_logger: Any, _method: str,
                      event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id`` and ``span_id`` of the current span, if any."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict


def _primitive(v: Any) -> Any:
    if isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, list | tuple) and all(isinstance(x, bool | int | float | str) for x in v):
        return list(v)
    return str(v)


class OTelLogHandler(logging.Handler):
    """A stdlib handler that emits OTel log records through a LoggerProvider."""

    def __init__(self, provider: LoggerProvider, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._provider = provider
        self.addFilter(RedactingFilter())

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(_SKIP_PREFIXES):
            return False
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            attrs: dict[str, Any] = {
                k: _primitive(v) for k, v in vars(record).items()
                if k not in _RESERVED and v is not None and not k.startswith("_")
            }
            attrs["code.function.name"] = record.funcName
            attrs["code.line.number"] = record.lineno
            if record.exc_info and record.exc_info[0] is not None:
                attrs["exception.type"] = record.exc_info[0].__name__
                attrs["exception.message"] = str(record.exc_info[1])
            sev, text = _SEVERITY.get(record.levelno, (SeverityNumber.UNSPECIFIED, record.levelname))
            get_logger(record.name, logger_provider=self._provider).emit(LogRecord(
                timestamp=int(record.created * 1e9), observed_timestamp=time_ns(),
                context=get_current(), severity_text=text, severity_number=sev,
                body=record.getMessage(), attributes=attrs,
            ))
        except Exception:  # noqa: BLE001 - never raise into the application
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - stdlib name
        pass  # counted by the SDK's processor metrics; printing tracebacks would spam


def _formatter(kind: str) -> logging.Formatter:
    import structlog

    renderer: Any = (structlog.processors.JSONRenderer(default=str) if kind == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ExtraAdder(),
            add_trace_context,
        ],
    )


class _LazyFormatter(logging.Formatter):
    """Builds the structlog formatter on the first record (structlog's import waits)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self._kind = kind
        self._inner: logging.Formatter | None = None

    def format(self, record: logging.LogRecord) -> str:
        if self._inner is None:
            self._inner = _formatter(self._kind)
        return self._inner.format(record)


def _configure_structlog(module: Any = None) -> None:
    """Route the app's structlog events through stdlib logging, unless it set structlog up."""
    global _configured_structlog
    import structlog

    if structlog.is_configured():
        return
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars,
                    structlog.stdlib.filter_by_level,
                    structlog.processors.StackInfoRenderer(),
                    structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    _configured_structlog = True


_installed: list[tuple[logging.Logger, logging.Handler]] = []


def install_logging(provider: LoggerProvider | None, *, level: int, fmt: str) -> None:
    """Attach the OTel handler (if ``provider``) and a console handler per ``fmt``."""
    global _configured_structlog
    root = logging.getLogger()
    ours = logging.getLogger("routerscope")
    ours.setLevel(level)
    app_has_logging = bool(root.handlers)
    if fmt == "auto":
        fmt = "none" if app_has_logging else "json"
    if provider is not None:
        h: logging.Handler = OTelLogHandler(provider, level=logging.INFO)
        root.addHandler(h)
        _installed.append((root, h))
    if fmt in ("json", "console"):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(_LazyFormatter(fmt))
        console.addFilter(RedactingFilter())
        # with no logging set up, the app's records get the console too; otherwise
        # its own handlers show them and ours shows only routerscope's events
        target = ours if app_has_logging else root
        if not app_has_logging and root.level > level:
            root.setLevel(level)
        target.addHandler(console)
        _installed.append((target, console))
    if "structlog" in sys.modules:
        _configure_structlog()
    else:  # configure it when (if) the application imports it
        try:
            import wrapt

            wrapt.register_post_import_hook(_configure_structlog, "structlog")
        except ImportError:
            _configure_structlog()


def uninstall_logging() -> None:
    global _configured_structlog
    for logger, handler in _installed:
        logger.removeHandler(handler)
        handler.close()
    _installed.clear()
    if _configured_structlog:
        import structlog

        structlog.reset_defaults()
        _configured_structlog = False
