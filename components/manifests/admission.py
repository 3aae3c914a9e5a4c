"""Admission: the Kyverno ClusterPolicy generated from the approval rule in rules.py."""

from __future__ import annotations

from typing import Any

from ..settings import names
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
