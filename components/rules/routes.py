"""Routes: every route to an external host is covered by a TrafficPolicy with external authorization."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ServiceEntryKind = "ServiceEntry"


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
