"""Routes: a team's route attaches only to its team's own listener, names one host, and every rule of
it is covered by the route's own TrafficPolicy (same name), which targets that route only; nothing on
the route mirrors, rewrites or hands requests to another extension."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..settings import names
from .cel import HOSTNAMES, NS, ON_GATEWAY, POLICY_FILTER, ROUTE_POLICIES, team_object

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


# --- admission ---------------------------------------------------------------------------------------
RULE = "routes"

_OWN_LISTENER = (
    'object.spec.?parentRefs.orValue([]).all(p, p.?group.orValue("gateway.networking.k8s.io") == '
    '"gateway.networking.k8s.io" && p.?kind.orValue("Gateway") == "ListenerSet" && '
    f'p.name == variables.listener && p.?namespace.orValue({NS}) == "{names.GATEWAY_NAMESPACE}" && '
    f'p.?sectionName.orValue("") == "{names.TEAM_LISTENER}" && !has(p.port))'
)
OWN_LISTENER = team_object(
    RULE,
    "HTTPRoute",
    f'variables.listener != "" && {_OWN_LISTENER}',
    f"'a route in a team namespace attaches only to its team\\'s own listener (ListenerSet "
    f"{names.GATEWAY_NAMESPACE}/' + variables.listener + "
    f"', sectionName {names.TEAM_LISTENER}, no port)' + ' (team ' + variables.team + ')'",
)
NO_MIRROR_NO_EXTENSIONS = team_object(
    RULE,
    "HTTPRoute",
    # kgateway drops an unresolved filter of a backendRef silently (krtcollections/policy.go,
    # getBackends), so none is allowed there; a rule's ExtensionRef names a TrafficPolicy only.
    "object.spec.?rules.orValue([]).all(r, r.?filters.orValue([]).all(f, "
    f'f.type != "RequestMirror" && (f.type != "ExtensionRef" || ({POLICY_FILTER}))) && '
    "r.?backendRefs.orValue([]).all(b, b.?filters.orValue([]).size() == 0))",
    "'a route in a team namespace neither mirrors requests nor hands them to extensions (its "
    "rules name TrafficPolicies only; its backends carry no filters)'",
)
NEEDS_ITS_POLICY = team_object(
    RULE,
    "HTTPRoute",
    f"!({ON_GATEWAY}) || {ROUTE_POLICIES}.exists(tp, has(tp.spec.extAuth) && has(tp.spec.extAuth.extensionRef))",
    "'a route on the egress gateway needs its TrafficPolicy with external authorization first'",
)
EVERY_RULE_NAMES_ITS_POLICY = team_object(
    RULE,
    "HTTPRoute",
    f"!({ON_GATEWAY}) || (object.spec.?rules.orValue([]).size() > 0 && object.spec.rules.all(r, "
    f"r.?filters.orValue([]).exists(f, {POLICY_FILTER}) && r.filters.all(f, f.type != "
    f'"ExtensionRef" || {ROUTE_POLICIES}.exists(tp, tp.metadata.name == f.extensionRef.name))))',
    "'every rule of a route on the egress gateway names its TrafficPolicy (one that targets the "
    "route) in an ExtensionRef filter: without the policy the gateway then answers 500 instead of "
    "forwarding'",
)
POLICY_BY_TARGET_REFS = team_object(
    RULE,
    "TrafficPolicy",
    '!has(object.spec.targetSelectors) && object.spec.?targetRefs.orValue([]).all(t, t.kind == "HTTPRoute")',
    "'a TrafficPolicy in a team namespace attaches to HTTPRoutes, by targetRefs only'",
)
ONE_PARENT_ONE_HOST = team_object(
    RULE,
    "HTTPRoute",
    f"object.spec.?parentRefs.orValue([]).size() == 1 && {HOSTNAMES}.size() == 1",
    "'a route in a team namespace has one parent (its team\\'s own listener) and one hostname'",
)
ONLY_ITS_OWN_POLICY = team_object(
    RULE,
    "HTTPRoute",
    'object.spec.?rules.orValue([]).all(r, r.?filters.orValue([]).all(f, f.type == "ExtensionRef" && '
    f"{POLICY_FILTER} && f.extensionRef.name == object.metadata.name))",
    "'a route rule\\'s only filter names the route\\'s own TrafficPolicy (of the route\\'s name): no "
    "URLRewrite, header modifier, redirect or mirror rewrites what the approved host receives'",
)
POLICY_OF_ITS_ROUTE = team_object(
    RULE,
    "TrafficPolicy",
    "object.spec.?targetRefs.orValue([]).size() == 1 && object.spec.targetRefs.all(t, "
    't.group == "gateway.networking.k8s.io" && t.kind == "HTTPRoute" && t.name == object.metadata.name)',
    "'a TrafficPolicy in a team namespace targets one HTTPRoute, the one of its own name (no budget "
    "shared over routes, no retargeting)'",
)
