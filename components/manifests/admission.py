"""Admission: the policies Kyverno enforces on every write, and the registry they read."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..settings import names
from ..settings.config import Approval, TeamEntry
from .kinds import Obj
from .rules import ApprovalRule

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
        entries.append(entry)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names.metadata(names.REGISTRY_CONFIGMAP, names.REGISTRY_NAMESPACE),
        "data": {
            "namespaces.json": json.dumps({t.namespace: t.name for t in teams}, sort_keys=True),
            "approvals.json": json.dumps(entries, sort_keys=True),
        },
    }


_REGISTRY = f'dyn(resource.Get("v1", "configmaps", "{names.REGISTRY_NAMESPACE}", "{names.REGISTRY_CONFIGMAP}"))'


def registry_policy() -> Obj:
    """Every MESH_EXTERNAL ServiceEntry, in every namespace, is admitted only if the registry the
    cluster holds approves its hosts and ports for the team that owns the namespace, unexpired, with
    only the endpoint addresses the approval lists. Labels and annotations are not read."""
    where = f"{names.REGISTRY_NAMESPACE}/{names.REGISTRY_CONFIGMAP}"
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
            "matchConditions": [
                {
                    "name": "external-only",
                    "expression": "!has(object.spec.location) || object.spec.location != 'MESH_INTERNAL'",
                }
            ],
            "variables": [
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
                {
                    "name": "ports",
                    "expression": "has(object.spec.ports) ? object.spec.ports.map(p, int(p.number)) : []",
                },
            ],
            "validations": [
                {
                    "expression": "variables.registry != null",
                    "message": f"egress registry: the approval registry {where} is missing; nothing is approved",
                },
                {
                    "expression": 'variables.team != ""',
                    "messageExpression": (
                        "'egress registry: namespace ' + namespaceObject.metadata.name + "
                        "' belongs to no team in the approval registry'"
                    ),
                },
                {
                    "expression": (
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
                    "expression": (
                        "!has(object.spec.endpoints) || object.spec.endpoints.all(e, variables.approvals.exists(a, "
                        "a.host in object.spec.hosts && has(a.addresses) && e.address in a.addresses))"
                    ),
                    "message": "egress registry: endpoint addresses must be the ones the approval lists",
                },
            ],
        },
    }
