"""What the platform holds for each team: its namespace (mesh enrolment and egress guard), the grant
to the authz Service, and the team's own identity for its stack, bound to exactly the kinds a team
stack writes, in its own namespace only.

None of these is the team's to change: the team identity has no rights on namespaces,
NetworkPolicies, ReferenceGrants, Roles, ServiceAccounts or Secrets anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..settings import names
from ..settings.config import Team, TeamEntry
from . import authz, namespace
from .kinds import Obj

# What a team stack creates (manifests/destination.py), and nothing else.
TEAM_KINDS: dict[str, tuple[str, ...]] = {
    "networking.istio.io": ("serviceentries",),
    "gateway.networking.k8s.io": ("httproutes",),
    "gateway.kgateway.dev": ("trafficpolicies", "gatewayextensions", "backendconfigpolicies"),
}
TEAM_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


def tenants_namespace() -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": names.metadata(names.TENANTS_NAMESPACE, None)}


def credentials_namespace() -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": names.metadata(names.CREDENTIALS_NAMESPACE, None)}


def credentials_secret(team: Team) -> Obj:
    """The team's Secret of upstream credentials, empty until its stack writes its keys. Outside the
    team's namespace: no workload of the team can mount it; the gateway reads it (ReferenceGrant)."""
    meta = names.metadata(team.namespace, names.CREDENTIALS_NAMESPACE, team.name)
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque"}


def credentials_role(team: Team) -> Obj:
    """The team's identity may read and write its own credentials Secret, by name, and nothing else there."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": names.metadata(
            names.object_name(names.TEAM_ROLE, team.name), names.CREDENTIALS_NAMESPACE, team.name
        ),
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [team.namespace], "verbs": ["get", "patch"]}
        ],
    }


def credentials_binding(team: Team) -> Obj:
    role = credentials_role(team)
    return {
        **role_binding(team),
        "metadata": dict(role["metadata"]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]},
    }


def credentials_grant(team: Team) -> Obj:
    """Lets the team's TrafficPolicies name its credentials Secret (and no other) across namespaces."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": names.metadata(
            names.object_name("egress-credentials", team.name), names.CREDENTIALS_NAMESPACE, team.name
        ),
        "spec": {
            "from": [{"group": "gateway.kgateway.dev", "kind": "TrafficPolicy", "namespace": team.namespace}],
            "to": [{"group": "", "kind": "Secret", "name": team.namespace}],
        },
    }


def service_account(team: Team) -> Obj:
    meta = names.metadata(names.team_identity(team.name), names.TENANTS_NAMESPACE, team.name)
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False}


def token_secret(team: Team) -> Obj:
    """A long-lived token for the team's CI (the token controller fills it in); rotate by deleting it."""
    meta = names.metadata(names.team_token(team.name), names.TENANTS_NAMESPACE, team.name)
    meta["annotations"] = {"kubernetes.io/service-account.name": names.team_identity(team.name)}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "kubernetes.io/service-account-token"}


def role(team: Team) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": names.metadata(names.TEAM_ROLE, team.namespace, team.name),
        "rules": [
            {"apiGroups": [group], "resources": list(resources), "verbs": list(TEAM_VERBS)}
            for group, resources in TEAM_KINDS.items()
        ],
    }


def role_binding(team: Team) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": names.metadata(names.TEAM_ROLE, team.namespace, team.name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names.TEAM_ROLE},
        "subjects": [
            {"kind": "ServiceAccount", "name": names.team_identity(team.name), "namespace": names.TENANTS_NAMESPACE}
        ],
    }


def tenant_objects(entry: TeamEntry) -> list[Obj]:
    """One team's platform-held objects, in creation order (the namespace first)."""
    team = Team(name=entry.name, namespace=entry.namespace)
    return [
        namespace.namespace(team),
        namespace.network_policy(team, entry.port),
        authz.reference_grant(team),
        service_account(team),
        token_secret(team),
        role(team),
        role_binding(team),
        credentials_secret(team),
        credentials_role(team),
        credentials_binding(team),
        credentials_grant(team),
    ]


def tenants(teams: Sequence[TeamEntry]) -> dict[str, list[Obj]]:
    """Every team's platform-held objects, by team name."""
    return {t.name: tenant_objects(t) for t in teams}
