"""What no approval in force covers: every team object on the gateway path whose approval has ended
(revoked or expired) or that no approval ever covered, judged against the registry the cluster holds
(the one admission and authorization read). Pure; `python -m components.audit` reads a cluster."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..settings import names

# The kinds whose host an approval covers, and where they name it.
KINDS: dict[str, str] = {"ServiceEntry": "hosts", "HTTPRoute": "hostnames", "BackendConfigPolicy": "targetRefs"}


@dataclass(frozen=True)
class Finding:
    kind: str
    namespace: str
    name: str
    host: str
    reason: str  # "expired on <date>", "not approved for team <team>", "namespace of no team"

    def line(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}\t{self.host}\t{self.reason}"


def _hosts(obj: Mapping[str, Any]) -> list[str]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "BackendConfigPolicy":
        return [t.get("name", "") for t in spec.get("targetRefs") or [] if t.get("kind") == "Hostname"]
    return list(spec.get(KINDS.get(str(obj.get("kind")), "hosts")) or [])


def audit(registry: Mapping[str, Any], objects: Iterable[Mapping[str, Any]], today: dt.date) -> list[Finding]:
    """Findings for `objects` (any namespaces; those of no team are the platform's unless external
    ServiceEntries) against `registry` (the registry ConfigMap's data)."""
    teams: dict[str, str] = json.loads(registry.get("namespaces.json", "{}"))
    approvals: list[dict[str, Any]] = json.loads(registry.get("approvals.json", "[]"))
    out = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        ns, name, kind = meta.get("namespace", ""), meta.get("name", ""), str(obj.get("kind"))
        team = teams.get(ns)
        if team is None:
            continue  # the platform's namespaces: admission judges their external entries on write
        for host in _hosts(obj):
            covering = [a for a in approvals if a.get("host") == host and team in a.get("teams", [])]
            if not covering:
                out.append(Finding(kind, ns, name, host, f"not approved for team {team}"))
            elif all(dt.date.fromisoformat(a["expires"]) < today for a in covering):
                last = max(a["expires"] for a in covering)
                out.append(Finding(kind, ns, name, host, f"expired on {last}"))
    return sorted(out, key=lambda f: (f.namespace, f.kind, f.name, f.host))


REGISTRY = (names.REGISTRY_NAMESPACE, names.REGISTRY_CONFIGMAP)
RESOURCES = (
    "serviceentries.networking.istio.io,httproutes.gateway.networking.k8s.io,backendconfigpolicies.gateway.kgateway.dev"
)
