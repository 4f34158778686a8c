"""Log records to OTel logs, leaving the host's logging as it was.

* :class:`OTelLogHandler` sits on the root logger at level NOTSET, so it
  exports exactly what the application's logger levels let through (root's
  level is never changed): the message as body, the ``extra`` fields as
  attributes, the current span's trace and span ids. It redacts a copy and
  never mutates the record the application's own handlers format. While it is
  the only handler a record reaches, it hands the record to
  ``logging.lastResort`` as the stdlib would have, so what prints on stderr is
  what printed without it. ``logging.basicConfig``/``dictConfig``/``fileConfig``
  are wrapped (as the OpenTelemetry SDK does) so that the handler does not make
  them a no-op and survives them.
* structlog, when the application left it unconfigured, keeps its own output;
  a processor inserted before its renderer copies each event to OTel logs.
* routerscope's own events go to the ``routerscope`` logger at
  ``ROUTERSCOPE_LOG_LEVEL`` and are exported at that level. The host sees them
  as it would see any library's: :class:`_ToHost` hands the application's own
  handlers (or ``logging.lastResort``) only what the application's root level
  lets through — by default warnings, once each, whenever the application set
  up its logging. ``ROUTERSCOPE_LOG_FORMAT=json|console`` asks for routerscope's
  own console instead (JSON or console lines on stderr, at its level).
* Redaction (:mod:`._redact`) fails closed: a record whose redaction fails is
  not exported.
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

from routerscope.core import otel
from routerscope.telemetry._redact import RedactingFilter, redact, redact_value

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
_OURS: Final = "routerscope"  # the logger of routerscope's own events (see _ToHost)


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


def _other_handlers(record: logging.LogRecord, mine: logging.Handler) -> bool:
    """Whether ``record`` reaches a handler other than ``mine`` (as ``callHandlers`` walks)."""
    c: logging.Logger | None = logging.getLogger(record.name) if record.name != "root" else None
    while c is not None:
        for h in c.handlers:
            if h is not mine:
                return True
        if not c.propagate:
            return False
        c = c.parent
    return any(h is not mine for h in logging.root.handlers)


class _NotOurTraffic(logging.Filter):
    """Drops urllib3's records about telemetry's own requests (the exporters' POSTs).

    The SDK marks its export calls with the suppress-instrumentation context key;
    an app logging urllib3 at DEBUG would otherwise see a line per export.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_value

        return not get_value(_SUPPRESS_INSTRUMENTATION_KEY)


_HTTP_LOGGERS: Final = ("urllib3.connectionpool", "urllib3.util.retry")


class _ToHost(logging.Handler):
    """Hands a routerscope record to the application's handlers as if it had propagated.

    The ``routerscope`` logger does not propagate (its level may be below the
    application's); this handler gives the application exactly what its root
    level lets through, through its own handlers, or ``logging.lastResort``
    when it has none — so the host's output is what any library would produce.
    """

    def handle(self, record: logging.LogRecord) -> bool:
        root = logging.getLogger()
        if record.levelno < root.getEffectiveLevel():
            return False
        handlers = [h for h in root.handlers if not isinstance(h, OTelLogHandler)]
        if not handlers:
            if logging.lastResort is not None and record.levelno >= logging.lastResort.level:
                logging.lastResort.handle(record)
            return True
        for h in handlers:
            if record.levelno >= h.level:
                h.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # handle() does the work
        return


class OTelLogHandler(logging.Handler):
    """A stdlib handler that emits OTel log records through a LoggerProvider."""

    def __init__(self, provider: LoggerProvider, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._provider = provider

    def handle(self, record: logging.LogRecord) -> bool:
        if (logging.lastResort is not None and record.levelno >= logging.lastResort.level
                and not record.name.startswith(_OURS) and not _other_handlers(record, self)):
            logging.lastResort.handle(record)  # what the stdlib does when no handler is found
        if record.name.startswith(_SKIP_PREFIXES):
            return False
        return bool(super().handle(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            body, attrs = _redacted(record)
        except Exception:  # noqa: BLE001 - fail closed: not exported rather than partly redacted
            otel.swallowed("logs.redact")
            return
        try:
            sev, text = _SEVERITY.get(record.levelno, (SeverityNumber.UNSPECIFIED, record.levelname))
            get_logger(record.name, logger_provider=self._provider).emit(LogRecord(
                timestamp=int(record.created * 1e9), observed_timestamp=time_ns(),
                context=get_current(), severity_text=text, severity_number=sev,
                body=body, attributes=attrs,
            ))
        except Exception:  # noqa: BLE001 - never raise into the application
            otel.swallowed("logs.emit")


def _redacted(record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
    """The record's message and extra fields as OTel body and attributes, secrets redacted."""
    attrs: dict[str, Any] = {
        k: redact_value(_primitive(v)) for k, v in vars(record).items()
        if k not in _RESERVED and v is not None and not k.startswith("_")
    }
    attrs["code.function.name"] = record.funcName
    attrs["code.line.number"] = record.lineno
    if record.exc_info and record.exc_info[0] is not None:
        attrs["exception.type"] = record.exc_info[0].__name__
        attrs["exception.message"] = redact(str(record.exc_info[1]))
    return redact(record.getMessage()), attrs


class _StructlogToOTel:
    """structlog processor: copies each event to OTel logs and passes it on unchanged."""

    def __init__(self, provider: LoggerProvider) -> None:
        self._provider = provider

    def __call__(self, logger: Any, method: str,
                 event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        try:
            body = redact(str(event_dict.get("event", "")))
            attrs = {str(k): redact_value(_primitive(v)) for k, v in event_dict.items()
                     if k != "event" and v is not None}
        except Exception:  # noqa: BLE001 - fail closed: not exported rather than partly redacted
            otel.swallowed("logs.redact")
            return event_dict
        try:
            level = logging.getLevelName(method.upper())
            sev, text = _SEVERITY.get(level if isinstance(level, int) else logging.INFO,
                                      (SeverityNumber.INFO, "INFO"))
            name = str(event_dict.get("logger") or getattr(logger, "name", None) or "structlog")
            get_logger(name, logger_provider=self._provider).emit(LogRecord(
                timestamp=time_ns(), observed_timestamp=time_ns(), context=get_current(),
                severity_text=text, severity_number=sev, body=body, attributes=attrs))
        except Exception:  # noqa: BLE001 - never raise into the application
            otel.swallowed("logs.structlog")
        return event_dict


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


_structlog_processor: _StructlogToOTel | None = None


def _hook_structlog(_module: Any = None) -> None:
    """Copy the app's structlog events to OTel logs, unless the app configured structlog.

    An app that configured structlog onto stdlib logging is already covered by
    the root handler; one that left the defaults keeps their output, with
    :class:`_StructlogToOTel` inserted before the renderer.
    """
    import structlog

    proc = _structlog_processor
    if proc is None or structlog.is_configured():
        return
    processors = structlog.get_config()["processors"]  # the live default list
    if proc not in processors:
        processors.insert(max(0, len(processors) - 1), proc)


def _unhook_structlog() -> None:
    import structlog

    processors = structlog.get_config()["processors"]
    if _structlog_processor in processors:
        processors.remove(_structlog_processor)


_installed: list[tuple[logging.Logger, logging.Handler]] = []
_config_fns: dict[str, Any] = {}


def _keep_handler_through_config(handler: logging.Handler) -> None:
    """Wrap the stdlib's config functions so ``handler`` neither blocks nor is lost by them."""
    import logging.config

    def wrap(fn: Any) -> Any:
        def configure_logging(*args: Any, **kwargs: Any) -> Any:
            root = logging.getLogger()
            present = handler in root.handlers
            if present:
                root.removeHandler(handler)
            try:
                return fn(*args, **kwargs)
            finally:
                if present:
                    root.addHandler(handler)
        configure_logging.__wrapped__ = fn  # type: ignore[attr-defined]
        return configure_logging

    _config_fns["basicConfig"] = logging.basicConfig
    _config_fns["dictConfig"] = logging.config.dictConfig
    _config_fns["fileConfig"] = logging.config.fileConfig
    logging.basicConfig = wrap(logging.basicConfig)
    logging.config.dictConfig = wrap(logging.config.dictConfig)
    logging.config.fileConfig = wrap(logging.config.fileConfig)


def _restore_config_fns() -> None:
    import logging.config

    for owner, name in ((logging, "basicConfig"), (logging.config, "dictConfig"),
                        (logging.config, "fileConfig")):
        original = _config_fns.pop(name, None)
        # put the original back only if nobody wrapped ours since
        if original is not None and getattr(getattr(owner, name), "__wrapped__", None) is original:
            setattr(owner, name, original)


_propagated = True
_filtered: list[tuple[str, logging.Filter]] = []


def install_logging(provider: LoggerProvider | None, *, level: int, fmt: str) -> None:
    """Attach the OTel handler to root (if ``provider``) and routerscope's console per ``fmt``.

    Root's level and the application's handlers are left as they are.
    """
    global _structlog_processor
    global _propagated
    root = logging.getLogger()
    ours = logging.getLogger(_OURS)
    ours.setLevel(level)
    _propagated = ours.propagate
    ours.propagate = False
    if fmt in ("json", "console"):  # asked for: routerscope's own console, at its level
        console: logging.Handler = logging.StreamHandler(sys.stderr)
        console.setFormatter(_LazyFormatter(fmt))
        console.addFilter(RedactingFilter())
    else:  # "auto": what the host's logging lets through, as for any library; "none": nothing
        console = _ToHost() if fmt == "auto" else logging.NullHandler()
        console.addFilter(RedactingFilter())
    ours.addHandler(console)
    _installed.append((ours, console))
    quiet = _NotOurTraffic()
    for name in _HTTP_LOGGERS:
        logging.getLogger(name).addFilter(quiet)
        _filtered.append((name, quiet))
    if provider is None:
        return
    h = OTelLogHandler(provider)
    root.addHandler(h)
    _installed.append((root, h))
    ours.addHandler(h)  # routerscope's records do not propagate: exported from here
    _installed.append((ours, h))
    _keep_handler_through_config(h)
    _structlog_processor = _StructlogToOTel(provider)
    if "structlog" in sys.modules:
        _hook_structlog()
    else:  # when (if) the application imports it
        try:
            import wrapt

            wrapt.register_post_import_hook(_hook_structlog, "structlog")
        except ImportError:  # without wrapt, only an app that imported structlog first is hooked
            otel.swallowed("logs.structlog_hook")


def unfilter_http_loggers() -> None:
    """Take the telemetry-traffic filters off urllib3's loggers (after the last export)."""
    for name, f in _filtered:
        logging.getLogger(name).removeFilter(f)
    _filtered.clear()


def uninstall_logging() -> None:
    global _structlog_processor
    for logger, handler in _installed:
        logger.removeHandler(handler)
        handler.close()
    _installed.clear()
    logging.getLogger(_OURS).propagate = _propagated
    _restore_config_fns()
    if _structlog_processor is not None and "structlog" in sys.modules:
        _unhook_structlog()
    _structlog_processor = None
