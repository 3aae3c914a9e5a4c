"""kgateway (CRDs, controller with Istio integration) and the shared egress Gateway with its access log."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from . import builders, k8s, names, versions
from .helm import Chart, release


def kgateway_charts(version: str) -> dict[str, Chart]:
    """kgateway-crds, then kgateway; Istio integration is what lets routes target ServiceEntries."""
    ns = names.KGATEWAY_NAMESPACE
    prefix = versions.KGATEWAY_CHART_PREFIX
    return {
        "crds": Chart(f"{prefix}/kgateway-crds", version, ns),
        "controller": Chart(
            f"{prefix}/kgateway",
            version,
            ns,
            values={"controller": {"extraEnv": {"KGW_ENABLE_ISTIO_INTEGRATION": "true"}}},
        ),
    }


@dataclass(frozen=True)
class KgatewayArgs:
    version: str
    # The controller watches Gateway API and Istio types: their CRDs must exist first.
    needs: tuple[pulumi.Resource, ...] = ()


class Kgateway(pulumi.ComponentResource):
    def __init__(self, name: str, args: KgatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:Kgateway", name, {}, opts)
        charts = kgateway_charts(args.version)
        self.crds = release(f"{name}-crds", "kgateway-crds", charts["crds"], self)
        self.controller = release(
            f"{name}-controller", "kgateway", charts["controller"], self, [self.crds, *args.needs]
        )
        self.register_outputs({"version": args.version, "controllerStatus": self.controller.status})


@dataclass(frozen=True)
class EgressGatewayArgs:
    gateway_crds: tuple[pulumi.Resource, ...]  # Gateway API CRDs and the kgateway controller
    kgateway_crds: pulumi.Resource
    mesh_ready: tuple[pulumi.Resource, ...]  # ztunnel/cni before the namespace is enrolled


class EgressGateway(pulumi.ComponentResource):
    """The shared exit: namespace (ambient), Gateway, and the ListenerPolicy JSON access log."""

    def __init__(self, name: str, args: EgressGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:EgressGateway", name, {}, opts)
        ns_obj, gw_obj, log_obj = builders.gateway_objects()
        self.namespace = k8s.create(
            f"{name}-namespace", ns_obj, pulumi.ResourceOptions(parent=self, depends_on=list(args.mesh_ready))
        )
        self.gateway = k8s.create(
            f"{name}-gateway",
            gw_obj,
            pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, *args.gateway_crds]),
        )
        self.access_log = k8s.create(
            f"{name}-access-log",
            log_obj,
            pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, args.kgateway_crds]),
        )
        self.address = names.gateway_address()
        self.register_outputs({"address": self.address, "gateway": self.gateway.urn})
