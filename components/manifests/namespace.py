"""A team namespace and its egress guard (the NetworkPolicy that leaves the gateway as the only exit)."""

from __future__ import annotations

from ..settings import names
from ..settings.config import Team
from .kinds import Obj


def namespace(team: Team) -> Obj:
    meta = names.metadata(team.namespace, None, team.name)
    meta["labels"][names.AMBIENT_LABEL] = names.AMBIENT_VALUE
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def network_policy(team: Team) -> Obj:
    """Pods of the team may reach only cluster DNS and the egress gateway: nothing bypasses it.

    In ambient mode ztunnel carries pod traffic to the gateway over HBONE (15008), so that port
    is allowed next to the gateway's listener port.
    """
    gateway_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": names.GATEWAY_NAMESPACE}},
        "podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": names.GATEWAY_NAME}},
    }
    dns_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
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
                        {"protocol": "TCP", "port": names.GATEWAY_PORT},
                        {"protocol": "TCP", "port": names.HBONE_PORT},
                    ],
                },
            ],
        },
    }
