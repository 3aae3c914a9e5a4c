"""The approval and safety rules, defined once (pure, no Pulumi).

The CrossGuard pack (policies/) calls the check functions at `pulumi preview`; the Kyverno
ClusterPolicy for admission is generated from the same `ApprovalRule` below, so both stop the same
ServiceEntries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import names
from .config import DURATION, MAX_RETRY_ATTEMPTS, MAX_TIMEOUT_MS, duration_ms

ServiceEntryKind = "ServiceEntry"


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


def check_retries_and_timeouts(spec: Mapping[str, Any], max_attempts: int = MAX_RETRY_ATTEMPTS) -> list[str]:
    """A TrafficPolicy must bound the request: a timeout, bounded attempts, per-try below the timeout."""
    problems = []
    request = (spec.get("timeouts") or {}).get("request")
    if not request or not DURATION.match(str(request)):
        problems.append("timeouts.request must be set to a duration (e.g. 30s)")
    elif duration_ms(request) > MAX_TIMEOUT_MS:
        problems.append(f"timeouts.request {request} exceeds 5m")
    retry = spec.get("retry")
    if retry is not None:
        attempts = retry.get("attempts", 1)
        # The engine hands numbers to policies as floats.
        if not isinstance(attempts, (int, float)) or attempts != int(attempts) or attempts > max_attempts:
            problems.append(f"retry.attempts must be an integer of at most {max_attempts}, got {attempts}")
        per_try = retry.get("perTryTimeout")
        if not per_try:
            problems.append("retry.perTryTimeout must be set")
        elif request and DURATION.match(str(request)) and duration_ms(per_try) >= duration_ms(request):
            problems.append(f"retry.perTryTimeout {per_try} must be below timeouts.request {request}")
    return problems


def has_ext_auth(spec: Mapping[str, Any]) -> bool:
    ext = spec.get("extAuth") or {}
    return bool(ext.get("extensionRef")) and "disable" not in ext


def route_targets(spec: Mapping[str, Any]) -> list[str]:
    """Names of HTTPRoutes a TrafficPolicy attaches to."""
    return [
        r.get("name", "")
        for r in spec.get("targetRefs") or []
        if r.get("kind") == "HTTPRoute" and r.get("group") == "gateway.networking.k8s.io"
    ]


def routes_to_service_entry(spec: Mapping[str, Any]) -> bool:
    return any(
        b.get("kind") == ServiceEntryKind and b.get("group") == "networking.istio.io"
        for rule in spec.get("rules") or []
        for b in rule.get("backendRefs") or []
    )


def is_pinned_chart_version(version: Any) -> bool:
    return (
        isinstance(version, str)
        and bool(version)
        and version not in ("latest", "*")
        and not any(c in version for c in "^~*x><=| ")
    )


def is_pinned_image(image: Any) -> bool:
    """An image pinned by digest, or by a tag other than latest."""
    if not isinstance(image, str) or not image:
        return False
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and not last.endswith(":latest")


# --- admission: the Kyverno ClusterPolicy -------------------------------------------------------------

CLUSTER_POLICY_NAME = "egress-require-approval"


def admission_cluster_policy(rule: ApprovalRule = ApprovalRule()) -> dict[str, Any]:
    """ClusterPolicy that enforces `check_service_entry` at admission and reports in background."""
    obj = "request.object"
    ann = "{{ " + obj + ".metadata.annotations.\"%s\" || '' }}"
    match = {"any": [{"resources": {"kinds": ["networking.istio.io/*/ServiceEntry"]}}]}
    external = {
        "all": [
            {
                "key": "{{ " + obj + ".spec.location || 'MESH_EXTERNAL' }}",
                "operator": "NotEquals",
                "value": "MESH_INTERNAL",
            }
        ]
    }
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": CLUSTER_POLICY_NAME,
            "labels": names.labels(),
            "annotations": {
                "policies.kyverno.io/title": "Approved egress destinations only",
                "policies.kyverno.io/description": (
                    "Every MESH_EXTERNAL ServiceEntry must carry the approval label and an unexpired "
                    "approval (ticket, approver, expiry). Generated from components/rules.py."
                ),
            },
        },
        "spec": {
            "background": True,
            "validationFailureAction": "Enforce",
            "rules": [
                {
                    "name": "require-approval-label",
                    "match": match,
                    "preconditions": external,
                    "validate": {
                        "message": (
                            f"external ServiceEntry must carry label {rule.label}={rule.value} "
                            "from the approval registry"
                        ),
                        "deny": {
                            "conditions": {
                                "any": [
                                    {
                                        "key": "{{ " + obj + '.metadata.labels."' + rule.label + "\" || '' }}",
                                        "operator": "NotEquals",
                                        "value": rule.value,
                                    }
                                ]
                            }
                        },
                    },
                },
                {
                    "name": "require-approval-annotations",
                    "match": match,
                    "preconditions": external,
                    "validate": {
                        "message": "external ServiceEntry must carry approval annotations: "
                        + ", ".join(rule.annotations),
                        "deny": {
                            "conditions": {
                                "any": [{"key": ann % a, "operator": "Equals", "value": ""} for a in rule.annotations]
                            }
                        },
                    },
                },
                {
                    "name": "reject-expired-approval",
                    "match": match,
                    "preconditions": {
                        "all": [
                            *external["all"],
                            {"key": ann % rule.expires, "operator": "NotEquals", "value": ""},
                        ]
                    },
                    "validate": {
                        "message": f"the approval of this external ServiceEntry has expired ({rule.expires})",
                        "deny": {
                            "conditions": {
                                "any": [
                                    {
                                        "key": "{{ time_after('{{ time_now_utc() }}', '{{ "
                                        + obj
                                        + '.metadata.annotations."'
                                        + rule.expires
                                        + "\" }}T23:59:59Z') }}",
                                        "operator": "Equals",
                                        "value": True,
                                    }
                                ]
                            }
                        },
                    },
                },
                {
                    "name": "reject-wildcard-hosts",
                    "match": match,
                    "validate": {
                        "message": "ServiceEntry hosts must not be wildcards",
                        "deny": {
                            "conditions": {
                                "any": [
                                    {
                                        "key": "{{ length(" + obj + ".spec.hosts[?contains(@, '*')] || `[]`) }}",
                                        "operator": "GreaterThan",
                                        "value": 0,
                                    }
                                ]
                            }
                        },
                    },
                },
            ],
        },
    }
