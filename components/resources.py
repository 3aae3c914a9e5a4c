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
