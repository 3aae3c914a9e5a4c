# ruff: noqa: E501
"""What a tenant acting in bad faith tries, as data: each case is one of a team's own (legitimate)
objects, changed, and the rule that must refuse it. Every engine that can judge a case decides it from
this one list: the admission controller on the API server, with the team's own identity
(test_tenant_boundary.py), `kyverno test` (test_admission_registry_cli.py), and the CrossGuard pack's
resource checks where a case needs nothing but the object (test_policy_validators.py).

A change is a list of operations on the object: ("set", path, value) or ("del", path), a path being
dotted keys with list indices (`spec.rules.0.filters`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from components.settings import names

Op = tuple[Any, ...]


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # of the team's own object the case starts from
    ops: list[Op]
    message: str  # a fragment of the refusal: names the rule
    team: str = "research"
    destination: str | None = None  # which of the team's destinations (default: its first)
    pack: bool = True  # the pack's resource checks refuse it too (False: it needs the registry or the cluster)
    classes: tuple[str, ...] = field(default=())


def _path(path: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in path.split(".")]


def apply(obj: dict[str, Any], ops: list[Op]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for op, path, *value in ops:
        *parents, last = _path(path)
        here: Any = out
        for step in parents:
            here = here[step] if isinstance(step, int) else here.setdefault(step, {})
        if op == "set" and isinstance(here, list) and last == len(here):
            here.append(value[0])  # one past the end: a new item
        elif op == "set":
            here[last] = value[0]
        elif op == "del":
            del here[last]
        else:
            raise ValueError(f"unknown operation {op!r}")
    return out


ESCAPE, FRONTING, UNREVIEWED, SHARED, SCOPE = (
    "destination escape",
    "host rewriting",
    "fields nobody reviewed",
    "two teams, one host",
    "scope",
)
_FILTER = {"group": "gateway.kgateway.dev", "kind": "TrafficPolicy"}
_SHAPE = "(the fields the platform produces)"

CASES: list[Case] = [
    # --- destination escape: the ServiceEntry behind an approved route sends elsewhere ------------------
    Case("mesh-internal", "ServiceEntry", [("set", "spec.location", "MESH_INTERNAL")], "location: MESH_EXTERNAL",
         pack=False, classes=(ESCAPE,)),
    Case("location-unset", "ServiceEntry", [("del", "spec.location")], "location: MESH_EXTERNAL", pack=False,
         classes=(ESCAPE,)),
    Case("target-port", "ServiceEntry", [("set", "spec.ports.0.targetPort", 8443)],
         "spec.ports[] may hold only number, name, protocol", classes=(ESCAPE,)),
    Case("endpoints-unapproved", "ServiceEntry",
         [("set", "spec.resolution", "STATIC"), ("set", "spec.endpoints", [{"address": "203.0.113.99"}])],
         "endpoint addresses must be the ones the approval lists", pack=False, classes=(ESCAPE,)),
    Case("endpoints-of-another-approval", "ServiceEntry", [("set", "spec.endpoints", [{"address": "203.0.113.20"}])],
         "endpoint addresses must be the ones the approval lists", team="payments", destination="partner-models",
         pack=False, classes=(ESCAPE,)),
    Case("endpoint-port-redirect", "ServiceEntry",
         [("set", "spec.endpoints", [{"address": "203.0.113.10", "ports": {"http": 22}}])],
         "spec.endpoints[] may hold only address", team="payments", destination="partner-models", classes=(ESCAPE,)),
    Case("endpoints-by-dns", "ServiceEntry", [("set", "spec.endpoints", [{"address": "203.0.113.10"}]),
                                              ("set", "spec.resolution", "DNS")],
         "resolution is DNS (of the approved host) or STATIC", team="payments", destination="partner-models",
         pack=False, classes=(ESCAPE,)),
    Case("workload-selector", "ServiceEntry", [("set", "spec.workloadSelector", {"labels": {"app": "db"}})],
         f"ServiceEntry spec may hold only hosts, location, ports, resolution, endpoints {_SHAPE}", classes=(ESCAPE,)),
    Case("vip-addresses", "ServiceEntry", [("set", "spec.addresses", ["240.240.0.1"])],
         "ServiceEntry spec may hold only", classes=(ESCAPE,)),
    Case("export-to", "ServiceEntry", [("set", "spec.exportTo", ["*"])], "ServiceEntry spec may hold only",
         classes=(ESCAPE,)),
    Case("no-ports", "ServiceEntry", [("del", "spec.ports")], "names one host and at least one port", pack=False,
         classes=(ESCAPE,)),
    Case("resolution-none", "ServiceEntry", [("set", "spec.resolution", "NONE")], "resolution is DNS", pack=False,
         classes=(ESCAPE,)),
    Case("unapproved-host", "ServiceEntry", [("set", "spec.hosts", ["evil.example"])],
         "evil.example on ports 443 is not approved", pack=False, classes=(ESCAPE,)),
    Case("approved-host-other-port", "ServiceEntry", [("set", "spec.ports.0.number", 80)],
         "on ports 80 is not approved", pack=False, classes=(ESCAPE,)),
    Case("another-teams-host-entry", "ServiceEntry", [("set", "spec.hosts", ["api.openai.com"]),
                                                      ("set", "spec.ports", [{"number": 443, "name": "https", "protocol": "HTTPS"}]),
                                                      ("set", "spec.resolution", "DNS"), ("del", "spec.endpoints")],
         "is not approved (or has expired) for team payments", team="payments", destination="partner-models",
         pack=False, classes=(ESCAPE, SHARED)),
    Case("endpoints-metadata-address", "ServiceEntry", [("set", "spec.endpoints", [{"address": "169.254.169.254"}])],
         "endpoint addresses must be the ones the approval lists", team="payments", destination="partner-models",
         pack=False, classes=(ESCAPE,)),
    Case("endpoints-private-address", "ServiceEntry",
         [("set", "spec.resolution", "STATIC"), ("set", "spec.endpoints", [{"address": "10.0.0.1"}])],
         "endpoint addresses must be the ones the approval lists", pack=False, classes=(ESCAPE,)),
    Case("endpoints-loopback", "ServiceEntry",
         [("set", "spec.resolution", "STATIC"), ("set", "spec.endpoints", [{"address": "127.0.0.1"}])],
         "endpoint addresses must be the ones the approval lists", pack=False, classes=(ESCAPE,)),
    Case("route-to-another-namespaces-entry", "HTTPRoute", [("set", "spec.rules.0.backendRefs.0.namespace", "team-payments")],
         "sends only to ServiceEntries of its own namespace", pack=False, classes=(ESCAPE,)),
    Case("route-to-a-service", "HTTPRoute", [("set", "spec.rules.0.backendRefs", [{"name": "billing", "port": 80}])],
         "sends only to ServiceEntries of its own namespace", pack=False, classes=(ESCAPE,)),
    Case("route-without-hostnames", "HTTPRoute", [("del", "spec.hostnames")],
         "names only hosts approved for its team", pack=False, classes=(ESCAPE,)),
    Case("route-to-another-entry", "HTTPRoute", [("set", "spec.hostnames", ["api.openai.com"]),
                                                 ("set", "spec.rules.0.backendRefs.0.name", "no-such-entry")],
         "sends only to a ServiceEntry of its namespace with the route's own host and port", pack=False,
         classes=(ESCAPE,)),
    Case("route-to-another-port", "HTTPRoute", [("set", "spec.rules.0.backendRefs.0.port", 22)],
         "sends only to a ServiceEntry of its namespace with the route's own host and port", pack=False,
         classes=(ESCAPE,)),
    # --- host rewriting (domain fronting): the approved upstream serves another site -----------------
    Case("urlrewrite-hostname", "HTTPRoute",
         [("set", "spec.rules.0.filters.1", {"type": "URLRewrite", "urlRewrite": {"hostname": "other.example"}})],
         "only filter names the route's own TrafficPolicy", classes=(FRONTING,)),
    Case("host-header-modifier", "HTTPRoute", [("set", "spec.rules.0.filters.1", {
        "type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "Host", "value": "other.example"}]}
    })], "only filter names the route's own TrafficPolicy", classes=(FRONTING,)),
    Case("tp-url-rewrite", "TrafficPolicy", [("set", "spec.urlRewrite", {"pathRegex": {"pattern": ".*",
                                                                                     "substitution": "/x"}})],
         "TrafficPolicy spec may hold only", classes=(FRONTING,)),
    Case("tp-auto-host-rewrite", "TrafficPolicy", [("set", "spec.autoHostRewrite", True)],
         "TrafficPolicy spec may hold only", classes=(FRONTING,)),
    Case("tp-transformation", "TrafficPolicy", [("set", "spec.transformation", {
        "request": {"set": [{"name": "host", "value": "other.example"}]}})], "TrafficPolicy spec may hold only",
         classes=(FRONTING,)),
    Case("tp-host-from-secret", "TrafficPolicy", [("set", "spec.headerModifiers", {"request": {"set": [
        {"name": "Host", "secretRef": {"name": "team-research", "namespace": "egress-credentials", "key": "openai"}}]}})],
         "never sets Host, :authority or forwarding headers", pack=False, classes=(FRONTING,)),
    Case("bcp-other-sni", "BackendConfigPolicy", [("set", "spec.tls.sni", "other.example")],
         "sends that host as SNI", pack=False, classes=(FRONTING,)),
    Case("bcp-other-names", "BackendConfigPolicy", [("set", "spec.tls.verifySubjectAltNames", ["*.cdn.example"])],
         "sends that host as SNI and verifies that it, and only it", pack=False, classes=(FRONTING,)),
    Case("bcp-weak-tls", "BackendConfigPolicy", [("set", "spec.tls.parameters", {"maxVersion": "1.0", "cipherSuites": ["DES-CBC3-SHA"]})],
         "BackendConfigPolicy spec.tls may hold only", classes=(FRONTING,)),
    Case("bcp-no-verification", "BackendConfigPolicy", [("del", "spec.tls.wellKnownCACertificates"), ("set", "spec.tls.insecureSkipVerify", True)],
         "verifies its certificate and names (no insecureSkipVerify", classes=(FRONTING,)),
    Case("bcp-another-host", "BackendConfigPolicy", [("set", "spec.targetRefs.0.name", "ledger.partner.example")],
         "targets one Hostname, a host approved for its team", pack=False, classes=(FRONTING,)),
    Case("bcp-connection-settings", "BackendConfigPolicy", [("set", "spec.connectTimeout", "1h")],
         "BackendConfigPolicy spec may hold only targetRefs, tls", classes=(FRONTING,)),
    # --- TrafficPolicy (and route) fields nobody reviewed ----------------------------------------------
    *(
        Case(f"tp-{name}", "TrafficPolicy", [("set", f"spec.{name}", value)], "TrafficPolicy spec may hold only",
             classes=(UNREVIEWED,))
        for name, value in (
            ("extProc", {"extensionRef": {"name": "x"}}),
            ("jwtAuth", {"extensionRef": {"name": "x"}}),
            ("oauth2", {"extensionRef": {"name": "x"}}),
            ("buffer", {"maxRequestSize": "3Gi"}),
            ("faultInjection", {"abort": {"percentage": 100, "httpStatus": 200}}),
            ("internalRedirect", {"maxRedirects": 10, "allowCrossSchemeRedirect": True}),
            ("rbac", {"action": "Allow", "policy": {"matchExpressions": ["true"]}}),
            ("cors", {"allowOrigins": ["*"]}),
            ("acl", {"defaultAction": "allow"}),
            ("compression", {"responseCompression": {}}),
        )
    ),
    Case("tp-global-rate-limit", "TrafficPolicy", [("set", "spec.rateLimit.global", {
        "extensionRef": {"name": "another-teams-limits", "namespace": "team-payments"},
        "descriptors": [{"entries": [{"type": "RemoteAddress"}]}]})],
         "TrafficPolicy spec.rateLimit may hold only local", classes=(UNREVIEWED,)),
    Case("tp-shadow-budget", "TrafficPolicy", [("set", "spec.rateLimit", {"local": {
        "tokenBucket": {"maxTokens": 1, "fillInterval": "1s"}, "percentEnforced": 0}})],
         "TrafficPolicy spec.rateLimit.local may hold only tokenBucket", classes=(UNREVIEWED,)),
    Case("tp-unbounded-retries", "TrafficPolicy", [("set", "spec.retry.attempts", 1000)],
         "retry.attempts at most 10", classes=(UNREVIEWED,)),
    Case("tp-unbounded-timeout", "TrafficPolicy", [("set", "spec.timeouts.request", "24h")],
         "timeouts.request is set and at most 5m", classes=(UNREVIEWED,)),
    Case("tp-no-timeout", "TrafficPolicy", [("del", "spec.timeouts")], "timeouts.request is set and at most 5m",
         classes=(UNREVIEWED,)),
    Case("tp-section-name", "TrafficPolicy", [("set", "spec.targetRefs.0.sectionName", "nothing")],
         "TrafficPolicy spec.targetRefs[] may hold only group, kind, name", classes=(UNREVIEWED,)),
    Case("tp-retargeted", "TrafficPolicy", [("set", "spec.targetRefs.0.name", "another-route")],
         "targets one HTTPRoute, the one of its own name", pack=False, classes=(UNREVIEWED,)),
    Case("tp-budget-shared-over-routes", "TrafficPolicy", [("set", "spec.targetRefs.1", {
        "group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "another-route"})],
         "targets one HTTPRoute, the one of its own name", pack=False, classes=(UNREVIEWED,)),
    Case("route-rule-its-policy-does-not-cover", "HTTPRoute", [("set", "spec.rules.1", {
        "backendRefs": [{"group": "networking.istio.io", "kind": "ServiceEntry", "name": "egress-openai", "port": 443}]})],
         "names its TrafficPolicy (one that targets the route) in an ExtensionRef filter", pack=False,
         classes=(UNREVIEWED,)),
    Case("route-match-narrowed", "HTTPRoute",
         [("set", "spec.rules.0.matches", [{"path": {"type": "PathPrefix", "value": "/admin"}}])],
         "HTTPRoute spec.rules[].matches may hold only its default", classes=(UNREVIEWED,)),
    Case("route-timeouts", "HTTPRoute", [("set", "spec.rules.0.timeouts", {"request": "0s"})],
         "HTTPRoute spec.rules[] may hold only", classes=(UNREVIEWED,)),
    Case("extension-clears-route-cache", "GatewayExtension", [("set", "spec.extAuth.clearRouteCache", True)],
         "GatewayExtension spec.extAuth.clearRouteCache may hold only its default false", classes=(UNREVIEWED,)),
    Case("extension-allows-on-error", "GatewayExtension", [("set", "spec.extAuth.statusOnError", 200)],
         "GatewayExtension spec.extAuth.statusOnError may hold only its default 403", classes=(UNREVIEWED,)),
    Case("route-rule-without-its-policy-filter", "HTTPRoute", [("set", "spec.rules.0.filters", [])],
         "names its TrafficPolicy (one that targets the route) in an ExtensionRef filter", pack=False,
         classes=(UNREVIEWED,)),
    Case("route-filter-names-another-policy", "HTTPRoute", [("set", "spec.rules.0.filters.0.extensionRef.name", "another")],
         "names its TrafficPolicy (one that targets the route) in an ExtensionRef filter", pack=False,
         classes=(UNREVIEWED,)),
    Case("route-backend-filter", "HTTPRoute", [("set", "spec.rules.0.backendRefs.0.filters", [
        {"type": "ExtensionRef", "extensionRef": {**_FILTER, "name": "case-route-backend-filter"}}])],
         "its backends carry no filters", pack=False, classes=(UNREVIEWED,)),
    Case("tp-extension-of-another-namespace", "TrafficPolicy",
         [("set", "spec.extAuth.extensionRef.namespace", "team-payments")], "of its own namespace", pack=False,
         classes=(UNREVIEWED,)),
    Case("tp-target-selectors", "TrafficPolicy", [("set", "spec.targetSelectors", [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "matchLabels": {}}])], "by targetRefs only",
         pack=False, classes=(UNREVIEWED,)),
    Case("route-mirror", "HTTPRoute", [("set", "spec.rules.0.filters.1", {
        "type": "RequestMirror", "requestMirror": {"backendRef": {"name": "collector", "port": 80}}})],
         "neither mirrors requests", pack=False, classes=(UNREVIEWED,)),
    Case("tp-no-ext-auth", "TrafficPolicy", [("del", "spec.extAuth")], "carries external authorization",
         pack=False, classes=(UNREVIEWED,)),
    Case("tp-ext-auth-disabled", "TrafficPolicy", [("set", "spec.extAuth", {"disable": {}})], "never disable",
         pack=False, classes=(UNREVIEWED,)),
    Case("extension-another-grpc-server", "GatewayExtension",
         [("set", "spec.extAuth.grpcService.backendRef", {"name": "allow-all", "port": 9000})],
         "external authorization by the platform's server", pack=False, classes=(UNREVIEWED,)),
    Case("extension-fail-open", "GatewayExtension", [("set", "spec.extAuth.failOpen", True)],
         "failOpen: true needs an approval that allows it", pack=False, classes=(UNREVIEWED,)),
    Case("tp-another-teams-credentials", "TrafficPolicy", [("set", "spec.headerModifiers", {"request": {"set": [
        {"name": "Authorization", "secretRef": {"name": "team-payments", "namespace": "egress-credentials", "key": "x"}}]}})],
         "credentials come only from the team's own Secret", pack=False, classes=(UNREVIEWED,)),
    Case("tp-credential-to-the-client", "TrafficPolicy", [("set", "spec.headerModifiers", {"response": {"set": [
        {"name": "x-key", "secretRef": {"name": "team-research"}}]}})],
         "never go into responses", pack=False, classes=(UNREVIEWED,)),
    Case("extension-http-service", "GatewayExtension", [("del", "spec.extAuth.grpcService"),
                                                        ("set", "spec.extAuth.httpService", {
        "backendRef": {"name": "allow-all", "port": 80}})], "external authorization by the platform's server",
         classes=(UNREVIEWED,)),
    # --- two teams, one host: a host approved for another team is that team's alone --------------------
    Case("route-for-another-teams-host", "HTTPRoute", [("set", "spec.hostnames", ["ledger.partner.example"])],
         "names only hosts approved for its team", pack=False, classes=(SHARED, SCOPE)),
    # --- scope: what the route's context claims, and where the route attaches ---------------------------
    Case("context-another-teams-destination", "TrafficPolicy",
         [("set", "spec.extAuth.contextExtensions.egress-destination", "payments/ledger")],
         "names this team's own destination", pack=False, classes=(SCOPE,)),
    Case("context-another-teams-host", "TrafficPolicy",
         [("set", "spec.extAuth.contextExtensions.egress-host", "ledger.partner.example")],
         "and a host approved for it", pack=False, classes=(SCOPE, SHARED)),
    Case("context-key-nobody-reads", "TrafficPolicy",
         [("set", "spec.extAuth.contextExtensions.egress-bypass", "true")],
         "nothing the platform's authorization does not read", pack=False, classes=(SCOPE,)),
    Case("context-another-namespace", "TrafficPolicy",
         [("set", "spec.extAuth.contextExtensions.egress-namespace", "team-payments")],
         "must be the policy's own namespace", pack=False, classes=(SCOPE,)),
    Case("parent-not-the-egress-gateway", "HTTPRoute", [("set", "spec.parentRefs.0", {
        "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "shadow", "namespace": "team-research"})],
         "attaches only to its team's own listener", pack=False, classes=(SCOPE,)),
    Case("two-parents", "HTTPRoute", [("set", "spec.parentRefs.1", {
        "group": "gateway.networking.k8s.io", "kind": "ListenerSet", "name": names.team_listener_set("ml"),
        "namespace": names.GATEWAY_NAMESPACE, "sectionName": names.TEAM_LISTENER})], "attaches only to its team's own listener", pack=False,
         classes=(SCOPE,)),
    Case("two-hostnames", "HTTPRoute", [("set", "spec.hostnames", ["api.openai.com", "ollama.external"])],
         "names only hosts approved for its team", pack=False, classes=(SCOPE,)),
]  # fmt: skip
