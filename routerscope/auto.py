"""One import instruments an existing router::

    import routerscope.auto  # first line of the router

Configures OpenTelemetry from the standard ``OTEL_*`` variables (default
endpoint: the local sidecar at http://127.0.0.1:4318) and the ``ROUTERSCOPE_*``
ones, instruments ``requests`` (stable HTTP semconv), records OpenAI-compatible
calls with the GenAI semantic conventions, counts connection reuse for every
urllib3 pool, records start-up phases, and starts the memory monitor. It never
raises into, blocks or slows the application: a missing part is logged once
and skipped.
"""

from routerscope.instrumentation import activate as _activate

_activate()
