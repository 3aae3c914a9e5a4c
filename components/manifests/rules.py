"""The approval and safety rules, defined once (pure, no Pulumi).

The CrossGuard pack (policies/) calls the check functions at `pulumi preview`; the admission policy
(admission.py) is generated from the same `ApprovalRule`, so both stop the same ServiceEntries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..settings import names
from ..settings.config import DURATION, MAX_RETRY_ATTEMPTS, MAX_TIMEOUT_MS, duration_ms

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


def _index(objs: Iterable[Mapping[str, Any]]) -> dict[str, dict[tuple[str, str], Mapping[str, Any]]]:
    """Objects by kind, then by (namespace, name)."""
    by_kind: dict[str, dict[tuple[str, str], Mapping[str, Any]]] = {}
    for o in objs:
        meta = o.get("metadata") or {}
        by_kind.setdefault(o.get("kind", ""), {})[(meta.get("namespace", ""), meta.get("name", ""))] = o
    return by_kind


def _routed_entries(
    by_kind: Mapping[str, Mapping[tuple[str, str], Mapping[str, Any]]], ns: str, policy: Mapping[str, Any]
) -> list[Mapping[str, Any] | None]:
    """The ServiceEntries behind the routes a TrafficPolicy attaches to (None where one is missing)."""
    return [
        by_kind.get("ServiceEntry", {}).get((ns, b.get("name", "")))
        for route in route_targets(policy.get("spec") or {})
        for rule in (by_kind.get("HTTPRoute", {}).get((ns, route)) or {}).get("spec", {}).get("rules") or []
        for b in rule.get("backendRefs") or []
    ]


def budgets_over_ceilings(objs: Iterable[Mapping[str, Any]]) -> list[str]:
    """TrafficPolicies whose token bucket is missing or exceeds the ceiling an approval sets on a host
    they route to (the mark approvals.approval_metadata sets from the registry: requests/per/burst)."""
    by_kind = _index(objs)
    problems = []
    for (ns, name), tp in sorted(by_kind.get("TrafficPolicy", {}).items()):
        bucket = (((tp.get("spec") or {}).get("rateLimit") or {}).get("local") or {}).get("tokenBucket")
        for entry in _routed_entries(by_kind, ns, tp):
            mark = (((entry or {}).get("metadata") or {}).get("annotations") or {}).get(names.RATE_LIMIT_ANNOTATION)
            if not mark:
                continue
            requests, per, burst = mark.split("/")
            host = ",".join((entry or {}).get("spec", {}).get("hosts") or [])
            if not bucket:
                problems.append(
                    f"TrafficPolicy {name}: {host} is approved for at most {requests}/{per} (burst {burst}); "
                    "set a budget within it"
                )
                continue
            per_fill, fill = int(bucket.get("tokensPerFill", 1)), str(bucket.get("fillInterval", ""))
            too_fast = not DURATION.match(fill) or per_fill * duration_ms(per) > int(requests) * duration_ms(fill)
            if too_fast or int(bucket.get("maxTokens", 0)) > int(burst):
                problems.append(
                    f"TrafficPolicy {name}: its budget exceeds what security approved for {host}: "
                    f"at most {requests}/{per} (burst {burst})"
                )
    return problems


def unapproved_fail_open(objs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Extensions that fail open without an approval allowing it, for every host they guard.

    `objs` are one stack's objects. An extension fails open only if every route whose TrafficPolicy
    uses it sends to ServiceEntries whose approval allows it (the mark approvals.approval_metadata
    sets from the registry); an extension no policy uses may not fail open either.
    """
    by_kind = _index(objs)
    problems = []
    for (ns, name), ext in sorted(by_kind.get("GatewayExtension", {}).items()):
        if not ((ext.get("spec") or {}).get("extAuth") or {}).get("failOpen", False):
            continue
        entries = [
            entry
            for (tp_ns, _), tp in by_kind.get("TrafficPolicy", {}).items()
            if tp_ns == ns and ((tp.get("spec") or {}).get("extAuth") or {}).get("extensionRef", {}).get("name") == name
            for entry in _routed_entries(by_kind, ns, tp)
        ]
        allowed = bool(entries) and all(
            e is not None
            and ((e.get("metadata") or {}).get("annotations") or {}).get(names.FAIL_OPEN_ANNOTATION)
            == names.FAIL_OPEN_VALUE
            for e in entries
        )
        if not allowed:
            problems.append(
                f"GatewayExtension {name} fails open, which no approval of the hosts it guards allows "
                f"(security sets allowFailOpen on the approval)"
            )
    return problems
