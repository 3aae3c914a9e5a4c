"""Admission-time governance: the Kyverno ClusterPolicy generated from the approval rules."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from . import k8s
from .rules import admission_cluster_policy


@dataclass(frozen=True)
class AdmissionPolicyArgs:
    kyverno: pulumi.Resource  # the release whose webhook must be ready first


class AdmissionPolicy(pulumi.ComponentResource):
    """Rejects MESH_EXTERNAL ServiceEntries without a valid, unexpired approval, in every namespace."""

    def __init__(self, name: str, args: AdmissionPolicyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:AdmissionPolicy", name, {}, opts)
        obj = admission_cluster_policy()
        self.policy = k8s.create(
            f"{name}-clusterpolicy", obj, pulumi.ResourceOptions(parent=self, depends_on=[args.kyverno])
        )
        self.register_outputs({"policy": obj["metadata"]["name"], "urn": self.policy.urn})
