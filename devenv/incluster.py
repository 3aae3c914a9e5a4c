"""What a chart gives a controller in the cluster, laid out for the same controller run out of cluster.

The chart is rendered by Helm with the platform's values (devenv/chartrender.py). From it come the
controller's identity and rights (ServiceAccounts, ClusterRoles, Roles, their bindings), its configuration
ConfigMaps, and how its Deployment runs it (container arguments and environment, ConfigMap volumes).
The process then authenticates with a TokenRequest token of that ServiceAccount
(ControlPlane.service_account_kubeconfig): what it may read or write is what the chart's RBAC grants.
Used by devenv/kyverno_admission.py and devenv/istiod.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .kubeapi import KubeApi

Obj = Mapping[str, Any]
# What of a rendered chart is installed for a controller run out of cluster: its identities and their
# rights, and its configuration. (CRDs go in first, through install_crds; workloads never: the process
# here stands for them.)
IDENTITY_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap")


def install(api: KubeApi, chart: Sequence[Obj], apply: Callable[[KubeApi, str, Obj], Any]) -> None:
    """Applies the chart's identities, rights and configuration (IDENTITY_KINDS), in the chart's order."""
    for obj in chart:
        if obj.get("kind") in IDENTITY_KINDS:
            apply(api, api.item_path(dict(obj)), obj)


def aggregated(api: KubeApi, chart: Sequence[Obj]) -> tuple[bool, str]:
    """(all filled, which not) for the chart's aggregated ClusterRoles: they have no rules until the
    controller manager's clusterrole-aggregation controller fills them in."""
    for role in chart:
        if role.get("kind") == "ClusterRole" and role.get("aggregationRule"):
            got = api.get("ClusterRole", role["metadata"]["name"])
            if not (got or {}).get("rules"):
                return False, f"ClusterRole {role['metadata']['name']} not aggregated yet"
    return True, ""


def deployment(chart: Sequence[Obj], name: str) -> Obj:
    for obj in chart:
        if obj.get("kind") == "Deployment" and obj["metadata"]["name"] == name:
            return obj
    raise LookupError(f"the rendered chart has no Deployment {name}")


def container_command(
    chart: Sequence[Obj], deployment_name: str, container_name: str, namespace: str
) -> tuple[list[str], dict[str, str]]:
    """(arguments, environment) of one container of the chart's Deployment, as the kubelet would give
    them: downward-API fields of the pod (namespace, name, ServiceAccount) filled in, resource fields
    (GOMAXPROCS from limits.cpu) left out."""
    pod = deployment(chart, deployment_name)["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == container_name]
    fields = {
        "metadata.namespace": namespace,
        "metadata.name": f"{deployment_name}-local",
        "spec.serviceAccountName": str(pod.get("serviceAccountName", "default")),
    }
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "fieldRef" in (var.get("valueFrom") or {}):
            env[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
    return [str(a) for a in container.get("args") or []], env


def configmap_mounts(
    chart: Sequence[Obj], deployment_name: str, container_name: str, root: Path, keys: Sequence[str] | None = None
) -> list[Path]:
    """Writes the container's ConfigMap volumes (from the chart's ConfigMaps) under `root`, each at its
    mount path made relative (`/etc/istio/config` -> root/etc/istio/config), as the kubelet mounts them."""
    pod = deployment(chart, deployment_name)["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == container_name]
    configmaps = {o["metadata"]["name"]: o for o in chart if o.get("kind") == "ConfigMap"}
    volumes = {v["name"]: v["configMap"]["name"] for v in pod.get("volumes") or [] if "configMap" in v}
    written = []
    for mount in container.get("volumeMounts") or []:
        source = configmaps.get(volumes.get(mount["name"], ""))
        if source is None:
            continue
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        for key, value in (source.get("data") or {}).items():
            if keys is None or key in keys:
                (target / key).write_text(value)
                written.append(target / key)
    return written
