"""deploy/compose: valid against the compose specification, and the stack it
describes is the one the docs promise (two replicas behind a health-checked LB)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pilothouse.config.load import load_settings
from tests.support.deploy import DEPLOY, compose_schema

COMPOSE = DEPLOY / "compose"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((COMPOSE / "docker-compose.yaml").read_text()))


def _errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft201909Validator(compose_schema())
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def test_compose_file_matches_the_specification() -> None:
    assert _errors(_compose()) == []


def test_the_schema_rejects_a_misspelt_service_key() -> None:
    doc = copy.deepcopy(_compose())
    doc["services"]["redis"]["helthcheck"] = doc["services"]["redis"].pop("healthcheck")
    assert any("helthcheck" in e for e in _errors(doc))


def test_two_gateway_replicas_behind_a_balancer_checking_readyz() -> None:
    services = _compose()["services"]
    gateways = [name for name in services if name.startswith("gateway-")]
    assert len(gateways) == 2
    haproxy = (COMPOSE / "haproxy.cfg").read_text()
    assert "option httpchk GET /readyz" in haproxy
    for name in gateways:
        assert re.search(rf"server {name} {name}:4000 check", haproxy)
        svc = services[name]
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "PILOTHOUSE_STORE_URL" in svc["environment"]
    assert services["lb"]["ports"] == ["4000:4000"]
    assert {"postgres", "redis", "prometheus", "grafana", "otel-collector"} <= set(services)


def test_mounted_files_exist_and_ship_the_rules_and_dashboard() -> None:
    services = _compose()["services"]
    mounted = {
        (COMPOSE / v.split(":")[0]).resolve()
        for svc in services.values()
        for v in svc.get("volumes", [])
        if v.startswith(".")
    }
    for path in mounted:
        assert path.exists(), path
    assert (DEPLOY / "prometheus" / "pilothouse-slo-rules.yml").resolve() in mounted
    assert (DEPLOY / "grafana" / "pilothouse.json").resolve() in mounted
    prom = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["pilothouse-slo-rules.yml"]
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["gateway-1:4000", "gateway-2:4000"]


def test_gateway_config_sends_traces_to_the_collector_and_shares_state() -> None:
    settings = load_settings(
        COMPOSE / "pilothouse.yaml",
        env={"PILOTHOUSE_ADMIN_KEY": "a" * 32, "PILOTHOUSE_STORE_URL": "postgresql://u:p@pg/db"},
    )
    assert settings.store.url == "postgresql://u:p@pg/db"
    assert settings.redis.url == "redis://redis:6379/0"
    assert settings.telemetry.otlp_endpoint == "http://otel-collector:4318"
    collector = yaml.safe_load((COMPOSE / "otel-collector.yaml").read_text())
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    assert "otlp" in collector["service"]["pipelines"]["traces"]["receivers"]


def test_env_example_names_every_required_variable(tmp_path: Path) -> None:
    text = (COMPOSE / "docker-compose.yaml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = (COMPOSE / ".env.example").read_text()
    assert required and all(f"{name}=" in example for name in required)
