"""Kyverno, the admission controller that enforces the approval rules in the cluster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from ..manifests import admission
from ..settings import names, versions
from .charts import Chart, Install, release


def kyverno_values(install: Install) -> dict[str, Any]:
    """The kyverno chart's values: read access for what our policies read (its ClusterRoles cover only
    core objects and Kyverno's own, so the route policy's lists would be forbidden, and reports of the
    background ClusterPolicy could not list ServiceEntries). The background controller runs generate and
    mutate-existing rules only (none here), so it needs nothing more."""
    values: dict[str, Any] = {
        "admissionController": {
            "rbac": {"clusterRole": {"extraResources": admission.kyverno_read_rules(admission.POLICY_LISTS)}}
        },
        "reportsController": {
            "rbac": {"clusterRole": {"extraResources": admission.kyverno_read_rules(admission.BACKGROUND_SCANS)}}
        },
    }
    if not install.wait_for_ready:
        # Its pre-delete hooks are Jobs (scale to zero, remove webhooks): where nothing runs workloads to
        # completion, they would hold the uninstall until Helm's timeout.
        values["webhooksCleanup"] = {"enabled": False}
    return values


def kyverno_chart(version: str, install: Install) -> Chart:
    return Chart("kyverno", version, names.KYVERNO_NAMESPACE, versions.KYVERNO_REPO, kyverno_values(install))


@dataclass(frozen=True)
class KyvernoArgs:
    chart_version: str
    install: Install = field(default_factory=Install)


class Kyverno(pulumi.ComponentResource):
    """Kyverno's admission controller; the release waits until its webhook is ready."""

    def __init__(self, name: str, args: KyvernoArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:Kyverno", name, {}, opts)
        self.release = release(
            f"{name}-release", "kyverno", kyverno_chart(args.chart_version, args.install), args.install, self
        )
        self.register_outputs({"chartVersion": args.chart_version, "status": self.release.status})
