"""The shared exit: its namespace (ambient), the Gateway, and the ListenerPolicy JSON access log."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from .. import resources
from ..manifests.kinds import Obj
from ..settings import names


@dataclass(frozen=True)
class EgressGatewayArgs:
    objects: list[Obj]  # manifests.gateway.gateway_objects
    gateway_crds: tuple[pulumi.Resource, ...]  # Gateway API CRDs and the kgateway controller
    kgateway_crds: pulumi.Resource
    mesh_ready: tuple[pulumi.Resource, ...]  # ztunnel/cni before the namespace is enrolled


class EgressGateway(pulumi.ComponentResource):
    def __init__(self, name: str, args: EgressGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:EgressGateway", name, {}, opts)
        ns_obj, gw_obj, log_obj = args.objects
        self.namespace = resources.create(
            f"{name}-namespace", ns_obj, pulumi.ResourceOptions(parent=self, depends_on=list(args.mesh_ready))
        )
        self.gateway = resources.create(
            f"{name}-gateway",
            gw_obj,
            pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, *args.gateway_crds]),
        )
        self.access_log = resources.create(
            f"{name}-access-log",
            log_obj,
            pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, args.kgateway_crds]),
        )
        self.address = names.gateway_address()
        self.register_outputs({"address": self.address, "gateway": self.gateway.urn})
