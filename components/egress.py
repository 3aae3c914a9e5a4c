"""EgressPath: one external destination's objects; TeamEgress: a team's namespace, guard and authz files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from . import approvals as registry
from . import authz, builders, k8s
from .config import Approval, Destination, Team

# Platform pieces each kind of object needs first, by kind (CRDs, webhooks, the mesh). Team stacks
# run against a platform that is already up and pass none.
Needs = Mapping[str, Sequence[pulumi.Resource]]


def _opts(parent: pulumi.Resource, kind: str, needs: Needs, *extra: pulumi.Resource) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, depends_on=[*needs.get(kind, ()), *extra])


@dataclass(frozen=True)
class EgressPathArgs:
    team: Team
    destination: Destination
    # The approval registry (from the platform's config, or its stack output in a team stack).
    approvals: pulumi.Input[Sequence[Approval]] = ()
    today: dt.date = field(default_factory=dt.date.today)
    # STATIC endpoints known only at deploy time (the Ollama container's address); None: from config.
    addresses: Sequence[pulumi.Input[str]] | None = None
    needs: Needs = field(default_factory=dict)
    namespace: pulumi.Resource | None = None  # the team namespace, when this stack creates it


class EgressPath(pulumi.ComponentResource):
    """ServiceEntry, HTTPRoute, GatewayExtension, TrafficPolicy (and TLS origination for HTTPS)."""

    def __init__(self, name: str, args: EgressPathArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:EgressPath", name, {}, opts)
        team, dest = args.team, args.destination
        objs = builders.destination_objects(team, dest, args.addresses)
        # Approval marks depend on the registry, which a team stack only knows as an Output.
        approval = pulumi.Output.from_input(args.approvals).apply(
            lambda regs: registry.covering(regs, dest.host, dest.port, team.name)
        )
        entry = next(o for o in objs if o["kind"] == "ServiceEntry")
        entry["metadata"] = approval.apply(
            lambda a: builders.service_entry(team, dest, None, a, args.today)["metadata"]
        )
        in_ns = [args.namespace] if args.namespace is not None else []
        self.resources = {
            o["kind"]: k8s.create(k8s.child_name(name, o), o, _opts(self, o["kind"], args.needs, *in_ns)) for o in objs
        }
        self.host: pulumi.Output[str] = pulumi.Output.from_input(dest.host)
        self.approved: pulumi.Output[bool] = approval.apply(lambda a: registry.is_current(a, args.today))
        self.register_outputs(
            {
                "host": self.host,
                "approved": self.approved,
                "serviceEntry": self.resources["ServiceEntry"].urn,
                "httpRoute": self.resources["HTTPRoute"].urn,
            }
        )


@dataclass(frozen=True)
class TeamEgressArgs:
    team: Team
    destinations: Sequence[Destination]
    approvals: pulumi.Input[Sequence[Approval]] = ()
    today: dt.date = field(default_factory=dt.date.today)
    addresses: Mapping[str, Sequence[pulumi.Input[str]]] = field(default_factory=dict)
    needs: Needs = field(default_factory=dict)


class TeamEgress(pulumi.ComponentResource):
    """A team's namespace (enrolled in ambient), its bypass guard, its EgressPaths and authz policies."""

    def __init__(self, name: str, args: TeamEgressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:TeamEgress", name, {}, opts)
        team, needs = args.team, args.needs
        ns_obj = builders.namespace(team)
        self.namespace = k8s.create(f"{name}-namespace", ns_obj, _opts(self, "Namespace", needs))
        self.network_policy = k8s.create(
            f"{name}-networkpolicy", builders.network_policy(team), _opts(self, "NetworkPolicy", needs, self.namespace)
        )
        self.paths = [
            EgressPath(
                f"{name}-{d.name}",
                EgressPathArgs(
                    team=team,
                    destination=d,
                    approvals=args.approvals,
                    today=args.today,
                    addresses=args.addresses.get(d.name),
                    needs=needs,
                    namespace=self.namespace,
                ),
                pulumi.ResourceOptions(parent=self),
            )
            for d in args.destinations
        ]
        outputs: dict[str, pulumi.Input[object]] = {
            "namespace": team.namespace,
            "destinations": {d.name: path.approved for d, path in zip(args.destinations, self.paths, strict=True)},
        }
        if args.destinations:
            grant = authz.reference_grant(team)
            self.reference_grant = k8s.create(f"{name}-referencegrant", grant, _opts(self, "ReferenceGrant", needs))
            files = authz.team_configmap(team, args.destinations)
            self.authz_policies = k8s.create(f"{name}-authz-policies", files, _opts(self, "ConfigMap", needs))
            outputs["authzConfigMap"] = files["metadata"]["name"]
        self.register_outputs(outputs)
