"""The admission policy in the cluster: Kyverno enforces the approval rules on every write."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from .. import resources
from ..manifests.kinds import Obj


@dataclass(frozen=True)
class AdmissionPolicyArgs:
    policy: Obj  # manifests.admission.cluster_policy()
    kyverno: pulumi.Resource  # the release whose webhook must be ready first


class AdmissionPolicy(pulumi.ComponentResource):
    """Rejects MESH_EXTERNAL ServiceEntries without a valid, unexpired approval, in every namespace."""

    def __init__(self, name: str, args: AdmissionPolicyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:AdmissionPolicy", name, {}, opts)
        self.policy = resources.create(
            f"{name}-clusterpolicy", args.policy, pulumi.ResourceOptions(parent=self, depends_on=[args.kyverno])
        )
        self.register_outputs({"policy": args.policy["metadata"]["name"], "urn": self.policy.urn})
