"""The teams' side of the platform: each team's namespace (mesh enrolment, egress guard), the grant
to the authz Service, the team's own identity for its stack, and the Secret its upstream credentials
go in. The platform holds all of them; a team's identity can change none but its credentials'
values (manifests/tenancy.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi

from .. import resources
from ..manifests.kinds import Obj
from ..settings import names


@dataclass(frozen=True)
class TenantsArgs:
    namespaces: Sequence[Obj]  # of identities and of credentials (manifests.tenancy)
    teams: Mapping[str, list[Obj]]  # per team, manifests.tenancy.tenant_objects
    mesh_ready: Sequence[pulumi.Resource]  # before a namespace is enrolled in ambient
    gateway_api: pulumi.Resource  # ReferenceGrant's CRD
    authz_namespace: pulumi.Resource  # where the grants to the authz Service go
    enforcing: Sequence[pulumi.Resource] = ()  # admission's policies and the Gateway: before any team identity


class Tenants(pulumi.ComponentResource):
    def __init__(self, name: str, args: TenantsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:Tenants", name, {}, opts)
        short = {names.TENANTS_NAMESPACE: "identities", names.CREDENTIALS_NAMESPACE: "credentials"}
        shared = {
            o["metadata"]["name"]: resources.create(
                f"{name}-{short[o['metadata']['name']]}-namespace", o, pulumi.ResourceOptions(parent=self)
            )
            for o in args.namespaces
        }
        self.namespaces: dict[str, pulumi.CustomResource] = {}
        self.credentials: dict[str, pulumi.CustomResource] = {}  # each team's credentials Secret
        self.identities: dict[str, pulumi.CustomResource] = {}  # each team's token Secret (its identity)
        for team, objs in args.teams.items():
            made: dict[tuple[str, str], pulumi.CustomResource] = {}
            for obj in objs:
                kind, ns = obj["kind"], obj["metadata"].get("namespace", "")
                if kind == "Namespace":
                    deps = list(args.mesh_ready)
                elif ns == names.AUTHZ_NAMESPACE:
                    deps = [args.gateway_api, args.authz_namespace]
                elif ns in shared:
                    deps = [shared[ns], *([args.gateway_api] if kind == "ReferenceGrant" else [])]
                    if kind == "Secret" and ns == names.TENANTS_NAMESPACE:
                        deps.append(made[("ServiceAccount", ns)])  # the token controller fills it for this account
                    if kind == "ServiceAccount" and ns == names.TENANTS_NAMESPACE:
                        deps.extend(args.enforcing)  # no team can write before the rules are enforced
                else:
                    deps = [made[("Namespace", "")]]
                suffix = "-credentials" if ns == names.CREDENTIALS_NAMESPACE else ""
                made[(kind, ns if kind != "Namespace" else "")] = resources.create(
                    f"{name}-{team}-{kind.lower()}{suffix}", obj, pulumi.ResourceOptions(parent=self, depends_on=deps)
                )
            self.namespaces[team] = made[("Namespace", "")]
            self.credentials[team] = made[("Secret", names.CREDENTIALS_NAMESPACE)]
            self.identities[team] = made[("Secret", names.TENANTS_NAMESPACE)]
        self.register_outputs({"teams": sorted(args.teams), "identities": names.TENANTS_NAMESPACE})
