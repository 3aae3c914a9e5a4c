"""Approval: what a team reaches is approved for it in the platform's registry, unexpired; no wildcard
hosts. At admission from the registry the cluster holds (never labels); at preview from the marks the
program writes from the same registry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..settings import names
from .cel import HOSTNAMES, ON_GATEWAY, TEAM, judged_entry, team_object


@dataclass(frozen=True)
class ApprovalRule:
    """What makes an external ServiceEntry approved. Label key and value can be overridden."""

    label: str = names.APPROVED_LABEL
    value: str = names.APPROVED_VALUE
    annotations: tuple[str, ...] = (names.TICKET_ANNOTATION, names.APPROVER_ANNOTATION, names.EXPIRES_ANNOTATION)
    expires: str = names.EXPIRES_ANNOTATION


def is_external(spec: Mapping[str, Any]) -> bool:
    """Istio treats a ServiceEntry without `location` as MESH_EXTERNAL."""
    return bool(spec.get("location", "MESH_EXTERNAL") != "MESH_INTERNAL")


def check_service_entry(obj: Mapping[str, Any], today: dt.date, rule: ApprovalRule = ApprovalRule()) -> list[str]:
    """Violations of the approval rule by one ServiceEntry (empty: compliant or not external)."""
    spec = obj.get("spec") or {}
    if not is_external(spec):
        return []
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    hosts = ", ".join(spec.get("hosts") or []) or "<no hosts>"
    problems = []
    if labels.get(rule.label) != rule.value:
        problems.append(
            f'external host {hosts} is not approved: label {rule.label} must be "{rule.value}" '
            "(set by the program from the platform's approval registry)"
        )
    missing = [a for a in rule.annotations if not annotations.get(a)]
    if missing:
        problems.append(f"external host {hosts} lacks approval annotations: {', '.join(missing)}")
    expires = annotations.get(rule.expires)
    if expires:
        try:
            day = dt.date.fromisoformat(str(expires))
        except ValueError:
            problems.append(f"annotation {rule.expires} must be a date (YYYY-MM-DD), got '{expires}'")
        else:
            if day < today:
                problems.append(f"approval of external host {hosts} expired on {day.isoformat()}")
    return problems


def wildcard_hosts(hosts: Iterable[str]) -> list[str]:
    return [h for h in hosts if "*" in h]


# --- admission ---------------------------------------------------------------------------------------
RULE = "approval"
_WHERE = f"{names.REGISTRY_NAMESPACE}/{names.REGISTRY_CONFIGMAP}"

REGISTRY_PRESENT = judged_entry(
    RULE,
    "variables.registry != null",
    f"the approval registry {_WHERE} is missing; nothing is approved",
)
NAMESPACE_OF_A_TEAM = judged_entry(
    RULE,
    'variables.team != ""',
    message_expression="'namespace ' + namespaceObject.metadata.name + ' belongs to no team in the approval registry'",
)
ENTRY_APPROVED = judged_entry(
    RULE,
    "object.spec.hosts.all(h, variables.ports.all(p, variables.approvals.exists(a, "
    "a.host == h && a.ports.exists(q, int(q) == p))))",
    message_expression=(
        "object.spec.hosts.join(',') + ' on ports ' + variables.ports.map(p, string(p)).join(',') + "
        "' is not approved (or has expired) for team ' + variables.team"
    ),
)
ROUTE_HOSTS_APPROVED = team_object(
    RULE,
    "HTTPRoute",
    f"!({ON_GATEWAY}) || (object.spec.?hostnames.orValue([]).size() > 0 && "
    "object.spec.hostnames.all(h, variables.approvals.exists(a, a.host == h)))",
    f"'a route on the egress gateway names only hosts approved for its team; got ' + {HOSTNAMES}.join(',') + {TEAM}",
)
