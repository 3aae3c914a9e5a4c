"""The mesh's half of "who is calling": platform-owned Istio policies on the egress gateway's pods,
enforced by ztunnel in ambient.

ztunnel enforces only L4 attributes (ambient's L4 policy: source namespaces, principals, IP blocks,
destination ports), so the rules here use nothing else: a rule with an L7 field would not apply at
ztunnel. One ALLOW rule per team: connections from the team's namespace to the team's own listener
port. Every other connection to the gateway's pods is refused by ztunnel before Envoy sees it: another
team's port, a port no team owns, and plaintext from outside the mesh (the STRICT PeerAuthentication,
without which a pod opted out of ambient would arrive with no identity at all).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..settings import names
from ..settings.config import TeamEntry
from .kinds import ISTIO_SECURITY_API, Obj

# AuthorizationPolicy spec.rules maxItems (the pinned Istio CRD): more teams spread over more policies,
# which ALLOW as their union.
MAX_RULES = 512


def gateway_selector() -> Obj:
    return {"matchLabels": {names.GATEWAY_POD_LABEL: names.GATEWAY_NAME}}


def team_rule(team: TeamEntry) -> Obj:
    """The team's namespace, and only it, may connect to the team's port (a string: Istio's type)."""
    return {
        "from": [{"source": {"namespaces": [team.namespace]}}],
        "to": [{"operation": {"ports": [str(team.port)]}}],
    }


def listener_authorization(teams: Sequence[TeamEntry]) -> list[Obj]:
    """ALLOW policies on the gateway's pods, MAX_RULES teams each (at least one policy: with no team,
    an ALLOW policy without rules refuses every connection, as it should)."""
    ordered = sorted(teams, key=lambda t: t.port)
    chunks = [ordered[i : i + MAX_RULES] for i in range(0, len(ordered), MAX_RULES)] or [[]]
    out = []
    for i, chunk in enumerate(chunks):
        name = names.LISTENER_AUTHORIZATION if i == 0 else f"{names.LISTENER_AUTHORIZATION}-{i + 1}"
        out.append(
            {
                "apiVersion": ISTIO_SECURITY_API,
                "kind": "AuthorizationPolicy",
                "metadata": names.metadata(name, names.GATEWAY_NAMESPACE),
                "spec": {
                    "selector": gateway_selector(),
                    "action": "ALLOW",
                    "rules": [team_rule(t) for t in chunk],
                },
            }
        )
    return out


def strict_mtls() -> Obj:
    """Only mesh (HBONE, mTLS) connections reach the gateway's pods: plaintext is refused by ztunnel."""
    return {
        "apiVersion": ISTIO_SECURITY_API,
        "kind": "PeerAuthentication",
        "metadata": names.metadata(names.GATEWAY_PEER_AUTHENTICATION, names.GATEWAY_NAMESPACE),
        "spec": {"selector": gateway_selector(), "mtls": {"mode": "STRICT"}},
    }


def mesh_objects(teams: Sequence[TeamEntry]) -> list[Obj]:
    return [strict_mtls(), *listener_authorization(teams)]
