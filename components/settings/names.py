"""Names, labels and annotation keys: the one place that spells them.

Kubernetes limits that matter here: object names and label values are at most 63 characters
for DNS labels (RFC 1123); annotation keys are `prefix/name`.
"""

from __future__ import annotations

import hashlib
from typing import Any

PROJECT = "egress"

# Approval marking on ServiceEntries. The CrossGuard pack and the Kyverno ClusterPolicy read the
# same constants (the pack may override them through its config).
APPROVED_LABEL = "security.corp/egress-approved"
APPROVED_VALUE = "true"
TICKET_ANNOTATION = "security.corp/egress-ticket"
APPROVER_ANNOTATION = "security.corp/egress-approved-by"
EXPIRES_ANNOTATION = "security.corp/egress-expires"
# On an approved ServiceEntry whose approval lets its authorization fail open (the pack reads it;
# admission reads the registry itself).
FAIL_OPEN_ANNOTATION = "security.corp/egress-fail-open"
FAIL_OPEN_VALUE = "approved"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "egress-as-code"
PART_OF_LABEL = "app.kubernetes.io/part-of"
TEAM_LABEL = "egress.corp/team"
DESTINATION_LABEL = "egress.corp/destination"

# Set by the API server on every namespace to its name; nobody can change it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

AMBIENT_LABEL = "istio.io/dataplane-mode"
AMBIENT_VALUE = "ambient"

# Pod Security admission (built into the API server) on team namespaces: `restricted`, enforced, so no
# pod of a team takes the host's network (out of the NetworkPolicy and the mesh), a host port or host
# path, or privileges. The level's version is the pinned Kubernetes minor, so an upgrade that
# tightens the level is a reviewed change.
POD_SECURITY_LEVEL = "restricted"
POD_SECURITY_VERSION = "v1.34"
POD_SECURITY_LABELS = {
    **{f"pod-security.kubernetes.io/{mode}": POD_SECURITY_LEVEL for mode in ("enforce", "audit", "warn")},
    **{f"pod-security.kubernetes.io/{mode}-version": POD_SECURITY_VERSION for mode in ("enforce", "audit", "warn")},
}

# Shared platform objects.
GATEWAY_NAMESPACE = "egress-system"
GATEWAY_NAME = "egress-gateway"
GATEWAY_CLASS = "kgateway"
# The Gateway's own listener admits no route (from: Same, and nothing routes from the gateway's
# namespace): Gateway API needs one. Teams get listeners of their own, in ListenerSets (below).
GATEWAY_PORT = 80
GATEWAY_LISTENER = "platform"
ACCESS_LOG_POLICY = "egress-gateway-access-log"
# The label kgateway puts on a Gateway's pods (and the Service selects them by).
GATEWAY_POD_LABEL = "gateway.networking.k8s.io/gateway-name"
# The one listener of a team's ListenerSet: its port is the team's (egress:teams[].port).
TEAM_LISTENER = "http"
# Platform-owned mesh policies on the gateway's pods, enforced by ztunnel: which namespace may open
# which team port, and mTLS only (no plaintext from outside the mesh).
LISTENER_AUTHORIZATION = "egress-gateway-team-ports"
GATEWAY_PEER_AUTHENTICATION = "egress-gateway-strict-mtls"

AUTHZ_NAMESPACE = "kyverno-authz"
AUTHZ_SERVICE = "kyverno-authz-server"  # the 0.4.0 chart names the Service after the chart
AUTHZ_GRPC_PORT = 9081
AUTHZ_REQUEST_TIMEOUT = "2s"  # each Check (GatewayExtension grpcService.requestTimeout)
AUTHZ_POLICY_DIR = "/etc/egress-authz/policies"
# File names decide evaluation order in the authz server; the default deny must sort last.
DEFAULT_DENY_FILE = "zz-default-deny.yaml"
DEFAULT_DENY_POLICY = "egress-default-deny"

ISTIO_NAMESPACE = "istio-system"
KGATEWAY_NAMESPACE = "kgateway-system"
KYVERNO_NAMESPACE = "kyverno"

# Team identities: one ServiceAccount per team, in a platform namespace (so nothing a team may do in
# its own namespace reaches its identity), bound in the team's namespace to TEAM_ROLE.
TENANTS_NAMESPACE = "egress-tenants"
TEAM_ROLE = "egress-team"
# Credentials the gateway adds to upstream requests: one Secret per team, named after the team's
# namespace, in a namespace no workload of any team can mount from.
CREDENTIALS_NAMESPACE = "egress-credentials"
# On an approved ServiceEntry whose approval caps the rate: "<requests>/<per>/<burst>" (the pack reads it).
RATE_LIMIT_ANNOTATION = "security.corp/egress-rate-limit"

# ztunnel's HBONE port: in ambient, pod-to-pod traffic is tunnelled to this port on the peer.
HBONE_PORT = 15008


def labels(team: str | None = None, destination: str | None = None) -> dict[str, str]:
    """Common labels for every object the program creates."""
    out = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, PART_OF_LABEL: PROJECT}
    if team:
        out[TEAM_LABEL] = team
    if destination:
        out[DESTINATION_LABEL] = destination
    return out


def metadata(
    name: str, namespace: str | None, team: str | None = None, destination: str | None = None
) -> dict[str, Any]:
    """Object metadata with the common labels (namespace omitted for cluster-scoped objects)."""
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = labels(team, destination)
    return meta


def object_name(*parts: str, limit: int = 63) -> str:
    """Join parts with '-'; past `limit`, keep a readable prefix and a stable hash suffix."""
    name = "-".join(p for p in parts if p)
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def authz_configmap(team: str) -> str:
    """ConfigMap (in the authz namespace) that carries one team's authorization policies."""
    return object_name("egress-authz", team)


def team_identity(team: str) -> str:
    """The team's ServiceAccount in TENANTS_NAMESPACE (team names are unique DNS labels)."""
    return object_name("team", team)


def team_token(team: str) -> str:
    """The Secret that holds the team identity's token (filled in by the token controller)."""
    return object_name("team", team, "token")


def team_listener_set(team: str) -> str:
    """The ListenerSet (in GATEWAY_NAMESPACE) that holds the team's own listener."""
    return object_name("team", team)


def gateway_address() -> str:
    """In-cluster DNS name of the egress gateway's Service (kgateway names it after the Gateway)."""
    return f"{GATEWAY_NAME}.{GATEWAY_NAMESPACE}.svc.cluster.local"


# GitOps mode (`make render`): the kubernetes provider writes manifests to this directory instead of
# applying them.
RENDER_DIR_ENV = "EGRESS_RENDER_DIR"
RENDER_STACK_SUFFIX = "-render"

# The approval registry as the cluster holds it: admission reads it on every write, so a team's
# labels never decide anything. In Kyverno's namespace: platform-owned, no team can write there, and
# it exists as soon as Kyverno does (the policy that reads the registry waits for Kyverno anyway).
REGISTRY_NAMESPACE = KYVERNO_NAMESPACE
REGISTRY_CONFIGMAP = "egress-approvals"
REGISTRY_POLICY = "egress-registry-approval"
ROUTE_POLICY = "egress-route-admission"
RETENTION_POLICY = "egress-route-policy-retention"
