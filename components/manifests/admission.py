"""Admission: the policies Kyverno enforces on every write, and the registry they read."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..rules import allowlist, approval, authorization, bounds, budgets, credentials, endpoints, fail_open, routes, tls
from ..rules.approval import ApprovalRule
from ..rules.cel import NS, Validation, team_entry, team_object
from ..settings import names
from ..settings.config import Approval, TeamEntry, duration_ms
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


def registry_policy() -> Obj:
    """Every ServiceEntry in a team's namespace, whatever its location, and every external one
    elsewhere, is admitted only if the registry the cluster holds approves its host and ports for the
    team that owns the namespace, unexpired, with only the endpoint addresses the approval lists. In a
    team's namespace it has the shape the product builds (one host, MESH_EXTERNAL, ports without
    targetPort, DNS or STATIC resolution, no VIPs or workload selector) and keeps the host of the
    routes that send to it. Labels and annotations are not read."""
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
                approval.REGISTRY_PRESENT,
                approval.NAMESPACE_OF_A_TEAM,
                approval.ENTRY_APPROVED,
                endpoints.ADDRESSES_APPROVED,
                endpoints.EXTERNAL,
                endpoints.ONE_HOST,
                endpoints.RESOLUTION,
                endpoints.KEEPS_ROUTE_HOST,
                *(
                    team_entry(allowlist.RULE, cel, message)
                    for cel, message in allowlist.cel_validations("ServiceEntry")
                ),
            ],
        },
    }


# --- what may attach to the shared egress gateway, from a team's namespace ---------------------------

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
    return f'dyn(resource.List("{api_version}", "{resource}", {NS})).items'


# The route policy's validations, each a rule's (components/rules/), in the order Kyverno evaluates them.
ROUTE_VALIDATIONS: tuple[Validation, ...] = (
    routes.OWN_LISTENER,
    approval.ROUTE_HOSTS_APPROVED,
    endpoints.ROUTE_BACKENDS_LOCAL,
    routes.NO_MIRROR_NO_EXTENSIONS,
    budgets.ROUTE_WITHIN_CEILINGS,
    fail_open.ROUTE,
    routes.NEEDS_ITS_POLICY,
    routes.EVERY_RULE_NAMES_ITS_POLICY,
    authorization.POLICY_HAS_EXT_AUTH,
    authorization.CONTEXT_NAMESPACE,
    routes.POLICY_BY_TARGET_REFS,
    credentials.OWN_SECRET_ONLY,
    credentials.NO_CLIENT_SECRETS,
    budgets.POLICY_WITHIN_CEILINGS,
    fail_open.POLICY,
    authorization.PLATFORM_SERVER,
    fail_open.EXTENSION,
    tls.VERIFIED,
    credentials.NO_TLS_SECRET,
    routes.ONE_PARENT_ONE_HOST,
    routes.ONLY_ITS_OWN_POLICY,
    endpoints.ROUTE_BACKEND_OF_ITS_HOST,
    authorization.ROUTE_CONTEXT_HOST,
    routes.POLICY_OF_ITS_ROUTE,
    bounds.RETRIES_AND_TIMEOUTS,
    authorization.CONTEXT_OF_THE_TEAM,
    credentials.NO_HOST_HEADERS,
    authorization.EXT_AUTH_TYPE,
    tls.APPROVED_HOST,
    tls.THAT_HOST_ONLY,
    *(
        team_object(allowlist.RULE, kind, cel, "'" + message + "'")
        for kind in allowlist.SPECS
        if kind != "ServiceEntry"  # the registry policy's
        for cel, message in allowlist.cel_validations(kind)
    ),
)


def route_policy() -> Obj:
    """In a team's namespace, what reaches the shared gateway is checked against the registry too:
    routes only for the team's approved hosts and only to its own ServiceEntries; every policy on a
    route carries the platform's external authorization with the route's own namespace as context;
    extensions only call the platform's authz server, and fail open only where security approved it."""
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
                        f'[?"listeners.json"].orValue("{{}}"))[?{NS}].orValue(""))'
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
            "validations": list(ROUTE_VALIDATIONS),
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
