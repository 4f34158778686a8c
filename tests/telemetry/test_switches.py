"""Each switch in the README's "What the import changes in your process" turns its part off."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

import pytest

from routerscope.testing import OTLPReceiver

from .conftest import run_python

STATE = """
import logging, threading, requests, urllib3, routerscope.auto
from urllib3.connection import HTTPConnection
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from routerscope.instrumentation import wait_instrumented
wait_instrumented(2)
print(repr({
    "genai": requests.Session.send.__module__.startswith("routerscope"),
    "pool_counting": HTTPConnection.connect.__module__.startswith("routerscope"),
    "requests_instrumented": RequestsInstrumentor().is_instrumented_by_opentelemetry,
    "threads": sorted(t.name for t in threading.enumerate()),
    "root_handlers": [type(h).__name__ for h in logging.getLogger().handlers],
    "basicConfig": logging.basicConfig.__module__,
}))
"""


def _state(receiver: OTLPReceiver, **env: str) -> dict[str, object]:
    out = run_python(STATE, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **env})
    assert out.returncode == 0, out.stderr
    state = ast.literal_eval(out.stdout.splitlines()[-1])
    assert isinstance(state, dict)
    return state


@pytest.fixture(scope="module")
def on_state() -> dict[str, object]:
    """The state with no switch set (shared by the cases)."""
    with OTLPReceiver() as rx:
        return _state(rx)


@pytest.mark.parametrize(("switch", "check"), [
    ({"ROUTERSCOPE_GENAI": "0"}, lambda s: not s["genai"]),
    ({"ROUTERSCOPE_POOL_COUNTING": "0"}, lambda s: not s["pool_counting"]),
    ({"ROUTERSCOPE_MEMORY_MONITOR": "0"}, lambda s: "routerscope-memory" not in s["threads"]),
    ({"ROUTERSCOPE_HARDWARE_EVENT": "0"}, lambda s: "routerscope-hardware" not in s["threads"]),
    ({"ROUTERSCOPE_LOGS": "0"}, lambda s: s["root_handlers"] == [] and s["basicConfig"] == "logging"),
    ({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests"},
     lambda s: not s["requests_instrumented"]),
], ids=["genai", "pool-counting", "memory-monitor", "hardware-event", "logs", "requests"])
def test_switch_turns_its_part_off(receiver: OTLPReceiver, on_state: dict[str, object],
                                   switch: dict[str, str],
                                   check: Callable[[dict[str, Any]], bool]) -> None:
    """With the switch set the part is absent; without it, present."""
    off = _state(receiver, **switch)
    assert check(off), off
    assert not check(on_state), on_state
