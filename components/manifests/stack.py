"""The one list of a stack's objects: built once here, consumed by the program, `make print`, the
sandbox, the golden files and the schema tests alike."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..settings.config import Approval, StackConfig, Team
from . import admission, authz, gateway, tenancy
from .approvals import covering
from .destination import credential_secret, destination_objects
from .kinds import Obj

# The only kinds whose objects the approval registry changes (labels and annotations of the
# ServiceEntry): a team stack lays everything else out before the registry arrives.
REGISTRY_DEPENDENT_KINDS = frozenset({"ServiceEntry"})

# Stands in for the Ollama container's address where it is not known (TEST-NET-1, never routable).
OLLAMA_ADDRESS_PLACEHOLDER = "192.0.2.10"


@dataclass(frozen=True)
class TeamObjects:
    """What a team stack writes: one list of objects per destination, in its own namespace. Its
    namespace, guard, grant and identity are the platform's (StackObjects.tenants)."""

    team: Team
    destinations: dict[str, list[Obj]]  # by destination name, in creation order
    # The credentials the gateway adds (destination.credential_secret; values are placeholders)
    credentials: Obj | None = None

    def all(self) -> Iterator[Obj]:
        for objs in self.destinations.values():
            yield from objs
        if self.credentials is not None:
            yield self.credentials


@dataclass(frozen=True)
class StackObjects:
    """Everything a stack creates directly (Helm charts' contents and the Gateway API bundle aside)."""

    gateway: list[Obj] = field(default_factory=list)  # platform: the shared egress gateway
    authz: list[Obj] = field(default_factory=list)  # platform: the authz policies (approvals, generic, default deny)
    # platform: the label ClusterPolicy, the registry ValidatingPolicies, and the registry they read
    admission: list[Obj] = field(default_factory=list)
    # platform: the namespaces of team identities and credentials, then per team its namespace, guard,
    # grant, identity and credentials Secret
    tenants_namespace: list[Obj] = field(default_factory=list)
    tenants: dict[str, list[Obj]] = field(default_factory=dict)
    team: TeamObjects | None = None

    def all(self) -> list[Obj]:
        out = [*self.gateway, *self.authz, *self.admission, *self.tenants_namespace]
        for objs in self.tenants.values():
            out.extend(objs)
        if self.team is not None:
            out.extend(self.team.all())
        return out


def team_objects(
    team: Team,
    destinations: Sequence[Any],
    registry: Sequence[Approval],
    today: dt.date,
    addresses: Mapping[str, Sequence[Any]] | None = None,
) -> TeamObjects:
    """A team's objects; the registry decides only the approval marks, never which objects exist.

    `addresses` overrides a destination's STATIC endpoints (the platform passes the Ollama
    container's address, known only at deploy time).
    """
    addresses = addresses or {}
    per_destination = {
        d.name: destination_objects(
            team, d, addresses.get(d.name), covering(registry, d.host, d.port, team.name), today
        )
        for d in destinations
    }
    return TeamObjects(team, per_destination, credential_secret(team, destinations))


def registry_addresses(cfg: StackConfig, addresses: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Deploy-time STATIC endpoints (by destination name) as the registry lists them (by host).

    Addresses not known yet (not strings) are left out: the program adds them once they are.
    """
    hosts = {d.name: d.host for d in cfg.destinations}
    return {hosts[name]: [a for a in addrs if isinstance(a, str)] for name, addrs in addresses.items() if name in hosts}


def stack_objects(
    cfg: StackConfig,
    today: dt.date,
    registry: Sequence[Approval] | None = None,
    addresses: Mapping[str, Sequence[Any]] | None = None,
) -> StackObjects:
    """What the stack creates directly. A platform stack's registry is its own; a team stack's comes
    from its platform (pass it; without it every destination is unapproved)."""
    if cfg.platform is not None:
        registry = cfg.approvals_in_force
        if cfg.platform.ollama.enabled and addresses is None:
            addresses = {cfg.platform.ollama.destination: [OLLAMA_ADDRESS_PLACEHOLDER]}
    team = None
    if cfg.team is not None:
        team = team_objects(cfg.team, cfg.destinations, registry or [], today, addresses)
    if cfg.platform is None:
        return StackObjects(team=team)
    return StackObjects(
        gateway=gateway.gateway_objects(cfg.teams),
        authz=authz.platform_configmaps(
            authz.listener_owners(cfg.teams), authz.approval_grants(cfg.teams, cfg.approvals_in_force)
        ),
        admission=[
            admission.cluster_policy(),
            admission.registry_policy(),
            admission.route_policy(),
            admission.policy_retention(),
            admission.registry_configmap(cfg.teams, cfg.approvals_in_force, registry_addresses(cfg, addresses or {})),
        ],
        tenants_namespace=[tenancy.tenants_namespace(), tenancy.credentials_namespace()],
        tenants=tenancy.tenants(cfg.teams),
        team=team,
    )
