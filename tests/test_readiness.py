"""`pulumi up` waits for enforcement: Kyverno's policies Ready and the Gateway Programmed.

The platform's own objects, annotated as the platform stack annotates them (`kinds.awaited`), go up with
the real Pulumi engine and kubernetes provider against the local control plane. Kyverno's real admission
controller (as its chart's ServiceAccount) makes the policy Ready; kgateway does not run here, so the test
writes the Gateway's Programmed condition through the status subresource as kgateway would. Until it
does, `up` does not return; with no Kyverno at all, a policy never becomes Ready and `up` fails on its
timeout instead of reporting success.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pulumi import automation as auto

from components import resources
from components.manifests import admission, gateway, kinds
from components.settings import names
from components.settings.stackfile import load_stack
from devenv.automation import throwaway_stack
from devenv.controlplane import ControlPlane, missing_binaries
from devenv.kubeapi import KubeApi
from devenv.kyverno_admission import CHARTS_DIR, KyvernoAdmission, install_crds, missing_binary, platform_chart

from .conftest import ROOT
from .engine import pulumi_bin

_MISSING = missing_binaries() or missing_binary() or (None if pulumi_bin() else "needs the Pulumi CLI (make test)")
_MISSING = _MISSING or (None if (CHARTS_DIR / "kyverno").is_dir() else f"no kyverno chart at {CHARTS_DIR}")
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))

PLATFORM = load_stack(ROOT / "Pulumi.dev.yaml")
GATEWAY_PATH = f"apis/gateway.networking.k8s.io/v1/namespaces/{names.GATEWAY_NAMESPACE}/gateways/{names.GATEWAY_NAME}"


def _crds(crds_dir: Path, group_glob: str) -> list[dict[str, Any]]:
    import yaml

    out = []
    for f in sorted(crds_dir.glob(group_glob)):
        out += [d for d in yaml.safe_load_all(f.read_text()) if d and d.get("kind") == "CustomResourceDefinition"]
    return out


@pytest.fixture(scope="module")
def plane(crds_dir: Path) -> Iterator[ControlPlane]:
    from components.settings import versions

    with ControlPlane() as running:
        api = running.api
        for group in ("gateway.networking.k8s.io", "networking.istio.io"):
            install_crds(api, _crds(crds_dir, versions.crd_globs()[group]))
        # Kyverno's policy CRDs, also where Kyverno itself does not run.
        install_crds(api, [o for o in platform_chart() if o["kind"] == "CustomResourceDefinition"])
        yield running


def _program(plane: ControlPlane, objs: list[dict[str, Any]], timeout: str) -> Any:
    def program() -> None:
        provider = k8s.Provider("local", kubeconfig=plane.kubeconfig.read_text())
        created: list[pulumi.Resource] = []
        for obj in objs:
            opts = pulumi.ResourceOptions(
                provider=provider, depends_on=list(created), custom_timeouts=pulumi.CustomTimeouts(create=timeout)
            )
            created.append(resources.create(f"{obj['kind'].lower()}-{obj['metadata']['name']}", obj, opts))

    return program


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _programmed(api: KubeApi) -> None:
    """What kgateway writes once it has programmed the Gateway (Gateway API's condition shape)."""
    gw = api.get("Gateway", names.GATEWAY_NAME, names.GATEWAY_NAMESPACE)
    assert gw is not None
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    condition = {"lastTransitionTime": now, "message": "programmed by the test", "observedGeneration": 1}
    conditions = [{**condition, "type": t, "status": "True", "reason": t} for t in ("Accepted", "Programmed")]
    patch = {"status": {"conditions": conditions}}
    response = api.call("PATCH", f"{GATEWAY_PATH}/status", patch, content_type="application/merge-patch+json")
    assert response.status == 200, response.message


def test_up_returns_only_once_the_policy_is_ready_and_the_gateway_programmed(
    plane: ControlPlane, tmp_path: Path
) -> None:
    registry = admission.registry_configmap(PLATFORM.teams, PLATFORM.approvals_in_force)
    policy = kinds.awaited(admission.registry_policy())
    gw = kinds.awaited(next(o for o in gateway.gateway_objects(PLATFORM.teams) if o["kind"] == "Gateway"))
    objs = [registry, policy, _namespace(names.GATEWAY_NAMESPACE), gw]  # the registry's namespace is Kyverno's
    with KyvernoAdmission(plane):
        stack = throwaway_stack(tmp_path, _program(plane, objs, "3m"))
        result: list[Any] = []
        up = threading.Thread(target=lambda: result.append(_up(stack)))
        up.start()
        api = plane.api
        deadline = time.monotonic() + 120
        while api.get("Gateway", names.GATEWAY_NAME, names.GATEWAY_NAMESPACE) is None:
            assert up.is_alive() and time.monotonic() < deadline, result
            time.sleep(0.5)
        # The policy was Ready before the Gateway was created (it depends on it); `up` still waits.
        got = api.get("ValidatingPolicy", names.REGISTRY_POLICY) or {}
        assert (got.get("status") or {}).get("conditionStatus", {}).get("ready") is True, got.get("status")
        up.join(10)
        assert up.is_alive(), f"`up` returned before the Gateway was programmed: {result}"
        _programmed(api)
        up.join(90)
        assert not up.is_alive(), "`up` did not return after the Gateway was programmed"
    assert isinstance(result[0], auto.UpResult), result
    assert result[0].summary.result == "succeeded"


def test_without_kyverno_the_policy_never_becomes_ready_and_up_fails(plane: ControlPlane, tmp_path: Path) -> None:
    policy = kinds.awaited(admission.route_policy())
    stack = throwaway_stack(tmp_path, _program(plane, [policy], "15s"))
    result = _up(stack)
    assert isinstance(result, auto.errors.CommandError), result
    out = str(result)
    assert f"validatingpolicy-{names.ROUTE_POLICY}" in out and "{.status.conditionStatus.ready} selected nothing" in out
    assert "failed to fully initialize or become live: timed out waiting for the condition" in out, out


def _up(stack: auto.Stack) -> auto.UpResult | auto.errors.CommandError:
    try:
        return stack.up(color="never")
    except auto.errors.CommandError as err:
        return err
