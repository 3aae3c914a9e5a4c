"""One stack's objects as a graph: by kind and name, and the ServiceEntries behind a TrafficPolicy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .routes import route_targets


def index(objs: Iterable[Mapping[str, Any]]) -> dict[str, dict[tuple[str, str], Mapping[str, Any]]]:
    """Objects by kind, then by (namespace, name)."""
    by_kind: dict[str, dict[tuple[str, str], Mapping[str, Any]]] = {}
    for o in objs:
        meta = o.get("metadata") or {}
        by_kind.setdefault(o.get("kind", ""), {})[(meta.get("namespace", ""), meta.get("name", ""))] = o
    return by_kind


def routed_entries(
    by_kind: Mapping[str, Mapping[tuple[str, str], Mapping[str, Any]]], ns: str, policy: Mapping[str, Any]
) -> list[Mapping[str, Any] | None]:
    """The ServiceEntries behind the routes a TrafficPolicy attaches to (None where one is missing)."""
    return [
        by_kind.get("ServiceEntry", {}).get((ns, b.get("name", "")))
        for route in route_targets(policy.get("spec") or {})
        for rule in (by_kind.get("HTTPRoute", {}).get((ns, route)) or {}).get("spec", {}).get("rules") or []
        for b in rule.get("backendRefs") or []
    ]
