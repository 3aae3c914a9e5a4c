"""Gateway API CRDs and Istio ambient (base, istiod, cni, ztunnel)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from . import names, versions
from .helm import Chart, release


@dataclass(frozen=True)
class GatewayApiArgs:
    version: str


class GatewayApiCrds(pulumi.ComponentResource):
    """The Gateway API standard-channel CRDs from the pinned release manifest."""

    def __init__(self, name: str, args: GatewayApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:GatewayApiCrds", name, {}, opts)
        self.url = versions.Pins(gateway_api=args.version).gateway_api_crds_url()
        self.crds = k8s.yaml.v2.ConfigFile(f"{name}-standard", file=self.url, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"url": self.url, "version": args.version})


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


class IstioAmbient(pulumi.ComponentResource):
    """Istio in ambient mode.

    base carries the CRDs, so istiod, cni and ztunnel depend on it and install in parallel.
    `ready` is what a namespace must wait for before it is enrolled (ztunnel and cni running).
    """

    def __init__(self, name: str, args: IstioArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:IstioAmbient", name, {}, opts)
        charts = istio_charts(args.version)
        self.base = release(f"{name}-base", "istio-base", charts["base"], self)
        self.istiod = release(f"{name}-istiod", "istiod", charts["istiod"], self, [self.base])
        self.cni = release(f"{name}-cni", "istio-cni", charts["cni"], self, [self.base])
        self.ztunnel = release(f"{name}-ztunnel", "ztunnel", charts["ztunnel"], self, [self.base])
        # ServiceEntries need the CRDs (base) and istiod's validating webhook.
        self.crds_and_webhook: list[pulumi.Resource] = [self.base, self.istiod]
        self.ready: list[pulumi.Resource] = [self.istiod, self.cni, self.ztunnel]
        self.register_outputs({"version": args.version, "istiodStatus": self.istiod.status})
