"""Fixtures: a loopback provider speaking the OpenAI and Anthropic wire formats, an OTLP receiver."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from routerscope.testing import FakeProvider, OTLPReceiver, attrs_of

ROOT = Path(__file__).resolve().parents[2]
APP = str(Path(__file__).with_name("clients_app.py"))


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(stream_usage="requested", output_tokens=(4, 8)) as prov:
        yield prov


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as rx:
        yield rx


def env_for(rx: OTLPReceiver, prov: FakeProvider, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROUTERSCOPE_"))}
    env.update({
        "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url, "OTEL_SERVICE_NAME": "clients",
        "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "300",
        "ROUTERSCOPE_MEMORY_MONITOR": "false", "ROUTERSCOPE_HARDWARE_EVENT": "false",
        # LiteLLM fetches its model cost map from the network at import unless told not to
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "BASE": prov.base_url, "ANTHROPIC_BASE": prov.url, "PYTHONPATH": str(ROOT),
        **extra,
    })
    return env


def run(argv: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def auto_argv(code: str = "") -> list[str]:
    """``python -c 'import routerscope.auto; <code>; run clients_app'``."""
    return [sys.executable, "-c", "import routerscope.auto\n" + code + "\nimport runpy\n"
            f"runpy.run_path({APP!r}, run_name='__main__')\n"]


def count(rx: OTLPReceiver, metric: str, **where: Any) -> int:
    """Records of a cumulative histogram (the latest point of each series) whose attributes match."""
    latest: dict[Any, int] = {}
    for p in rx.data_points(metric):
        a = attrs_of(p.attributes)
        if all(a.get(k.replace("_", ".")) == v for k, v in where.items()):
            key = tuple(sorted((k, repr(v)) for k, v in a.items()))
            latest[key] = max(latest.get(key, 0), int(p.count))
    return sum(latest.values())


@dataclass
class Seen:
    """What the receiver got from one run: the spans and, for each case, its GenAI spans."""

    spans: list[Any]

    def case(self, name: str) -> Any:
        return next(s for s in self.spans if s.name == f"case {name}")

    def children(self, name: str) -> list[Any]:
        parent = self.case(name)
        return [s for s in self.spans if s.parent_span_id == parent.span_id]

    def genai(self, name: str) -> list[dict[str, Any]]:
        """Attributes of the GenAI spans anywhere under case ``name``."""
        parent = self.case(name)
        out, todo = [], [parent.span_id]
        while todo:
            sid = todo.pop()
            for s in self.spans:
                if s.parent_span_id == sid:
                    todo.append(s.span_id)
                    a = attrs_of(s.attributes)
                    if "gen_ai.operation.name" in a:
                        out.append(a)
        return out
