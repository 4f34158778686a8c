"""Entry points for ``opentelemetry-instrument python app.py``.

The distro sets routerscope's defaults (endpoint: the local sidecar); the
configurator sets up the SDK as :func:`routerscope.telemetry.configure` does
and the rest of ``routerscope.auto`` (GenAI, pools, start-up, memory), leaving
library instrumentation to ``opentelemetry-instrument``'s own loader.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from routerscope.telemetry import DEFAULT_ENDPOINT

try:
    from opentelemetry.sdk._configuration import _BaseConfigurator
except ImportError:  # pragma: no cover
    _BaseConfigurator = object  # type: ignore[assignment,misc]


class RouterscopeDistro(BaseDistro):  # type: ignore[misc]
    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = DEFAULT_ENDPOINT
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        super().load_instrumentor(entry_point, **kwargs)
        if entry_point.name == "requests":  # put the GenAI wrapper back on top of the HTTP one
            from routerscope.instrumentation._requests import reorder

            reorder()


class RouterscopeConfigurator(_BaseConfigurator):
    def _configure(self, **kwargs: Any) -> None:
        from routerscope.instrumentation import activate

        activate(instrument_requests=False)
