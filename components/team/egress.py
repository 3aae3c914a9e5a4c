"""EgressPath: one destination's objects; TeamEgress: a team's paths."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from .. import resources
from ..manifests.approvals import is_marked_approved
from ..manifests.kinds import Obj
from ..manifests.stack import REGISTRY_DEPENDENT_KINDS, TeamObjects
from ..settings.config import StackConfig

# Platform pieces each kind of object needs first, by kind (CRDs, webhooks, the mesh). Team stacks
# run against a platform that is already up and pass none.
Needs = Mapping[str, Sequence[pulumi.Resource]]


def _opts(parent: pulumi.Resource, kind: str, needs: Needs, *extra: pulumi.Resource) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, depends_on=[*needs.get(kind, ()), *extra])


def _late_metadata(team: pulumi.Output[TeamObjects], destination: str, i: int) -> pulumi.Output[Obj]:
    """The metadata of a destination's i-th object, from the team's objects once the registry is known."""
    return team.apply(lambda t: t.destinations[destination][i]["metadata"])


def _late_approved(team: pulumi.Output[TeamObjects], destination: str) -> pulumi.Output[bool]:
    return team.apply(lambda t: is_marked_approved(t.destinations[destination][0]))


def credential_values(cfg: StackConfig) -> dict[str, pulumi.Output[str]]:
    """Each credential's header value (its format around the secret), by destination, as secrets."""
    return {
        d.name: pulumi.Output.secret(d.credential.value(cfg.credentials[d.credential.secret].get_secret_value()))
        for d in cfg.destinations
        if d.credential is not None
    }


@dataclass(frozen=True)
class EgressPathArgs:
    destination: str  # the destination's name (its key in TeamObjects.destinations)
    objects: list[Obj]  # the destination's objects (manifests.stack.team_objects)
    # The team's objects once the approval registry is known, where it arrives as an Output (team
    # stacks): the objects of REGISTRY_DEPENDENT_KINDS take their metadata from them. One Output for
    # the whole team, read per object, keeps the number of Outputs (and asyncio tasks) per path low.
    resolved: pulumi.Output[TeamObjects] | None = None
    needs: Needs = field(default_factory=dict)


class EgressPath(pulumi.ComponentResource):
    """ServiceEntry, HTTPRoute, GatewayExtension, TrafficPolicy (and TLS origination for HTTPS)."""

    def __init__(self, name: str, args: EgressPathArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:EgressPath", name, {}, opts)
        late = args.resolved
        self.resources: dict[str, pulumi.CustomResource] = {}
        for i, o in enumerate(args.objects):
            kind = o["kind"]
            metadata = None
            if late is not None and kind in REGISTRY_DEPENDENT_KINDS:
                metadata = _late_metadata(late, args.destination, i)
            # A route waits for its TrafficPolicy and its ServiceEntry (and so is deleted before them):
            # admission admits a route only once both exist.
            after = [self.resources["TrafficPolicy"], self.resources["ServiceEntry"]] if kind == "HTTPRoute" else []
            self.resources[kind] = resources.create(
                resources.child_name(name, o), o, _opts(self, kind, args.needs, *after), metadata
            )
        self.host: str = args.objects[0]["spec"]["hosts"][0]
        self.approved: pulumi.Output[bool] = (
            _late_approved(late, args.destination)
            if late is not None
            # Only the ServiceEntry: its endpoints are the only place an Output can be (the platform's
            # Ollama address), and unwrapping every object of every path costs an Output per value.
            else pulumi.Output.from_input(args.objects[0]).apply(is_marked_approved)
        )
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
    # The credentials' values by destination (secret Outputs), for objects.credentials; None where the
    # stack writes no values (GitOps render: files would hold them in clear).
    credential_values: Mapping[str, pulumi.Output[str]] | None = None


class TeamEgress(pulumi.ComponentResource):
    """A team's EgressPaths, in the namespace the platform made for it. What its destinations
    require travels in their TrafficPolicies (the route's context); the team writes no policy, and
    its namespace, guard and grant are the platform's (platform/tenants.py)."""

    def __init__(self, name: str, args: TeamEgressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:TeamEgress", name, {}, opts)
        objs = args.objects
        self.paths: dict[str, EgressPath] = {}
        for dest, dest_objs in objs.destinations.items():
            path_args = EgressPathArgs(dest, dest_objs, args.resolved, args.needs)
            self.paths[dest] = EgressPath(f"{name}-{dest}", path_args, pulumi.ResourceOptions(parent=self))
        if objs.credentials is not None and args.credential_values is not None:
            # A patch of the platform's Secret: the team owns only its keys' values, as secrets.
            values: pulumi.Output[dict[str, str]] = pulumi.Output.secret(pulumi.Output.all(**args.credential_values))
            self.credentials = k8s.core.v1.SecretPatch(
                f"{name}-credentials",
                metadata=objs.credentials["metadata"],
                string_data=values,
                opts=_opts(self, "Secret", args.needs),
            )
        self.register_outputs(
            {
                "namespace": objs.team.namespace,
                "destinations": {d: p.approved for d, p in self.paths.items()},
            }
        )
