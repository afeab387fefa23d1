"""The Kubernetes manifests validate against the API schemas and say what the house asks.

Beyond schema validity (``kubernetes-validate``, strict: unknown fields fail), each
dicomcache container runs restricted (non-root, read-only root, no privilege
escalation, every capability dropped), has resources and gRPC probes, sets only
settings that exist, and those settings would start a server (the off-loopback
refusal included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from dicomcache.server.config import Settings

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").rglob("*.yaml"))
# The oldest release whose native sidecars are on by default, and the newest known.
VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version()]


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def pod_spec(document: dict[str, Any]) -> dict[str, Any] | None:
    if document["kind"] in {"Deployment", "StatefulSet", "DaemonSet"}:
        return document["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return None


def dicomcache_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    every = [*spec.get("initContainers", []), *spec.get("containers", [])]
    return [c for c in every if c["image"].startswith("dicomcache:")]


def test_there_are_manifests_for_a_sidecar_and_a_shared_deployment():
    kinds = {(p.parent.name, d["kind"]) for p in MANIFESTS for d in documents(p)}
    assert ("sidecar", "Deployment") in kinds
    assert {("shared", k) for k in ("Deployment", "Service", "PodDisruptionBudget")} <= kinds
    assert ("shared", "NetworkPolicy") in kinds


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_manifest_validates_strictly(path: Path, version: str):
    for document in documents(path):
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_dicomcache_containers_are_restricted_probed_and_bounded(path: Path):
    for document in documents(path):
        spec = pod_spec(document)
        if spec is None:
            continue
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        containers = dicomcache_containers(spec)
        assert containers, f"{path}: no dicomcache container"
        for container in containers:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["limits"]["memory"]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert "grpc" in container[probe], f"{path}: {probe} is not a gRPC probe"
            assert not container["image"].endswith(":latest")


def test_the_sidecar_is_native_so_it_outlives_the_app():
    (path,) = [p for p in MANIFESTS if p.parent.name == "sidecar"]
    (spec,) = [s for d in documents(path) if (s := pod_spec(d))]
    (cache,) = spec["initContainers"]
    assert cache["restartPolicy"] == "Always"
    assert not dicomcache_containers({"containers": spec["containers"]})


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_settings_exist_and_would_start_a_server(path: Path):
    for document in documents(path):
        spec = pod_spec(document)
        if spec is None:
            continue
        for container in dicomcache_containers(spec):
            settings: dict[str, str] = {}
            for variable in container["env"]:
                name = variable["name"]
                assert name.startswith("DICOMCACHE_"), name
                field = name.removeprefix("DICOMCACHE_").lower()
                assert field in Settings.model_fields, f"{path}: {name} is no setting"
                settings[field] = variable.get("value", "from-a-secret")
            Settings(**settings)  # raises as `dicomcache serve` would refuse to start
            probed = {p["grpc"]["port"] for k, p in container.items() if k.endswith("Probe")}
            health = settings.get("health_listen", settings.get("listen", ""))
            assert {int(health.rsplit(":", 1)[1])} == probed
