"""Pinned Helm charts, installed the same way everywhere: from upstream, a mirror or a directory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..settings.config import ConfigError, Sources


@dataclass(frozen=True)
class Chart:
    """A chart at an exact version, as upstream publishes it."""

    name: str  # the chart's name (base, kgateway, kyverno-authz-server, ...)
    version: str
    namespace: str
    upstream: str  # Helm repository URL, or the OCI prefix the chart is published under
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Install:
    """How this platform installs charts (from its config)."""

    sources: Sources = field(default_factory=Sources)
    wait_for_ready: bool = True


def locate(chart: Chart, sources: Sources) -> tuple[str, str | None]:
    """(chart reference, repository URL or None) for Helm, honouring a mirror or a chart directory."""
    if sources.chart_directory:
        # `helm pull` names files after the published version, which may carry a leading v.
        for version in (chart.version, f"v{chart.version}"):
            path = Path(sources.chart_directory) / f"{chart.name}-{version}.tgz"
            if path.is_file():
                return str(path), None
        raise ConfigError(
            f"egress:platform.sources.chartDirectory: {chart.name}-{chart.version}.tgz is not in "
            f"{sources.chart_directory} (helm pull {chart.name} --version {chart.version})"
        )
    if sources.chart_repository:
        return chart.name, sources.chart_repository
    if chart.upstream.startswith("oci://"):
        return f"{chart.upstream}/{chart.name}", None
    return chart.name, chart.upstream


def release(
    resource_name: str,
    release_name: str,
    chart: Chart,
    install: Install,
    parent: pulumi.Resource,
    depends_on: list[pulumi.Resource] | None = None,
) -> k8s.helm.v3.Release:
    """A Helm release; by default it waits for its workloads to be ready (so dependents can rely on it)."""
    ref, repo = locate(chart, install.sources)
    return k8s.helm.v3.Release(
        resource_name,
        k8s.helm.v3.ReleaseArgs(
            name=release_name,
            chart=ref,
            version=chart.version,
            namespace=chart.namespace,
            create_namespace=True,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repo) if repo else None,
            values=dict(chart.values),
            skip_await=not install.wait_for_ready,
            # Chart hooks are Jobs (Kyverno's pre-delete webhook cleanup): where nothing waits for
            # workloads, a hook would hold the install or uninstall until Helm's timeout.
            disable_webhooks=not install.wait_for_ready,
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on or []),
    )
