"""Admission: the policies Kyverno enforces on every write, and the registry they read."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..rules import allowlist
from ..rules.approval import ApprovalRule
from ..settings import names
from ..settings.config import MAX_RETRY_ATTEMPTS, MAX_TIMEOUT_MS, Approval, TeamEntry, duration_ms
from .authz import CTX_DENY_MESSAGE, CTX_DESTINATION, CTX_HEADER_PREFIX, CTX_HOST, CTX_NAMESPACE
from .kinds import GATEWAY_API, KGATEWAY_API, SERVICE_ENTRY_API, Obj

CLUSTER_POLICY_NAME = "egress-require-approval"


def cluster_policy(rule: ApprovalRule | None = None) -> dict[str, Any]:
    """ClusterPolicy that enforces `check_service_entry` at admission and reports in background."""
    rule = rule or ApprovalRule()
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
                    "approval (ticket, approver, expiry). Generated from components/manifests/admission.py."
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


# --- admission from the registry the cluster holds (policies.kyverno.io/v1 ValidatingPolicy, CEL) ------


def registry_configmap(
    teams: Sequence[TeamEntry], approvals: Sequence[Approval], addresses: Mapping[str, Sequence[str]] | None = None
) -> Obj:
    """The approval registry as admission reads it: namespace -> team, and the approvals.

    `addresses` adds STATIC endpoints known only at deploy time to an approval, by host (the
    platform's own Ollama container).
    """
    extra = addresses or {}
    entries = []
    for a in approvals:
        entry: dict[str, Any] = {"host": a.host, "ports": list(a.ports), "teams": list(a.teams)}
        entry["expires"] = a.expires.isoformat()
        listed = [*(a.addresses or []), *extra.get(a.host, [])]
        if listed:
            entry["addresses"] = listed
        if a.allow_fail_open:
            entry["allowFailOpen"] = True
        if a.rate_limit is not None:
            ceiling = a.rate_limit
            entry["rateLimit"] = {
                "requests": ceiling.requests,
                "perMs": duration_ms(ceiling.per),
                "burst": ceiling.max_tokens,
            }
        entries.append(entry)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names.metadata(names.REGISTRY_CONFIGMAP, names.REGISTRY_NAMESPACE),
        "data": {
            "namespaces.json": json.dumps({t.namespace: t.name for t in teams}, sort_keys=True),
            # namespace -> the ListenerSet of the team's own listener (its routes attach there only)
            "listeners.json": json.dumps({t.namespace: names.team_listener_set(t.name) for t in teams}, sort_keys=True),
            "approvals.json": json.dumps(entries, sort_keys=True),
        },
    }


_REGISTRY = f'dyn(resource.Get("v1", "configmaps", "{names.REGISTRY_NAMESPACE}", "{names.REGISTRY_CONFIGMAP}"))'


# The registry, the team that owns the namespace of the object, and that team's unexpired approvals.
_REGISTRY_VARIABLES: list[dict[str, str]] = [
    {"name": "registry", "expression": _REGISTRY},
    {
        "name": "team",
        "expression": (
            'variables.registry == null ? "" : string(json.unmarshal(variables.registry.data'
            '[?"namespaces.json"].orValue("{}"))[?namespaceObject.metadata.name].orValue(""))'
        ),
    },
    {
        "name": "approvals",
        "expression": (
            "variables.registry == null ? [] : json.unmarshal(variables.registry.data"
            '[?"approvals.json"].orValue("[]")).filter(a, variables.team in a.teams && '
            'timestamp(string(a.expires) + "T23:59:59Z") >= time.now())'
        ),
    },
]


def _judged(expression: str) -> str:
    """Holds for every ServiceEntry admission judges: any in a team's namespace, whatever its location
    (kgateway builds a cluster for a MESH_INTERNAL entry too), and every external one elsewhere."""
    return f'(!variables.external && variables.team == "") || ({expression})'


def _entry_rule(expression: str, message: str) -> dict[str, str]:
    """A validation of a ServiceEntry in a team's namespace (other namespaces are the platform's)."""
    return {"expression": f'variables.team == "" || ({expression})', "message": f"egress endpoints: {message}"}


def registry_policy() -> Obj:
    """Every ServiceEntry in a team's namespace, whatever its location, and every external one
    elsewhere, is admitted only if the registry the cluster holds approves its host and ports for the
    team that owns the namespace, unexpired, with only the endpoint addresses the approval lists. In a
    team's namespace it has the shape the product builds (one host, MESH_EXTERNAL, ports without
    targetPort, DNS or STATIC resolution, no VIPs or workload selector) and keeps the host of the
    routes that send to it. Labels and annotations are not read."""
    where = f"{names.REGISTRY_NAMESPACE}/{names.REGISTRY_CONFIGMAP}"
    routes_to_it = (
        "variables.routes.filter(r, r.spec.?rules.orValue([]).exists(x, x.?backendRefs.orValue([]).exists(b, "
        'b.?kind.orValue("") == "ServiceEntry" && b.name == object.metadata.name)))'
    )
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ValidatingPolicy",
        "metadata": {"name": names.REGISTRY_POLICY, "labels": names.labels()},
        "spec": {
            "validationActions": ["Deny"],
            "evaluation": {"background": {"enabled": False}},
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["networking.istio.io"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["serviceentries"],
                    }
                ]
            },
            "variables": [
                *_REGISTRY_VARIABLES,
                {
                    "name": "external",
                    "expression": "object.spec.?location.orValue('MESH_EXTERNAL') != 'MESH_INTERNAL'",
                },
                {
                    "name": "ports",
                    "expression": "has(object.spec.ports) ? object.spec.ports.map(p, int(p.number)) : []",
                },
                {"name": "routes", "expression": _list(GATEWAY_API, "httproutes")},
            ],
            "validations": [
                {
                    "expression": _judged("variables.registry != null"),
                    "message": f"egress registry: the approval registry {where} is missing; nothing is approved",
                },
                {
                    "expression": _judged('variables.team != ""'),
                    "messageExpression": (
                        "'egress registry: namespace ' + namespaceObject.metadata.name + "
                        "' belongs to no team in the approval registry'"
                    ),
                },
                {
                    "expression": _judged(
                        "object.spec.hosts.all(h, variables.ports.all(p, variables.approvals.exists(a, "
                        "a.host == h && a.ports.exists(q, int(q) == p))))"
                    ),
                    "messageExpression": (
                        "'egress registry: ' + object.spec.hosts.join(',') + ' on ports ' + "
                        "variables.ports.map(p, string(p)).join(',') + "
                        "' is not approved (or has expired) for team ' + variables.team"
                    ),
                },
                {
                    "expression": _judged(
                        "!has(object.spec.endpoints) || object.spec.endpoints.all(e, has(e.address) && "
                        "variables.approvals.exists(a, a.host in object.spec.hosts && has(a.addresses) && "
                        "e.address in a.addresses))"
                    ),
                    "message": "egress registry: endpoint addresses must be the ones the approval lists",
                },
                _entry_rule(
                    'variables.external && object.spec.?location.orValue("") == "MESH_EXTERNAL"',
                    "a ServiceEntry in a team namespace is location: MESH_EXTERNAL (kgateway sends to a "
                    "MESH_INTERNAL entry just the same, and no approval covers it)",
                ),
                _entry_rule(
                    "object.spec.hosts.size() == 1 && variables.ports.size() > 0",
                    "a ServiceEntry in a team namespace names one host and at least one port",
                ),
                _entry_rule(
                    'object.spec.?resolution.orValue("") in ["DNS", "STATIC"] && '
                    '(!has(object.spec.endpoints) || object.spec.resolution == "STATIC")',
                    "resolution is DNS (of the approved host) or STATIC (endpoints the approval lists)",
                ),
                _entry_rule(
                    f"{routes_to_it}.all(r, r.spec.?hostnames.orValue([]) == object.spec.hosts)",
                    "a ServiceEntry that a route sends to keeps the route's host",
                ),
                *(_entry_rule(cel, message) for cel, message in allowlist.cel_validations("ServiceEntry")),
            ],
        },
    }


# --- what may attach to the shared egress gateway, from a team's namespace ---------------------------

_NS = "namespaceObject.metadata.name"
_POLICY_FILTER = (
    'f.type == "ExtensionRef" && f.extensionRef.group == "gateway.kgateway.dev" && '
    'f.extensionRef.kind == "TrafficPolicy"'
)


# What the policies' CEL lists with resource.List (API version, resource): Kyverno's admission controller
# makes those calls as its own ServiceAccount, whose chart ClusterRoles cover core objects and Kyverno's
# own only. kyverno_read_rules() grants them; a list not named here fails as a CEL error, and the write is refused.
POLICY_LISTS: tuple[tuple[str, str], ...] = (
    (SERVICE_ENTRY_API, "serviceentries"),
    (GATEWAY_API, "httproutes"),
    (KGATEWAY_API, "trafficpolicies"),
    (KGATEWAY_API, "gatewayextensions"),
)
# What the ClusterPolicy (background: true) matches, which Kyverno's reports controller scans and so lists
# and watches as its own ServiceAccount.
BACKGROUND_SCANS: tuple[tuple[str, str], ...] = (("networking.istio.io/v1", "serviceentries"),)
_READ = ["get", "list", "watch"]


def kyverno_read_rules(resources: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """RBAC rules, one per API group, that let a Kyverno controller read `resources` ((API version,
    resource) pairs): the kyverno chart's `<controller>.rbac.clusterRole.extraResources`."""
    groups: dict[str, list[str]] = {}
    for api_version, resource in resources:
        group = api_version.rpartition("/")[0]  # "" for the core group's "v1"
        groups.setdefault(group, [])
        if resource not in groups[group]:
            groups[group].append(resource)
    return [{"apiGroups": [g], "resources": r, "verbs": list(_READ)} for g, r in groups.items()]


def _list(api_version: str, resource: str) -> str:
    if (api_version, resource) not in POLICY_LISTS:
        raise ValueError(f"{resource} ({api_version}) is listed by a policy but not in POLICY_LISTS")
    return f'dyn(resource.List("{api_version}", "{resource}", {_NS})).items'


def _fail_open_hosts(routes: str) -> str:
    """Every hostname of the routes named by `routes` (a list of targetRefs) may fail open."""
    return (
        f"{routes}.all(t, variables.routes.filter(r, r.metadata.name == t.name)"
        ".all(r, r.spec.?hostnames.orValue([]).all(h, h in variables.failOpenHosts)))"
    )


def _within_ceilings(policy: str, hosts: str) -> str:
    """The TrafficPolicy `policy` keeps within every ceiling the approvals of `hosts` set: it has a
    token bucket, no faster (tokensPerFill / fillInterval, compared as integers) and no burstier."""
    bucket = f"{policy}.spec.?rateLimit.?local.?tokenBucket"
    return (
        f"{hosts}.all(h, variables.approvals.filter(a, a.host == h && has(a.rateLimit)).all(a, "
        f"{bucket}.hasValue() && "
        f"int({bucket}.value().?tokensPerFill.orValue(1)) * int(a.rateLimit.perMs) <= "
        f"int(a.rateLimit.requests) * duration({bucket}.value().fillInterval).getMilliseconds() && "
        f"int({bucket}.value().maxTokens) <= int(a.rateLimit.burst)))"
    )


def _rule(kind: str, expression: str, message: str) -> dict[str, str]:
    """A validation that applies to one kind in a team's namespace (other namespaces are the platform's)."""
    return {
        "expression": f'object.kind != "{kind}" || variables.team == "" || ({expression})',
        "messageExpression": f"'egress routes: ' + {message}",
    }


# Headers a policy may never set: they choose the site an upstream (a CDN, say) serves (domain fronting).
_HOST_HEADERS = ("host", ":authority", "x-forwarded-host", "forwarded")
_CONTEXT_KEYS = (CTX_DESTINATION, CTX_NAMESPACE, CTX_HOST, CTX_DENY_MESSAGE)


def _exact_shape_rules(route_policies: str) -> list[dict[str, str]]:
    """The values the product writes, where a value decides what is reached: each route has one parent,
    one host, one TrafficPolicy of its own name and a ServiceEntry of its own host as backend; policies
    are bounded and name the host they guard; TLS verifies that host. `route_policies`: CEL of the
    TrafficPolicies that target the route under admission."""
    hostnames = "object.spec.?hostnames.orValue([])"
    ctx = "object.spec.?extAuth.?contextExtensions.orValue({})"
    tls = "object.spec.?tls.orValue({})"
    bcp_host = 'object.spec.?targetRefs.orValue([{"name": ""}])[0].name'
    return [
        _rule(
            "HTTPRoute",
            f"object.spec.?parentRefs.orValue([]).size() == 1 && {hostnames}.size() == 1",
            "'a route in a team namespace has one parent (its team\\'s own listener) and one hostname'",
        ),
        _rule(
            "HTTPRoute",
            'object.spec.?rules.orValue([]).all(r, r.?filters.orValue([]).all(f, f.type == "ExtensionRef" && '
            f"{_POLICY_FILTER} && f.extensionRef.name == object.metadata.name))",
            "'a route rule\\'s only filter names the route\\'s own TrafficPolicy (of the route\\'s name): no "
            "URLRewrite, header modifier, redirect or mirror rewrites what the approved host receives'",
        ),
        _rule(
            "HTTPRoute",
            "object.spec.?rules.orValue([]).all(r, r.?backendRefs.orValue([]).size() > 0 && r.backendRefs.all(b, "
            "variables.entries.exists(e, e.metadata.name == b.name && e.spec.?hosts.orValue([]) == "
            f"{hostnames} && e.spec.?ports.orValue([]).exists(p, int(p.number) == int(b.?port.orValue(0))))))",
            "'a route sends only to a ServiceEntry of its namespace with the route\\'s own host and port "
            "(create the ServiceEntry first)'",
        ),
        _rule(
            "HTTPRoute",
            f"{route_policies}.filter(tp, tp.metadata.name == object.metadata.name).all(tp, "
            f'tp.spec.?extAuth.?contextExtensions.orValue({{}})[?"{CTX_HOST}"].orValue("") in {hostnames})',
            f"'the route\\'s TrafficPolicy names another host in extAuth.contextExtensions.{CTX_HOST}'",
        ),
        _rule(
            "TrafficPolicy",
            "object.spec.?targetRefs.orValue([]).size() == 1 && object.spec.targetRefs.all(t, "
            't.group == "gateway.networking.k8s.io" && t.kind == "HTTPRoute" && t.name == object.metadata.name)',
            "'a TrafficPolicy in a team namespace targets one HTTPRoute, the one of its own name (no budget "
            "shared over routes, no retargeting)'",
        ),
        _rule(
            "TrafficPolicy",
            f'duration(object.spec.?timeouts.?request.orValue("0s")) > duration("0s") && '
            f'duration(object.spec.timeouts.request) <= duration("{MAX_TIMEOUT_MS}ms") && '
            "(!has(object.spec.retry) || (int(object.spec.retry.?attempts.orValue(1)) <= "
            f'{MAX_RETRY_ATTEMPTS} && duration(object.spec.retry.?perTryTimeout.orValue("0s")) > duration("0s") '
            "&& duration(object.spec.retry.perTryTimeout) < duration(object.spec.timeouts.request)))",
            f"'timeouts.request is set and at most {MAX_TIMEOUT_MS // 60_000}m; retry.attempts at most "
            f"{MAX_RETRY_ATTEMPTS}, retry.perTryTimeout set and below timeouts.request'",
        ),
        _rule(
            "TrafficPolicy",
            f'{ctx}.all(k, k in {json.dumps(list(_CONTEXT_KEYS))} || k.startsWith("{CTX_HEADER_PREFIX}")) && '
            f'{ctx}[?"{CTX_DESTINATION}"].orValue("").startsWith(variables.team + "/") && '
            f'variables.approvals.exists(a, a.host == {ctx}[?"{CTX_HOST}"].orValue(""))',
            f"'extAuth.contextExtensions names this team\\'s own destination ({CTX_DESTINATION}: <team>/<name>) "
            f"and a host approved for it ({CTX_HOST}), and nothing the platform\\'s authorization does not read' + "
            "' (team ' + variables.team + ')'",
        ),
        _rule(
            "TrafficPolicy",
            "object.spec.?headerModifiers.?request.?set.orValue([]).all(m, "
            f'!(m.name.lowerAscii() in {json.dumps(list(_HOST_HEADERS))}) && !m.name.startsWith(":"))',
            "'a TrafficPolicy never sets Host, :authority or forwarding headers: they choose the site the "
            "approved upstream serves'",
        ),
        _rule(
            "GatewayExtension",
            'object.spec.?type.orValue("") == "ExtAuth"',
            "'an extension in a team namespace is of type ExtAuth'",
        ),
        _rule(
            "BackendConfigPolicy",
            "object.spec.?targetRefs.orValue([]).size() == 1 && object.spec.targetRefs.all(t, "
            't.group == "networking.istio.io" && t.kind == "Hostname" && '
            "variables.approvals.exists(a, a.host == t.name))",
            "'a BackendConfigPolicy targets one Hostname, a host approved for its team' + "
            "' (team ' + variables.team + ')'",
        ),
        _rule(
            "BackendConfigPolicy",
            f'{tls}[?"sni"].orValue("") == {bcp_host} && {tls}[?"verifySubjectAltNames"].orValue([]) == '
            f'[{bcp_host}] && {tls}[?"wellKnownCACertificates"].orValue("") == "System"',
            "'TLS to an approved host sends that host as SNI and verifies that it, and only it, is named in "
            "the certificate (sni, verifySubjectAltNames), from the system CAs'",
        ),
    ]


def route_policy() -> Obj:
    """In a team's namespace, what reaches the shared gateway is checked against the registry too:
    routes only for the team's approved hosts and only to its own ServiceEntries; every policy on a
    route carries the platform's external authorization with the route's own namespace as context;
    extensions only call the platform's authz server, and fail open only where security approved it."""
    # Every parent of a team's route is its own listener (the rule below), so a route with a parent is
    # on the egress gateway.
    gw_parent = "object.spec.?parentRefs.orValue([]).size() > 0"
    own_listener = (
        'object.spec.?parentRefs.orValue([]).all(p, p.?group.orValue("gateway.networking.k8s.io") == '
        '"gateway.networking.k8s.io" && p.?kind.orValue("Gateway") == "ListenerSet" && '
        f'p.name == variables.listener && p.?namespace.orValue({_NS}) == "{names.GATEWAY_NAMESPACE}" && '
        f'p.?sectionName.orValue("") == "{names.TEAM_LISTENER}" && !has(p.port))'
    )
    route_policies = (
        'variables.policies.filter(tp, tp.spec.?targetRefs.orValue([]).exists(t, t.kind == "HTTPRoute" && '
        "t.name == object.metadata.name))"
    )
    ext_name = 'object.spec.?extAuth.?extensionRef.?name.orValue("")'
    backend = names.AUTHZ_SERVICE, names.AUTHZ_NAMESPACE, names.AUTHZ_GRPC_PORT
    # The team's credentials Secret, the only Secret a team object may name (its identity may patch that
    # one and read no other): kgateway reads a named Secret with its own rights, so any other name (even in
    # the team's namespace) would hand the gateway a value the team may not see.
    own_secret = f'(m.secretRef.?namespace.orValue("") == "{names.CREDENTIALS_NAMESPACE}" && m.secretRef.name == {_NS})'

    team = "' (team ' + variables.team + ')'"
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ValidatingPolicy",
        "metadata": {"name": names.ROUTE_POLICY, "labels": names.labels()},
        "spec": {
            "validationActions": ["Deny"],
            "evaluation": {"background": {"enabled": False}},
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["gateway.networking.k8s.io"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["httproutes"],
                    },
                    {
                        "apiGroups": ["gateway.kgateway.dev"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["trafficpolicies", "gatewayextensions", "backendconfigpolicies"],
                    },
                ]
            },
            "variables": [
                *_REGISTRY_VARIABLES,
                {
                    "name": "failOpenHosts",
                    "expression": "variables.approvals.filter(a, a.?allowFailOpen.orValue(false)).map(a, a.host)",
                },
                {
                    "name": "listener",
                    "expression": (
                        'variables.registry == null ? "" : string(json.unmarshal(variables.registry.data'
                        f'[?"listeners.json"].orValue("{{}}"))[?{_NS}].orValue(""))'
                    ),
                },
                {"name": "routes", "expression": _list(GATEWAY_API, "httproutes")},
                {"name": "policies", "expression": _list(KGATEWAY_API, "trafficpolicies")},
                {"name": "entries", "expression": _list(SERVICE_ENTRY_API, "serviceentries")},
                {
                    "name": "openExtensions",
                    "expression": _list(KGATEWAY_API, "gatewayextensions")
                    + ".filter(g, g.spec.?extAuth.?failOpen.orValue(false)).map(g, g.metadata.name)",
                },
            ],
            "validations": [
                _rule(
                    "HTTPRoute",
                    f'variables.listener != "" && {own_listener}',
                    f"'a route in a team namespace attaches only to its team\\'s own listener (ListenerSet "
                    f"{names.GATEWAY_NAMESPACE}/' + variables.listener + "
                    f"', sectionName {names.TEAM_LISTENER}, no port)' + " + team,
                ),
                _rule(
                    "HTTPRoute",
                    f"!({gw_parent}) || (object.spec.?hostnames.orValue([]).size() > 0 && "
                    "object.spec.hostnames.all(h, variables.approvals.exists(a, a.host == h)))",
                    "'a route on the egress gateway names only hosts approved for its team; got ' + "
                    f"object.spec.?hostnames.orValue([]).join(',') + {team}",
                ),
                _rule(
                    "HTTPRoute",
                    "object.spec.?rules.orValue([]).all(r, r.?backendRefs.orValue([]).all(b, "
                    'b.?group.orValue("") == "networking.istio.io" && b.?kind.orValue("Service") == "ServiceEntry" '
                    f"&& b.?namespace.orValue({_NS}) == {_NS}))",
                    "'a route in a team namespace sends only to ServiceEntries of its own namespace'",
                ),
                _rule(
                    "HTTPRoute",
                    # kgateway drops an unresolved filter of a backendRef silently (krtcollections/policy.go,
                    # getBackends), so none is allowed there; a rule's ExtensionRef names a TrafficPolicy only.
                    "object.spec.?rules.orValue([]).all(r, r.?filters.orValue([]).all(f, "
                    f'f.type != "RequestMirror" && (f.type != "ExtensionRef" || ({_POLICY_FILTER}))) && '
                    "r.?backendRefs.orValue([]).all(b, b.?filters.orValue([]).size() == 0))",
                    "'a route in a team namespace neither mirrors requests nor hands them to extensions (its "
                    "rules name TrafficPolicies only; its backends carry no filters)'",
                ),
                _rule(
                    "HTTPRoute",
                    f"{route_policies}.all(tp, " + _within_ceilings("tp", "object.spec.?hostnames.orValue([])") + ")",
                    "'a TrafficPolicy on this route exceeds the rate or burst security approved for ' + "
                    f"object.spec.?hostnames.orValue([]).join(',') + {team}",
                ),
                _rule(
                    "HTTPRoute",
                    f"!{route_policies}.exists(tp, tp.spec.?extAuth.?extensionRef.?name.orValue('') in "
                    "variables.openExtensions) || "
                    "object.spec.?hostnames.orValue([]).all(h, h in variables.failOpenHosts)",
                    "'its authorization fails open, which the approval of ' + "
                    f"object.spec.?hostnames.orValue([]).join(',') + ' does not allow' + {team}",
                ),
                _rule(
                    "HTTPRoute",
                    f"!({gw_parent}) || {route_policies}.exists(tp, has(tp.spec.extAuth) && "
                    "has(tp.spec.extAuth.extensionRef))",
                    "'a route on the egress gateway needs its TrafficPolicy with external authorization first'",
                ),
                _rule(
                    "HTTPRoute",
                    f"!({gw_parent}) || (object.spec.?rules.orValue([]).size() > 0 && object.spec.rules.all(r, "
                    f"r.?filters.orValue([]).exists(f, {_POLICY_FILTER}) && r.filters.all(f, f.type != "
                    f'"ExtensionRef" || {route_policies}.exists(tp, tp.metadata.name == f.extensionRef.name))))',
                    "'every rule of a route on the egress gateway names its TrafficPolicy (one that targets the "
                    "route) in an ExtensionRef filter: without the policy the gateway then answers 500 instead of "
                    "forwarding'",
                ),
                _rule(
                    "TrafficPolicy",
                    "has(object.spec.extAuth) && has(object.spec.extAuth.extensionRef) && "
                    f"!has(object.spec.extAuth.disable) && object.spec.extAuth.extensionRef.?namespace.orValue({_NS})"
                    f" == {_NS}",
                    "'every TrafficPolicy in a team namespace carries external authorization (extAuth.extensionRef "
                    "to an extension of its own namespace, never disable)'",
                ),
                _rule(
                    "TrafficPolicy",
                    f'object.spec.?extAuth.?contextExtensions.orValue({{}})[?"{CTX_NAMESPACE}"].orValue("") == {_NS}',
                    f"'extAuth.contextExtensions.{CTX_NAMESPACE} must be the policy\\'s own namespace, ' + {_NS}",
                ),
                _rule(
                    "TrafficPolicy",
                    "!has(object.spec.targetSelectors) && "
                    'object.spec.?targetRefs.orValue([]).all(t, t.kind == "HTTPRoute")',
                    "'a TrafficPolicy in a team namespace attaches to HTTPRoutes, by targetRefs only'",
                ),
                _rule(
                    "TrafficPolicy",
                    "object.spec.?headerModifiers.?request.orValue({}).?set.orValue([])"
                    ".all(m, !has(m.secretRef) || " + own_secret + ") && "
                    "object.spec.?headerModifiers.?request.orValue({}).?add.orValue([])"
                    ".all(m, !has(m.secretRef) || " + own_secret + ") && "
                    "object.spec.?headerModifiers.?response.orValue({}).?set.orValue([]).all(m, !has(m.secretRef)) && "
                    "object.spec.?headerModifiers.?response.orValue({}).?add.orValue([]).all(m, !has(m.secretRef))",
                    f"'credentials come only from the team\\'s own Secret ({names.CREDENTIALS_NAMESPACE}/' + {_NS} + "
                    "'), and never go into responses'",
                ),
                _rule(
                    "TrafficPolicy",
                    "!has(object.spec.apiKeyAuth) && !has(object.spec.basicAuth)",
                    "'a TrafficPolicy in a team namespace names no Secret to check clients against (apiKeyAuth, "
                    "basicAuth): the platform\\'s authorization decides who calls'",
                ),
                _rule(
                    "TrafficPolicy",
                    "object.spec.?targetRefs.orValue([]).all(t, variables.routes.filter(r, r.metadata.name == t.name)"
                    ".all(r, " + _within_ceilings("object", "r.spec.?hostnames.orValue([])") + "))",
                    "'its budget (rateLimit.local.tokenBucket) must keep within the rate and burst security "
                    "approved for the routed hosts' + " + team,
                ),
                _rule(
                    "TrafficPolicy",
                    f"!({ext_name} in variables.openExtensions) || "
                    + _fail_open_hosts("object.spec.?targetRefs.orValue([])"),
                    "'extension ' + "
                    + ext_name
                    + " + ' fails open, which the approval of the routed hosts does not allow' + "
                    + team,
                ),
                _rule(
                    "GatewayExtension",
                    "has(object.spec.extAuth) && !has(object.spec.extProc) && !has(object.spec.rateLimit) && "
                    "!has(object.spec.jwt) && !has(object.spec.oauth2) && "
                    f'object.spec.extAuth.?grpcService.?backendRef.?name.orValue("") == "{backend[0]}" && '
                    f'object.spec.extAuth.grpcService.backendRef.?namespace.orValue("") == "{backend[1]}" && '
                    f"object.spec.extAuth.grpcService.backendRef.?port.orValue(0) == {backend[2]}",
                    f"'an extension in a team namespace is external authorization by the platform\\'s server "
                    f"({backend[1]}/{backend[0]}:{backend[2]}) only'",
                ),
                _rule(
                    "GatewayExtension",
                    "!object.spec.?extAuth.?failOpen.orValue(false) || (variables.failOpenHosts.size() > 0 && "
                    'variables.policies.filter(tp, tp.spec.?extAuth.?extensionRef.?name.orValue("") == '
                    "object.metadata.name).all(tp, " + _fail_open_hosts("tp.spec.?targetRefs.orValue([])") + "))",
                    f"'failOpen: true needs an approval that allows it for every host it guards' + {team}",
                ),
                _rule(
                    "BackendConfigPolicy",
                    "!object.spec.?tls.?insecureSkipVerify.orValue(false) && (!has(object.spec.tls) || "
                    "object.spec.tls.?verifySubjectAltNames.orValue([]).size() > 0)",
                    "'TLS to an external host verifies its certificate and names (no insecureSkipVerify; "
                    "verifySubjectAltNames set)'",
                ),
                _rule(
                    "BackendConfigPolicy",
                    "!has(object.spec.tls) || !has(object.spec.tls.secretRef)",
                    "'a BackendConfigPolicy in a team namespace names no Secret (tls.secretRef): the gateway would "
                    "present a key the team may not read'",
                ),
                *_exact_shape_rules(route_policies),
                *(
                    _rule(kind, cel, "'" + message + "'")
                    for kind in ("HTTPRoute", "TrafficPolicy", "GatewayExtension", "BackendConfigPolicy")
                    for cel, message in allowlist.cel_validations(kind)
                ),
            ],
        },
    }


def policy_retention() -> Obj:
    """A route's TrafficPolicy (its authorization) cannot be deleted while the route exists: a route on
    the shared gateway without one would be forwarded unauthorized. Delete the route first (team stacks
    do: their routes depend on their policies)."""
    covered = (
        'oldObject.spec.?targetRefs.orValue([]).filter(t, t.kind == "HTTPRoute" && '
        "variables.routes.exists(r, r.metadata.name == t.name))"
    )
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ValidatingPolicy",
        "metadata": {"name": names.RETENTION_POLICY, "labels": names.labels()},
        "spec": {
            "validationActions": ["Deny"],
            "evaluation": {"background": {"enabled": False}},
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["gateway.kgateway.dev"],
                        "apiVersions": ["*"],
                        "operations": ["DELETE"],
                        "resources": ["trafficpolicies"],
                    }
                ]
            },
            "variables": [
                *_REGISTRY_VARIABLES,
                {"name": "routes", "expression": _list(GATEWAY_API, "httproutes")},
                {"name": "policies", "expression": _list(KGATEWAY_API, "trafficpolicies")},
            ],
            "validations": [
                {
                    "expression": (
                        f'variables.team == "" || {covered}.all(t, variables.policies.exists(p, '
                        "p.metadata.name != oldObject.metadata.name && has(p.spec.extAuth) && "
                        "has(p.spec.extAuth.extensionRef) && p.spec.?targetRefs.orValue([]).exists(u, "
                        'u.kind == "HTTPRoute" && u.name == t.name)))'
                    ),
                    "messageExpression": (
                        "'egress routes: TrafficPolicy ' + oldObject.metadata.name + ' authorizes route(s) ' + "
                        + covered
                        + ".map(t, t.name).join(',') + '; delete the route first'"
                    ),
                }
            ],
        },
    }
