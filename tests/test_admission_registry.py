"""Admission decides from the registry the cluster holds, not from labels a tenant writes.

The real Kyverno admission controller (out of cluster) enforces our generated `ValidatingPolicy`, which
reads the platform-owned registry ConfigMap on every write: the example team stacks' own ServiceEntries
pass, a namespace no team owns gets nothing, and a change of the registry (an approval expired, then
renewed) applies to the next write. What a tenant forges (hosts, ports, endpoints, other teams'
approvals) is the tenant cases (tests/tenant_cases.py), refused as the team in test_tenant_boundary.py.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.manifests.admission import registry_configmap, registry_policy
from components.manifests.stack import stack_objects
from components.settings import names, versions
from components.settings.config import StackConfig
from components.settings.stackfile import load_stack
from devenv.controlplane import ControlPlane, missing_binaries
from devenv.kubeapi import KubeApi
from devenv.kyverno_admission import CHARTS_DIR, KyvernoAdmission, apply, install_crds, missing_binary
from devenv.kyverno_admission import wait_policy_ready as wait_ready

from .conftest import ROOT

_NO_CHART = None if (CHARTS_DIR / "kyverno").is_dir() else f"the kyverno chart is not at {CHARTS_DIR / 'kyverno'}"
_MISSING = missing_binaries() or missing_binary() or _NO_CHART
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))

SE_PATH = "apis/networking.istio.io/v1/namespaces/{ns}/serviceentries"
PLATFORM = load_stack(ROOT / "Pulumi.dev.yaml")
TEAMS = {t.name: t.namespace for t in PLATFORM.teams}


def _team_entries(stack: str) -> list[dict[str, Any]]:
    cfg: StackConfig = load_stack(ROOT / f"Pulumi.{stack}.yaml")
    objs = stack_objects(cfg, dt.date.today(), PLATFORM.approvals).all()
    return [o for o in objs if o["kind"] == "ServiceEntry"]


@pytest.fixture(scope="module")
def api(crds_dir: Path) -> Iterator[KubeApi]:
    with ControlPlane() as plane:
        api = plane.api
        # Istio's CRDs, and Gateway API's: the registry policy lists the routes that send to an entry.
        docs = [
            d
            for group in ("networking.istio.io", "gateway.networking.k8s.io")
            for f in sorted(crds_dir.glob(versions.crd_globs()[group]))
            for d in yaml.safe_load_all(f.read_text())
        ]
        install_crds(api, [d for d in docs if d and d.get("kind") == "CustomResourceDefinition"])
        with KyvernoAdmission(plane):
            for ns in [*TEAMS.values(), "rogue"]:
                status, _ = api.request("POST", "api/v1/namespaces", {"metadata": {"name": ns}})
                assert status in (201, 409), status
            registry = registry_configmap(PLATFORM.teams, PLATFORM.approvals, {"ollama.external": ["192.0.2.10"]})
            ns = names.REGISTRY_NAMESPACE
            apply(api, f"api/v1/namespaces/{ns}/configmaps/{names.REGISTRY_CONFIGMAP}", registry)
            policy = registry_policy()
            apply(api, f"apis/policies.kyverno.io/v1/validatingpolicies/{names.REGISTRY_POLICY}", policy)
            wait_ready(api, names.REGISTRY_POLICY, kind="ValidatingPolicy")
            yield api


def _create(api: KubeApi, obj: dict[str, Any]) -> tuple[int, str]:
    ns = obj["metadata"]["namespace"]
    status, body = api.request("POST", SE_PATH.format(ns=ns), obj)
    if status == 201:
        api.request("DELETE", f"{SE_PATH.format(ns=ns)}/{obj['metadata']['name']}")
    return status, (body or {}).get("message", "") if isinstance(body, dict) else ""


def _forged(host: str, namespace: str, port: int = 443, endpoints: list[str] | None = None) -> dict[str, Any]:
    """A ServiceEntry carrying every approval mark a tenant could write for itself."""
    (entry,) = _team_entries("team-research")
    obj = copy.deepcopy(entry)
    obj["metadata"]["namespace"] = namespace
    obj["metadata"]["name"] = "forged"
    obj["spec"]["hosts"] = [host]
    obj["spec"]["ports"] = [{"number": port, "name": "https", "protocol": "HTTPS"}]
    if endpoints:
        obj["spec"]["resolution"] = "STATIC"
        obj["spec"]["endpoints"] = [{"address": a} for a in endpoints]
    return obj


@pytest.mark.parametrize("stack", ["team-research", "team-payments"])
def test_the_example_teams_destinations_are_admitted(api: KubeApi, stack: str) -> None:
    for entry in _team_entries(stack):
        status, message = _create(api, entry)
        assert status == 201, (entry["metadata"]["name"], message)


def test_a_namespace_no_team_owns_is_refused(api: KubeApi) -> None:
    status, message = _create(api, _forged("api.openai.com", "rogue"))
    assert status == 400 and "namespace rogue belongs to no team" in message, message


def test_an_expired_approval_is_refused_and_registry_edits_apply_live(api: KubeApi) -> None:
    ns, name = names.REGISTRY_NAMESPACE, names.REGISTRY_CONFIGMAP
    expired = [a.model_copy(update={"expires": dt.date(2020, 1, 1)}) for a in PLATFORM.approvals]
    apply(api, f"api/v1/namespaces/{ns}/configmaps/{name}", registry_configmap(PLATFORM.teams, expired))
    try:
        (entry,) = _team_entries("team-research")
        status, message = _create(api, entry)
        assert status == 400 and "is not approved (or has expired)" in message, message
    finally:
        fresh = registry_configmap(PLATFORM.teams, PLATFORM.approvals, {"ollama.external": ["192.0.2.10"]})
        apply(api, f"api/v1/namespaces/{ns}/configmaps/{name}", fresh)
    status, message = _create(api, entry)
    assert status == 201, message
