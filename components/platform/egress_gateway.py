"""The shared exit: its namespace (ambient), the Gateway, the ListenerPolicy JSON access log, a
ListenerSet per team, and the mesh's policies on its pods (which namespace may open which port,
mTLS only)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from .. import resources
from ..manifests import kinds
from ..manifests.kinds import Obj
from ..settings import names


@dataclass(frozen=True)
class EgressGatewayArgs:
    objects: list[Obj]  # manifests.gateway.gateway_objects
    gateway_crds: tuple[pulumi.Resource, ...]  # Gateway API CRDs and the kgateway controller
    kgateway_crds: pulumi.Resource
    mesh_ready: tuple[pulumi.Resource, ...]  # ztunnel/cni before the namespace is enrolled
    istio_crds: tuple[pulumi.Resource, ...]  # AuthorizationPolicy, PeerAuthentication (and istiod's webhook)
    wait: bool = True  # `pulumi up` waits until kgateway has programmed the Gateway (not where nothing runs)


class EgressGateway(pulumi.ComponentResource):
    def __init__(self, name: str, args: EgressGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:EgressGateway", name, {}, opts)
        ns_obj, gw_obj, log_obj, *rest = args.objects
        mesh = [o for o in rest if o["apiVersion"].startswith("security.istio.io/")]
        listener_sets = [o for o in rest if o["kind"] == "ListenerSet"]
        self.namespace = resources.create(
            f"{name}-namespace", ns_obj, pulumi.ResourceOptions(parent=self, depends_on=list(args.mesh_ready))
        )
        self.mesh_policies = [
            resources.create(
                f"{name}-{o['kind'].lower()}-{o['metadata']['name']}",
                o,
                pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, *args.istio_crds]),
            )
            for o in mesh
        ]
        # The Gateway (so its pods) only once ztunnel knows which namespace may open which port.
        self.gateway = resources.create(
            f"{name}-gateway",
            kinds.awaited(gw_obj) if args.wait else gw_obj,
            pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, *args.gateway_crds, *self.mesh_policies]),
        )
        self.access_log = resources.create(
            f"{name}-access-log",
            log_obj,
            pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, args.kgateway_crds]),
        )
        # A ListenerSet attaches to its Gateway whenever both exist: no wait on the Gateway.
        self.listener_sets = {
            o["metadata"]["labels"][names.TEAM_LABEL]: resources.create(
                f"{name}-listeners-{o['metadata']['labels'][names.TEAM_LABEL]}",
                o,
                pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, *args.gateway_crds[:1]]),
            )
            for o in listener_sets
        }
        # Known once the Gateway is (programmed, where the platform waits): outputs read from it.
        self.address: pulumi.Output[str] = self.gateway.urn.apply(lambda _: names.gateway_address())
        self.register_outputs(
            {"address": self.address, "gateway": self.gateway.urn, "teamListeners": sorted(self.listener_sets)}
        )
