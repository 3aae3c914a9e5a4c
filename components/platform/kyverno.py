"""Kyverno, the admission controller that enforces the approval rules in the cluster."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from ..settings import names, versions
from .charts import Chart, Install, release


def kyverno_chart(version: str, install: Install) -> Chart:
    # Its pre-delete hooks are Jobs (scale to zero, remove webhooks): where nothing runs workloads to
    # completion, they would hold the uninstall until Helm's timeout.
    values = {} if install.wait_for_ready else {"webhooksCleanup": {"enabled": False}}
    return Chart("kyverno", version, names.KYVERNO_NAMESPACE, versions.KYVERNO_REPO, values)


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
