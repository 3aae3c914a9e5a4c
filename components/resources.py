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
    name: str, obj: Obj, opts: pulumi.ResourceOptions, body: pulumi.Output[Obj] | None = None
) -> pulumi.CustomResource:
    """Register one object; typed classes for core kinds, CustomResource for the rest.

    `body`, where given, is the same object known only later, whose metadata (labels and annotations)
    may differ: the resource then takes its metadata from it.
    """

    def field(key: str) -> Any:
        if key == "metadata" and body is not None:
            return body.apply(lambda o: o["metadata"])
        return obj.get(key)

    key = (obj["apiVersion"], obj["kind"])
    if key == ("v1", "ConfigMap"):
        return k8s.core.v1.ConfigMap(name, metadata=field("metadata"), data=field("data"), opts=opts)
    cls = _CORE_SPEC_KINDS.get(key)
    if cls is not None:
        return cls(name, metadata=field("metadata"), spec=field("spec"), opts=opts)  # type: ignore[call-arg]
    resource: pulumi.CustomResource = k8s.apiextensions.CustomResource(
        name, api_version=obj["apiVersion"], kind=obj["kind"], metadata=field("metadata"), spec=field("spec"), opts=opts
    )
    return resource


def child_name(prefix: str, obj: Obj) -> str:
    """Pulumi name of a child: `<component>-<kind>` (kinds are unique within one component)."""
    return f"{prefix}-{obj['kind'].lower()}"
