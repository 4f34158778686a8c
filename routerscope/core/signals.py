"""Every metric, span, attribute and event name routerscope emits, in one place.

The code and the dashboards both import from here, so a renamed metric breaks
the dashboard build rather than leaving an empty panel. Names follow the
OpenTelemetry semantic conventions where one exists (GenAI, HTTP, process,
system); everything else lives under ``routerscope.*``.

Each metric is a :class:`Metric` carrying its name, unit, kind and description,
and :meth:`Metric.prometheus_name` gives the name it has once an OTLP receiver
with Prometheus naming (Prometheus 3, VictoriaMetrics
``-opentelemetry.usePrometheusNaming``) has translated it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "ALL_METRICS",
    "Metric",
]

MetricKind = Literal["counter", "updowncounter", "histogram", "gauge"]

# Prometheus' OTLP translator: units in curly braces are dropped, a few UCUM
# units get words, and "X/Y" becomes "X_per_Y".
_UNIT_WORDS: Final = {
    "s": "seconds",
    "ms": "milliseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "1": "ratio",
    "%": "percent",
    "min": "minutes",
}


def _unit_suffix(unit: str) -> str:
    unit = re.sub(r"\{[^}]*\}", "", unit)
    if not unit:
        return ""
    if "/" in unit:
        num, _, den = unit.partition("/")
        num_word = _UNIT_WORDS.get(num, num)
        den_word = {"s": "second", "min": "minute", "h": "hour"}.get(den, den)
        return f"{num_word}_per_{den_word}" if num_word else f"per_{den_word}"
    return _UNIT_WORDS.get(unit, unit)


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric: its OpenTelemetry name, unit, instrument kind and meaning."""

    name: str
    unit: str
    kind: MetricKind
    description: str
    #: explicit bucket boundaries for a histogram, handed to the SDK as the API's
    #: ``explicit_bucket_boundaries_advisory`` (None: the SDK's defaults)
    buckets: tuple[float, ...] | None = None

    def prometheus_name(self) -> str:
        """The name after OTLP-to-Prometheus translation (without histogram suffixes)."""
        base = re.sub(r"[^a-zA-Z0-9_]", "_", self.name)
        suffix = _unit_suffix(self.unit)
        if suffix and not base.endswith("_" + suffix):
            base = f"{base}_{suffix}"
        if self.kind == "counter":
            base += "_total"
        return base



# --- histogram bucket boundaries (advisory; each histogram below names its own) ----------

#: GenAI semantic conventions' recommended boundaries for operation duration (s)
DURATION_BUCKETS_GENAI: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12,
                                 10.24, 20.48, 40.96, 81.92)
#: GenAI semantic conventions' recommended boundaries for token usage
TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                        16777216, 67108864)
#: HTTP semantic conventions' recommended boundaries for request duration (s)
#: GenAI semantic conventions' recommended boundaries for time per output chunk (s)
CHUNK_BUCKETS: Final = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
HTTP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
INIT_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                       30, 60)
SEND_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                       5, 10)

# --- attribute keys: OpenTelemetry semantic conventions --------------------------------

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
URL_FULL: Final = "url.full"
URL_SCHEME: Final = "url.scheme"
SERVICE_NAME: Final = "service.name"

# gen_ai.operation.name values
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EMBEDDINGS: Final = "embeddings"
# gen_ai.token.type values
TOKEN_INPUT: Final = "input"
TOKEN_OUTPUT: Final = "output"

# --- attribute keys: routerscope --------------------------------------------------------

ATTR_RETRY_REASON: Final = "routerscope.retry.reason"
ATTR_LAZY_OWNER: Final = "routerscope.lazy.owner"
ATTR_LAZY_ATTRIBUTE: Final = "routerscope.lazy.attribute"
ATTR_STARTUP_PHASE: Final = "routerscope.startup.phase"
ATTR_CACHE_NAME: Final = "routerscope.cache.name"
ATTR_CACHE_RESULT: Final = "routerscope.cache.result"
ATTR_CACHE_EVICTION_REASON: Final = "routerscope.cache.eviction.reason"
ATTR_MEMORY_ALERT_KIND: Final = "routerscope.memory.alert.kind"
ATTR_MEMORY_STATE: Final = "system.memory.state"
ATTR_DEVICE: Final = "routerscope.device"
ATTR_WHERE: Final = "routerscope.where"
ATTR_MODEL: Final = "routerscope.model"
ATTR_SIDECAR_SIGNAL: Final = "routerscope.sidecar.signal"
ATTR_SIDECAR_DROP_REASON: Final = "routerscope.sidecar.drop.reason"
ATTR_SIDECAR_OUTCOME: Final = "routerscope.sidecar.outcome"

# routerscope.startup.phase values
PHASE_IMPORT: Final = "import"
PHASE_FIRST_REQUEST: Final = "first_request"
PHASE_READY: Final = "ready"
# routerscope.cache.result values
CACHE_HIT: Final = "hit"
CACHE_MISS: Final = "miss"
# routerscope.cache.eviction.reason values
EVICT_CAPACITY: Final = "capacity"
EVICT_EXPIRED: Final = "expired"
EVICT_EXPLICIT: Final = "explicit"

# --- metrics: semantic conventions -----------------------------------------------------

GEN_AI_CLIENT_OPERATION_DURATION: Final = Metric(
    "gen_ai.client.operation.duration", "s", "histogram", "GenAI operation duration.",
    buckets=DURATION_BUCKETS_GENAI,
)
GEN_AI_CLIENT_TOKEN_USAGE: Final = Metric(
    "gen_ai.client.token.usage", "{token}", "histogram", "Number of input and output tokens used.",
    buckets=TOKEN_BUCKETS,
)
GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK: Final = Metric(
    "gen_ai.client.operation.time_to_first_chunk", "s", "histogram",
    "Time from the request to the first chunk of a streamed response.",
    buckets=DURATION_BUCKETS_GENAI,
)
GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK: Final = Metric(
    "gen_ai.client.operation.time_per_output_chunk", "s", "histogram",
    "Time between consecutive chunks of a streamed response, after the first.",
    buckets=CHUNK_BUCKETS,
)
HTTP_CLIENT_REQUEST_DURATION: Final = Metric(
    "http.client.request.duration", "s", "histogram", "Duration of HTTP client requests.",
    buckets=HTTP_BUCKETS,
)
PROCESS_MEMORY_USAGE: Final = Metric(
    "process.memory.usage", "By", "gauge", "The amount of physical memory in use (RSS)."
)
PROCESS_MEMORY_VIRTUAL: Final = Metric(
    "process.memory.virtual", "By", "gauge", "The amount of committed virtual memory (VMS)."
)
SYSTEM_MEMORY_UTILIZATION: Final = Metric(
    "system.memory.utilization", "1", "gauge", "Fraction of system memory in use."
)

# --- metrics: routerscope --------------------------------------------------------------

POOL_CONNECTIONS: Final = Metric(
    "routerscope.pool.connections",
    "{connection}",
    "counter",
    "New connections opened by urllib3 pools, per server.address.",
)
POOL_REQUESTS: Final = Metric(
    "routerscope.pool.requests",
    "{request}",
    "counter",
    "HTTP requests sent over urllib3 pools, per server.address; reuse = 1 - connections/requests.",
)
POOL_RETRIES: Final = Metric(
    "routerscope.pool.retries",
    "{retry}",
    "counter",
    "HTTP retries by reason (status code or error type).",
)
LAZY_INIT_DURATION: Final = Metric(
    "routerscope.lazy.init.duration",
    "s",
    "histogram",
    "Time taken by each lazy initialisation, by owner class and attribute.",
    buckets=INIT_BUCKETS,
)
STARTUP_DURATION: Final = Metric(
    "routerscope.startup.duration",
    "s",
    "histogram",
    "Seconds from process start to a start-up phase (import, first_request, ready).",
    buckets=INIT_BUCKETS,
)
CACHE_REQUESTS: Final = Metric(
    "routerscope.cache.requests", "{request}", "counter", "Model cache look-ups by result (hit/miss)."
)
CACHE_EVICTIONS: Final = Metric(
    "routerscope.cache.evictions", "{eviction}", "counter", "Model cache evictions by reason."
)
CACHE_MEMORY_USAGE: Final = Metric(
    "routerscope.cache.memory.usage", "By", "gauge", "Bytes held by the model cache."
)
CACHE_MEMORY_LIMIT: Final = Metric(
    "routerscope.cache.memory.limit", "By", "gauge", "Byte budget of the model cache."
)
CACHE_ENTRIES: Final = Metric(
    "routerscope.cache.entries", "{entry}", "gauge", "Models held by the model cache."
)
CACHE_LOAD_DURATION: Final = Metric(
    "routerscope.cache.load.duration", "s", "histogram", "Time to load a model on a cache miss.",
    buckets=INIT_BUCKETS,
)
MEMORY_TREND: Final = Metric(
    "routerscope.memory.trend", "By/s", "gauge",
    "Robust (Theil-Sen) slope of process RSS over the monitor's window, bytes per second.",
)
MEMORY_LEAK_SUSPECTED: Final = Metric(
    "routerscope.memory.leak_suspected",
    "1",
    "gauge",
    "1 while the memory monitor suspects a leak (steady RSS growth; see core/memory.py).",
)
MEMORY_RSS_LIMIT: Final = Metric(
    "routerscope.memory.rss_limit", "By", "gauge", "The memory monitor's RSS alert limit, when set."
)
MEMORY_ALERTS: Final = Metric(
    "routerscope.memory.alerts", "{alert}", "counter", "Memory alerts raised, by kind."
)
MEMORY_CUDA_ALLOCATED: Final = Metric(
    "routerscope.memory.cuda.allocated", "By", "gauge", "CUDA memory allocated by tensors, per device."
)
MEMORY_CUDA_RESERVED: Final = Metric(
    "routerscope.memory.cuda.reserved", "By", "gauge", "CUDA memory reserved by the caching allocator."
)
BATCH_RECOMMENDED_SIZE: Final = Metric(
    "routerscope.batch.recommended_size",
    "{sequence}",
    "gauge",
    "Largest batch that fits, per model and device, at the reference context length.",
)
BATCH_RECOMMENDED_CONTEXT: Final = Metric(
    "routerscope.batch.recommended_context",
    "{token}",
    "gauge",
    "Longest context that fits at batch size 1, per model and device.",
)
SIDECAR_QUEUE_REQUESTS: Final = Metric(
    "routerscope.sidecar.queue.requests", "{request}", "gauge", "Requests waiting in the sidecar spool."
)
SIDECAR_QUEUE_BYTES: Final = Metric(
    "routerscope.sidecar.queue.size", "By", "gauge", "Bytes waiting in the sidecar spool."
)
SIDECAR_RECEIVED: Final = Metric(
    "routerscope.sidecar.received", "{request}", "counter", "OTLP requests accepted by the sidecar."
)
SIDECAR_SHIPPED: Final = Metric(
    "routerscope.sidecar.shipped", "{request}", "counter", "OTLP requests delivered upstream."
)
SIDECAR_RETRIES: Final = Metric(
    "routerscope.sidecar.retries", "{retry}", "counter", "Upstream send attempts that were retried."
)
SIDECAR_DROPPED: Final = Metric(
    "routerscope.sidecar.dropped", "{request}", "counter", "OTLP requests dropped, by reason."
)
SIDECAR_SEND_DURATION: Final = Metric(
    "routerscope.sidecar.send.duration", "s", "histogram", "Duration of each upstream send attempt.",
    buckets=SEND_BUCKETS,
)
TELEMETRY_INTERNAL_ERRORS: Final = Metric(
    "routerscope.telemetry.internal_errors", "{error}", "counter",
    "Errors inside routerscope's own telemetry code, caught so the host never sees them, by place.",
)
TELEMETRY_DEFERRED_DROPPED: Final = Metric(
    "routerscope.telemetry.deferred.dropped", "{record}", "counter",
    "Metric records dropped because the deferred-recording queue was full.",
)
# The SDK's own self-observability (semconv "otel.sdk.*"), on when routerscope.telemetry
# configures the SDK (it builds the SDK's processors and exporters with
# OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true unless the app set it).
OTEL_SDK_SPAN_PROCESSED: Final = Metric(
    "otel.sdk.processor.span.processed", "{span}", "counter",
    "Spans processed by the batch processor; error.type=queue_full marks dropped ones.",
)
OTEL_SDK_SPAN_QUEUE_SIZE: Final = Metric(
    "otel.sdk.processor.span.queue.size", "{span}", "updowncounter",
    "Spans waiting in the batch span processor's queue.",
)
OTEL_SDK_LOG_PROCESSED: Final = Metric(
    "otel.sdk.processor.log.processed", "{log_record}", "counter",
    "Log records processed by the batch processor; error.type marks dropped ones.",
)
OTEL_SDK_SPAN_EXPORTED: Final = Metric(
    "otel.sdk.exporter.span.exported", "{span}", "counter",
    "Spans exported; error.type marks failed exports.",
)
OTEL_SDK_LOG_EXPORTED: Final = Metric(
    "otel.sdk.exporter.log.exported", "{log_record}", "counter",
    "Log records exported; error.type marks failed exports.",
)
OTEL_SDK_METRIC_POINTS_EXPORTED: Final = Metric(
    "otel.sdk.exporter.metric_data_point.exported", "{data_point}", "counter",
    "Metric data points exported; error.type marks failed exports.",
)

ALL_METRICS: Final[tuple[Metric, ...]] = tuple(v for v in globals().values() if isinstance(v, Metric))

# --- spans -----------------------------------------------------------------------------

SPAN_LAZY_INIT: Final = "routerscope.lazy_init"
SPAN_CACHE_LOAD: Final = "routerscope.cache.load"
# GenAI client spans are named "{gen_ai.operation.name} {gen_ai.request.model}".

# --- structured events (structlog event names; the seed's wording kept) ----------------

EVENT_LAZY_INIT: Final = "Initializing {name} (lazy load)"
EVENT_READY: Final = "Router ready"
EVENT_RETRY: Final = "Retrying request"
EVENT_LLM_CALL: Final = "LLM call"
EVENT_LLM_ERROR: Final = "LLM call failed"
EVENT_CACHE_HIT: Final = "Cache hit"
EVENT_CACHE_MISS: Final = "Cache miss"
EVENT_CACHE_EVICT: Final = "Cache eviction"
EVENT_MEMORY_ALERT: Final = "MEMORY ALERT"
EVENT_MEMORY_RECOVERED: Final = "Memory alert cleared"
EVENT_LEAK_SUSPECTED: Final = "Memory leak suspected"
EVENT_HARDWARE: Final = "Hardware detected"
EVENT_BATCH_RECOMMENDATION: Final = "Batch recommendation"
