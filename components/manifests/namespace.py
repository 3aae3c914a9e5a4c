"""A team namespace and its egress guard (the NetworkPolicy that leaves the gateway as the only exit)."""

from __future__ import annotations

from ..settings import names
from ..settings.config import Team
from .kinds import Obj
from .mesh import gateway_selector


def namespace(team: Team) -> Obj:
    """The team's namespace: enrolled in ambient, Pod Security `restricted` enforced."""
    meta = names.metadata(team.namespace, None, team.name)
    meta["labels"][names.AMBIENT_LABEL] = names.AMBIENT_VALUE
    meta["labels"].update(names.POD_SECURITY_LABELS)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def network_policy(team: Team, port: int) -> Obj:
    """Pods of the team may reach only cluster DNS and the egress gateway on the team's own listener
    port: nothing bypasses the gateway.

    In ambient mode ztunnel carries pod traffic to the gateway over HBONE (15008), so that port
    is allowed next to the team's listener port (ztunnel then refuses any other inner port).
    """
    gateway_peer = {
        "namespaceSelector": {"matchLabels": {names.NAMESPACE_NAME_LABEL: names.GATEWAY_NAMESPACE}},
        "podSelector": gateway_selector(),
    }
    dns_peer = {
        "namespaceSelector": {"matchLabels": {names.NAMESPACE_NAME_LABEL: "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": names.metadata("egress-only-via-gateway", team.namespace, team.name),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [dns_peer],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                {
                    "to": [gateway_peer],
                    "ports": [
                        {"protocol": "TCP", "port": port},
                        {"protocol": "TCP", "port": names.HBONE_PORT},
                    ],
                },
            ],
        },
    }
