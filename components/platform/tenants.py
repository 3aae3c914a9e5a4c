"""The teams' side of the platform: each team's namespace (mesh enrolment, egress guard), the grant
to the authz Service, and the team's own identity for its stack. The platform holds all of them; a
team's identity can change none (manifests/tenancy.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi

from .. import resources
from ..manifests.kinds import Obj
from ..settings import names


@dataclass(frozen=True)
class TenantsArgs:
    namespace: Obj  # the namespace of team identities (manifests.tenancy.tenants_namespace)
    teams: Mapping[str, list[Obj]]  # per team, manifests.tenancy.tenant_objects
    mesh_ready: Sequence[pulumi.Resource]  # before a namespace is enrolled in ambient
    gateway_api: pulumi.Resource  # ReferenceGrant's CRD
    authz_namespace: pulumi.Resource  # where the ReferenceGrants go


class Tenants(pulumi.ComponentResource):
    def __init__(self, name: str, args: TenantsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:Tenants", name, {}, opts)
        self.identities_namespace = resources.create(
            f"{name}-namespace", args.namespace, pulumi.ResourceOptions(parent=self)
        )
        self.namespaces: dict[str, pulumi.CustomResource] = {}
        after: dict[str, list[pulumi.Resource]] = {
            "Namespace": list(args.mesh_ready),
            "ReferenceGrant": [args.gateway_api, args.authz_namespace],
            "ServiceAccount": [self.identities_namespace],
            "Secret": [self.identities_namespace],
        }
        for team, objs in args.teams.items():
            made: dict[str, pulumi.CustomResource] = {}
            for obj in objs:
                kind = obj["kind"]
                deps = after[kind] if kind in after else [made["Namespace"]]
                if kind == "Secret":
                    deps = [*deps, made["ServiceAccount"]]
                made[kind] = resources.create(
                    f"{name}-{team}-{kind.lower()}", obj, pulumi.ResourceOptions(parent=self, depends_on=deps)
                )
            self.namespaces[team] = made["Namespace"]
        self.register_outputs({"teams": sorted(args.teams), "identities": names.TENANTS_NAMESPACE})
