"""EgressPath: one destination's objects; TeamEgress: a team's namespace, guard, paths and authz grant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from .. import resources
from ..manifests.approvals import is_marked_approved
from ..manifests.kinds import Obj
from ..manifests.stack import REGISTRY_DEPENDENT_KINDS, TeamObjects

# Platform pieces each kind of object needs first, by kind (CRDs, webhooks, the mesh). Team stacks
# run against a platform that is already up and pass none.
Needs = Mapping[str, Sequence[pulumi.Resource]]


def _opts(parent: pulumi.Resource, kind: str, needs: Needs, *extra: pulumi.Resource) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, depends_on=[*needs.get(kind, ()), *extra])


def _item(objs: pulumi.Output[list[Obj]], i: int) -> pulumi.Output[Obj]:
    return objs.apply(lambda r: r[i])


def _destination(team: pulumi.Output[TeamObjects], name: str) -> pulumi.Output[list[Obj]]:
    return team.apply(lambda t: t.destinations[name])


def _create_all(
    parent: pulumi.Resource,
    prefix: str,
    objs: Sequence[Obj],
    resolved: pulumi.Output[list[Obj]] | None,
    needs: Needs,
    *extra: pulumi.Resource,
) -> dict[str, pulumi.CustomResource]:
    out = {}
    for i, o in enumerate(objs):
        late = resolved is not None and o["kind"] in REGISTRY_DEPENDENT_KINDS
        body = _item(resolved, i) if late and resolved is not None else None
        out[o["kind"]] = resources.create(
            resources.child_name(prefix, o), o, _opts(parent, o["kind"], needs, *extra), body
        )
    return out


@dataclass(frozen=True)
class EgressPathArgs:
    objects: list[Obj]  # the destination's objects (manifests.stack.team_objects)
    # The same objects once the approval registry is known, where it arrives as an Output (team stacks).
    resolved: pulumi.Output[list[Obj]] | None = None
    needs: Needs = field(default_factory=dict)
    namespace: pulumi.Resource | None = None  # the team namespace, when this stack creates it


class EgressPath(pulumi.ComponentResource):
    """ServiceEntry, HTTPRoute, GatewayExtension, TrafficPolicy (and TLS origination for HTTPS)."""

    def __init__(self, name: str, args: EgressPathArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:EgressPath", name, {}, opts)
        in_ns = [args.namespace] if args.namespace is not None else []
        self.resources = _create_all(self, name, args.objects, args.resolved, args.needs, *in_ns)
        final = args.resolved if args.resolved is not None else pulumi.Output.from_input(args.objects)
        self.host: str = args.objects[0]["spec"]["hosts"][0]
        self.approved: pulumi.Output[bool] = final.apply(lambda objs: is_marked_approved(objs[0]))
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
    objects: TeamObjects
    resolved: pulumi.Output[TeamObjects] | None = None  # see EgressPathArgs.resolved
    needs: Needs = field(default_factory=dict)


class TeamEgress(pulumi.ComponentResource):
    """A team's namespace (enrolled in ambient), its bypass guard, its EgressPaths and the grant that
    lets its GatewayExtensions reach the authz Service. What its destinations require travels in their
    TrafficPolicies (the route's context); the team writes no policy."""

    def __init__(self, name: str, args: TeamEgressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:TeamEgress", name, {}, opts)
        objs, needs, later = args.objects, args.needs, args.resolved
        ns_obj, guard_obj = objs.namespace
        self.namespace = resources.create(f"{name}-namespace", ns_obj, _opts(self, "Namespace", needs))
        self.network_policy = resources.create(
            f"{name}-networkpolicy", guard_obj, _opts(self, "NetworkPolicy", needs, self.namespace)
        )
        self.paths = {
            dest: EgressPath(
                f"{name}-{dest}",
                EgressPathArgs(
                    objects=dest_objs,
                    resolved=_destination(later, dest) if later is not None else None,
                    needs=needs,
                    namespace=self.namespace,
                ),
                pulumi.ResourceOptions(parent=self),
            )
            for dest, dest_objs in objs.destinations.items()
        }
        outputs: dict[str, pulumi.Input[object]] = {
            "namespace": objs.team.namespace,
            "destinations": {d: p.approved for d, p in self.paths.items()},
        }
        if objs.authz:
            (grant,) = objs.authz  # does not depend on the approval registry
            self.reference_grant = resources.create(
                f"{name}-referencegrant", grant, _opts(self, "ReferenceGrant", needs)
            )
        self.register_outputs(outputs)
