"""Turns manifest dicts into pulumi-kubernetes resources (the only place that maps kinds to classes)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .manifests.kinds import Obj

_CORE_SPEC_KINDS: dict[tuple[str, str], type[pulumi.CustomResource]] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
}


def create(
    name: str, obj: Obj, opts: pulumi.ResourceOptions, metadata: pulumi.Output[Obj] | None = None
) -> pulumi.CustomResource:
    """Register one object; typed classes for core kinds, CustomResource for the rest.

    `metadata`, where given, is the object's metadata known only later (labels and annotations may
    differ from `obj`'s): the resource takes it instead of `obj`'s.
    """
    meta: Any = obj.get("metadata") if metadata is None else metadata
    key = (obj["apiVersion"], obj["kind"])
    if key == ("v1", "ConfigMap"):
        return k8s.core.v1.ConfigMap(name, metadata=meta, data=obj.get("data"), opts=opts)
    if key == ("v1", "ServiceAccount"):
        automount = obj.get("automountServiceAccountToken")
        return k8s.core.v1.ServiceAccount(name, metadata=meta, automount_service_account_token=automount, opts=opts)
    if key == ("v1", "Secret"):
        # Only Secrets without values are created here: token Secrets (the token controller fills them)
        # and the teams' credentials Secrets (each team's stack patches its own values in).
        assert "data" not in obj and "stringData" not in obj, "secret values never go through this function"
        return k8s.core.v1.Secret(name, metadata=meta, type=obj.get("type"), opts=opts)
    if key == ("rbac.authorization.k8s.io/v1", "Role"):
        return k8s.rbac.v1.Role(name, metadata=meta, rules=obj["rules"], opts=opts)
    if key == ("rbac.authorization.k8s.io/v1", "RoleBinding"):
        return k8s.rbac.v1.RoleBinding(
            name, metadata=meta, role_ref=obj["roleRef"], subjects=obj["subjects"], opts=opts
        )
    cls = _CORE_SPEC_KINDS.get(key)
    if cls is not None:
        return cls(name, metadata=meta, spec=obj.get("spec"), opts=opts)  # type: ignore[call-arg]
    resource: pulumi.CustomResource = k8s.apiextensions.CustomResource(
        name, api_version=obj["apiVersion"], kind=obj["kind"], metadata=meta, spec=obj.get("spec"), opts=opts
    )
    return resource


def child_name(prefix: str, obj: Obj) -> str:
    """Pulumi name of a child: `<component>-<kind>` (kinds are unique within one component)."""
    return f"{prefix}-{obj['kind'].lower()}"
