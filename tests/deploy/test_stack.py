"""The compose stack and the dashboards, checked statically (Docker cannot pull here)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from routerscope.core import signals

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT.parent / "shared" / "schemas" / "compose-spec.json"
DASHBOARD = ROOT / "dashboards" / "routerscope-overview.json"
PROMTOOL = ROOT / ".backends" / "promtool"
VARS = {"$service_name": "routerscope-demo", "$__rate_interval": "5m", "$__interval": "1m",
        "$__range": "1h"}


def _yaml(path: Path) -> Any:
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with the dev extra")
    return yaml.safe_load(path.read_text())


def _promtool() -> str:
    if not PROMTOOL.exists():
        pytest.skip("promtool is not installed: run scripts/install-backends.sh")
    return str(PROMTOOL)


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every query in the committed dashboard, plus annotations."""
    d = json.loads(DASHBOARD.read_text())
    out = [(p["title"], t["expr"]) for p in d["panels"] for t in p.get("targets", [])]
    out += [(f"annotation {a['name']}", a["expr"]) for a in d["annotations"]["list"]
            if a.get("expr")]
    return out


def substitute(expr: str) -> str:
    for k in sorted(VARS, key=len, reverse=True):
        expr = expr.replace(k, VARS[k])
    return expr


def test_compose_validates_against_the_spec_schema() -> None:
    """docker-compose.yml is valid per the Compose specification's JSON schema."""
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema comes with the dev extra")
    if not SCHEMA.exists():
        pytest.skip(f"the compose schema is not here ({SCHEMA}); it comes with ../shared")
    # the schema names draft-07 without the trailing '#', which jsonschema does not map
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(
        _yaml(ROOT / "docker-compose.yml"))


def test_compose_pins_images_binds_loopback_and_uses_volumes() -> None:
    """Images carry exact versions, ports bind 127.0.0.1, state lives in named volumes."""
    doc = _yaml(ROOT / "docker-compose.yml")
    services = doc["services"]
    assert set(services) == {"sidecar", "otel-collector", "prometheus", "tempo", "loki",
                             "grafana"}
    for name, svc in services.items():
        image = svc.get("image", "")
        assert re.search(r":v?\d+\.\d+\.\d+$", image), f"{name}: unpinned image {image!r}"
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            assert src.startswith("./") or src in doc["volumes"], (name, vol)
    assert services["sidecar"]["build"] == "."
    assert "--web.enable-otlp-receiver" in services["prometheus"]["command"]
    assert {p.split(":")[1] for s in services.values() for p in s.get("ports", [])} >= \
        {"3000", "4318", "9090"}
    assert "healthcheck" in services["prometheus"] and "healthcheck" in services["grafana"]
    env = services["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].endswith(DASHBOARD.name)


def test_collector_routes_each_signal_with_a_persistent_queue() -> None:
    """Traces -> Tempo, metrics -> Prometheus OTLP, logs -> Loki; queues on file_storage."""
    cfg = _yaml(ROOT / "deploy" / "otel-collector" / "config.yaml")
    pipes = cfg["service"]["pipelines"]
    assert pipes["traces"]["exporters"] == ["otlp/tempo"]
    assert pipes["metrics"]["exporters"] == ["otlphttp/prometheus"]
    assert pipes["logs"]["exporters"] == ["otlphttp/loki"]
    for p in pipes.values():
        assert p["processors"] == ["memory_limiter", "batch"]
    for name, exp in cfg["exporters"].items():
        assert exp["sending_queue"]["storage"] == "file_storage", name
    assert cfg["exporters"]["otlphttp/prometheus"]["endpoint"].endswith("/api/v1/otlp")
    assert "file_storage" in cfg["service"]["extensions"]


def test_prometheus_config_and_rules_pass_promtool() -> None:
    """promtool check config (Prometheus 3 otlp block), check rules, and test rules."""
    promtool = _promtool()
    prom = ROOT / "deploy" / "prometheus"
    for args in (["check", "config", "--syntax-only", str(prom / "prometheus.yml")],
                 ["check", "rules", str(prom / "rules" / "routerscope.yml")],
                 ["test", "rules", str(prom / "rules" / "routerscope.test.yml")]):
        out = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    cfg = _yaml(prom / "prometheus.yml")
    assert {"service.name", "service.instance.id", "host.name"} <= \
        set(cfg["otlp"]["promote_resource_attributes"])
    assert cfg["storage"]["tsdb"]["out_of_order_time_window"]


def test_every_panel_query_parses(tmp_path: Path) -> None:
    """Each panel's PromQL, variables substituted, parses (as recording rules via promtool)."""
    promtool = _promtool()
    rules = {"groups": [{"name": "panels", "rules": [
        {"record": f"panel_{i}", "expr": substitute(expr)}
        for i, (_, expr) in enumerate(panel_queries())]}]}
    path = tmp_path / "panels.yml"
    path.write_text(json.dumps(rules))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_json_is_fresh() -> None:
    """The committed JSON is what the generator makes now (regenerate after a change)."""
    pytest.importorskip("grafana_foundation_sdk", reason="comes with the dev extra (pinned)")
    from dashboards.generate import render

    for name, text in render().items():
        assert (ROOT / "dashboards" / name).read_text() == text, \
            f"{name} is stale: run python -m dashboards.generate"


def test_every_panel_has_unit_description_and_known_metrics() -> None:
    """Units and descriptions everywhere; every metric a query names comes from signals."""
    d = json.loads(DASHBOARD.read_text())
    known = {m.prometheus_name() + sfx for m in signals.ALL_METRICS
             for sfx in ("", "_bucket", "_sum", "_count")}
    panels = [p for p in d["panels"] if p["type"] != "row"]
    assert len(panels) >= 25
    for p in panels:
        assert p["fieldConfig"]["defaults"].get("unit"), p["title"]
        assert p.get("description"), p["title"]
        for t in p["targets"]:
            # metric names are the identifiers right before a selector or a range
            names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?=\{|\[)", t["expr"]))
            assert names, (p["title"], t["expr"])
            assert names <= known, (p["title"], names - known)
            assert "$service_name" in t["expr"] or p["title"] in {
                "Queue depth", "Spooled bytes", "Received / shipped", "Dropped by reason",
                "Upstream retries", "Send latency p50 / p99"}, p["title"]
            if "rate(" in t["expr"]:
                assert "$__rate_interval" in t["expr"], p["title"]
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    assert rows == ["Start-up", "Model cache", "Memory", "API latency", "Sidecar"]
    assert d["templating"]["list"][0]["name"] == "service_name"
    links = [lk["url"] for p in panels for lk in p["fieldConfig"]["defaults"].get("links", [])]
    assert any('"datasource": "tempo"' in u for u in links)
    assert any('"datasource": "loki"' in u for u in links)


def test_datasource_uids_match_the_dashboards() -> None:
    """Provisioned datasources have the fixed UIDs the dashboards and links use."""
    ds = _yaml(ROOT / "deploy" / "grafana" / "provisioning" / "datasources" /
               "datasources.yaml")["datasources"]
    assert {d["uid"]: d["type"] for d in ds} == {"prometheus": "prometheus", "tempo": "tempo",
                                                  "loki": "loki"}
    d = json.loads(DASHBOARD.read_text())
    assert {p["datasource"]["uid"] for p in d["panels"] if "datasource" in p} == {"prometheus"}
