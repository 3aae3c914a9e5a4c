"""Istio in ambient mode: base (CRDs), istiod, cni and ztunnel."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from ..settings import names, versions
from .charts import Chart, Install, release


def istio_charts(version: str) -> dict[str, Chart]:
    """The four ambient charts; istiod and cni need `profile: ambient`."""
    ns = names.ISTIO_NAMESPACE
    repo = versions.ISTIO_REPO
    return {
        "base": Chart("base", version, ns, repo),
        "istiod": Chart("istiod", version, ns, repo, {"profile": "ambient"}),
        "cni": Chart("cni", version, ns, repo, {"profile": "ambient"}),
        "ztunnel": Chart("ztunnel", version, ns, repo),
    }


@dataclass(frozen=True)
class IstioArgs:
    version: str
    install: Install = field(default_factory=Install)


class IstioAmbient(pulumi.ComponentResource):
    """Istio in ambient mode.

    base carries the CRDs, so istiod, cni and ztunnel depend on it and install in parallel.
    `ready` is what a namespace must wait for before it is enrolled (ztunnel and cni running).
    """

    def __init__(self, name: str, args: IstioArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:IstioAmbient", name, {}, opts)
        charts = istio_charts(args.version)
        self.base = release(f"{name}-base", "istio-base", charts["base"], args.install, self)
        self.istiod = release(f"{name}-istiod", "istiod", charts["istiod"], args.install, self, [self.base])
        self.cni = release(f"{name}-cni", "istio-cni", charts["cni"], args.install, self, [self.base])
        self.ztunnel = release(f"{name}-ztunnel", "ztunnel", charts["ztunnel"], args.install, self, [self.base])
        # ServiceEntries need the CRDs (base) and istiod's validating webhook.
        self.crds_and_webhook: list[pulumi.Resource] = [self.base, self.istiod]
        self.ready: list[pulumi.Resource] = [self.istiod, self.cni, self.ztunnel]
        self.register_outputs({"version": args.version, "istiodStatus": self.istiod.status})
