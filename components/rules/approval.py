"""Approval: an external ServiceEntry carries an unexpired approval from the registry; no wildcard hosts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..settings import names


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
