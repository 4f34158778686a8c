"""Real processes on loopback: the sidecar, rotel, VictoriaMetrics."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests._wait import wait_until as wait_until  # re-exported for the sidecar tests

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
EXAMPLES = SHARED / "testdata" / "otlp-examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SidecarProc:
    """``routerscope sidecar`` as a subprocess on a free loopback port."""

    def __init__(self, spool: Path, upstream: str, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.spool = spool
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "routerscope", "sidecar", "--listen",
                     f"127.0.0.1:{self.port}", "--upstream", upstream, "--spool", str(spool),
                     "--self-metrics-interval", "0", "--grpc-listen", "off", *extra]
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = spool.parent / f"sidecar-{self.port}.log"

    def start(self, wait: bool = True) -> SidecarProc:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        with self.log.open("ab") as log:  # a file, not a pipe: a full pipe would block it
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
        if wait:
            assert wait_until(self.healthy, 30), self.output()
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"sidecar exited {self.proc.returncode}: {self.output()}")
        try:
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def status(self) -> dict[str, Any]:
        return requests.get(self.url + "/status", timeout=5).json()  # type: ignore[no-any-return]

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def post(self, signal_name: str, body: bytes, ctype: str = "application/x-protobuf",
             **headers: str) -> requests.Response:
        return requests.post(f"{self.url}/v1/{signal_name}", data=body, timeout=10,
                             headers={"Content-Type": ctype, **headers})


@pytest.fixture
def sidecar_factory(tmp_path: Path) -> Iterator[Callable[..., SidecarProc]]:
    made: list[SidecarProc] = []

    def make(upstream: str, *extra: str, spool: Path | None = None, port: int | None = None,
             start: bool = True) -> SidecarProc:
        sc = SidecarProc(spool or tmp_path / "spool", upstream, *extra, port=port)
        made.append(sc)
        return sc.start() if start else sc

    yield make
    for sc in made:
        if sc.proc is not None and sc.proc.poll() is None:
            sc.proc.kill()
            sc.proc.wait(10)


def span_request(name: str, n: int = 1) -> bytes:
    """An ExportTraceServiceRequest with ``n`` spans named ``name`` (protobuf bytes)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "sidecar-test"
    ss = rs.scope_spans.add()
    for i in range(n):
        sp = ss.spans.add()
        sp.trace_id = os.urandom(16)
        sp.span_id = os.urandom(8)
        sp.name = name
        sp.start_time_unix_nano = time.time_ns()
        sp.end_time_unix_nano = sp.start_time_unix_nano + 1000 + i
    return bytes(req.SerializeToString())


def examples() -> dict[str, Path]:
    if not EXAMPLES.is_dir():
        pytest.skip(f"the specification's OTLP examples are not here ({EXAMPLES}); "
                    "they come with ../shared/testdata")
    return {p.stem: p for p in EXAMPLES.glob("*.json")}


# --- rotel and VictoriaMetrics -------------------------------------------------------------

def rotel_binary() -> str:
    try:
        import rotel
    except ImportError:
        pytest.skip("rotel is not installed (it comes with the dev extra: pip install -e '.[dev]')")
    path = Path(rotel.__file__).with_name("rotel-agent")
    if not path.exists():
        pytest.skip(f"the rotel wheel has no collector binary at {path}")
    return str(path)


def vm_binary() -> str:
    path = ROOT / ".backends" / "victoria-metrics"
    if not path.exists():
        found = shutil.which("victoria-metrics")
        if found is None:
            pytest.skip("VictoriaMetrics is not installed: run scripts/install-backends.sh "
                        "(the README's test command does)")
        return found
    return str(path)


class VictoriaMetrics:
    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [vm_binary(), f"-httpListenAddr=127.0.0.1:{self.port}", f"-storageDataPath={data}",
             "-opentelemetry.usePrometheusNaming", "-search.latencyOffset=0s",
             "-search.disableCache", "-inmemoryDataFlushInterval=1s", "-loggerLevel=ERROR"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(self._up, 30), "VictoriaMetrics did not start"

    def _up(self) -> bool:
        try:
            return requests.get(self.url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    @property
    def otlp_metrics(self) -> str:
        return f"{self.url}/opentelemetry/v1/metrics"

    def query(self, promql: str) -> list[dict[str, Any]]:
        r = requests.get(self.url + "/api/v1/query", params={"query": promql}, timeout=10)
        r.raise_for_status()
        return r.json()["data"]["result"]  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Rotel:
    def __init__(self, tmp: Path, *, metrics: str, traces: str, logs: str) -> None:
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc = subprocess.Popen(
            [rotel_binary(), "start", "--otlp-grpc-endpoint", f"127.0.0.1:{self.grpc_port}",
             "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}", "--exporter", "otlp",
             "--otlp-exporter-protocol", "http",
             "--otlp-exporter-metrics-endpoint", metrics,
             "--otlp-exporter-traces-endpoint", traces,
             "--otlp-exporter-logs-endpoint", logs,
             "--pid-file", str(tmp / "rotel.pid"), "--log-file", str(tmp / "rotel.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(self._up, 30), "rotel did not start"

    def _up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
