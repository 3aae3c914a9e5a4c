"""Admission in the cluster: Kyverno enforces the approval rules on every write, from the registry the
cluster holds (a platform-owned ConfigMap no team can write), whatever labels a ServiceEntry carries."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from .. import resources
from ..manifests import kinds
from ..manifests.kinds import Obj


@dataclass(frozen=True)
class AdmissionPolicyArgs:
    cluster_policy: Obj  # manifests.admission.cluster_policy(): the approval marks (information, checked too)
    registry_policy: Obj  # manifests.admission.registry_policy(): decides from the registry
    route_policy: Obj  # manifests.admission.route_policy(): what team namespaces attach to the gateway
    retention_policy: Obj  # manifests.admission.policy_retention(): a route's policy outlives the route
    registry: pulumi.Input[Obj]  # manifests.admission.registry_configmap(...), an Output where addresses are
    kyverno: pulumi.Resource  # the release whose webhook must be ready first (its namespace holds the registry)
    wait: bool = True  # `pulumi up` waits until Kyverno reports each policy ready (not where nothing runs)


class AdmissionPolicy(pulumi.ComponentResource):
    def __init__(self, name: str, args: AdmissionPolicyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:AdmissionPolicy", name, {}, opts)
        registry = pulumi.Output.from_input(args.registry)
        ready = kinds.awaited if args.wait else (lambda o: o)
        # The registry exists before the policy that reads it: without it every ServiceEntry is refused.
        self.registry = k8s.core.v1.ConfigMap(
            f"{name}-registry",
            metadata=registry.apply(lambda o: o["metadata"]),
            data=registry.apply(lambda o: o["data"]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.kyverno]),
        )
        self.policy = resources.create(
            f"{name}-clusterpolicy",
            ready(args.cluster_policy),
            pulumi.ResourceOptions(parent=self, depends_on=[args.kyverno]),
        )
        self.registry_policy = resources.create(
            f"{name}-validatingpolicy",
            ready(args.registry_policy),
            pulumi.ResourceOptions(parent=self, depends_on=[args.kyverno, self.registry]),
        )
        self.route_policy = resources.create(
            f"{name}-route-policy",
            ready(args.route_policy),
            pulumi.ResourceOptions(parent=self, depends_on=[args.kyverno, self.registry]),
        )
        self.retention_policy = resources.create(
            f"{name}-retention-policy",
            ready(args.retention_policy),
            pulumi.ResourceOptions(parent=self, depends_on=[args.kyverno, self.registry]),
        )
        # What must hold before any team may write: every policy enforcing.
        self.enforcing: list[pulumi.Resource] = [
            self.policy,
            self.registry_policy,
            self.route_policy,
            self.retention_policy,
        ]
        self.register_outputs(
            {
                "policy": args.cluster_policy["metadata"]["name"],
                "registryPolicy": args.registry_policy["metadata"]["name"],
                "routePolicy": args.route_policy["metadata"]["name"],
                "urn": self.policy.urn,
            }
        )
