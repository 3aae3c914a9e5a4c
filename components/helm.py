"""Pinned Helm releases: one helper so every chart is installed the same way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class Chart:
    """A chart at an exact version, from a Helm repository or an OCI reference."""

    name: str  # chart name, or the full oci:// reference
    version: str
    namespace: str
    repo: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)


def release(
    resource_name: str,
    release_name: str,
    chart: Chart,
    parent: pulumi.Resource,
    depends_on: list[pulumi.Resource] | None = None,
) -> k8s.helm.v3.Release:
    """A Helm release that waits for its workloads to be ready (so dependents can rely on it)."""
    return k8s.helm.v3.Release(
        resource_name,
        k8s.helm.v3.ReleaseArgs(
            name=release_name,
            chart=chart.name,
            version=chart.version,
            namespace=chart.namespace,
            create_namespace=True,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo) if chart.repo else None,
            values=dict(chart.values),
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on or []),
    )
