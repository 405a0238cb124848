"""deploy/k8s: every overlay builds with kustomize and validates against the
Kubernetes schemas; the ServiceMonitor (a CRD the schemas do not know) is checked
against the Service and Secret it refers to."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pilothouse.config.load import parse_settings
from tests.support.deploy import OVERLAYS, run_tool, tool

K8S_VERSION = "1.30"
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


@cache
def build(overlay: Path) -> tuple[dict[str, Any], ...]:
    result = run_tool(tool("kubectl"), "kustomize", str(overlay))
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def one(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def test_there_are_overlays() -> None:
    assert {p.name for p in OVERLAYS} >= {"dev", "production"}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_overlay_validates_against_kubernetes_schemas(overlay: Path) -> None:
    docs = build(overlay)
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "Job",
    } <= kinds
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_rejects_a_misspelt_probe() -> None:
    deployment = copy.deepcopy(one(build(OVERLAYS[0]), "Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"] = {"httpGett": {"path": "/readyz", "port": "http"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def _gateway_settings(docs: tuple[dict[str, Any], ...]) -> Any:
    config = one(docs, "ConfigMap")["data"]["pilothouse.yaml"]
    secret = one(docs, "Secret")["stringData"]
    return parse_settings(yaml.safe_load(config), source="configmap", env=secret)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_deployment_probes_drain_and_resources(overlay: Path) -> None:
    docs = build(overlay)
    settings = _gateway_settings(docs)  # the ConfigMap loads with the Secret's values
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == settings.server.port
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pause + settings.server.drain_timeout_s
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert settings.store.spool_path.rsplit("/", 1)[0] in mounts  # spool is writable
    assert settings.store.migrate is False  # the Job migrates, not every pod


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_db_upgrade_job_runs_the_cli_with_the_same_config(overlay: Path) -> None:
    docs = build(overlay)
    job = one(docs, "Job")["spec"]["template"]["spec"]
    deployment = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert job["containers"][0]["args"][:2] == ["db", "upgrade"]
    assert job["containers"][0]["image"] == deployment["containers"][0]["image"]
    assert job["volumes"][0]["configMap"] == deployment["volumes"][0]["configMap"]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_autoscaling_disruption_and_monitoring_point_at_the_gateway(overlay: Path) -> None:
    docs = build(overlay)
    deployment = one(docs, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    hpa = one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["maxReplicas"]
    assert selects(one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    service = one(docs, "Service")
    assert selects(service["spec"]["selector"])
    assert selects(one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"])
    # The CRD, checked by hand: it must select the Service and name a real port and key.
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    service_labels = service["metadata"]["labels"]
    assert all(
        service_labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    ref = endpoint["authorization"]["credentials"]
    secret = one(docs, "Secret")
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
