"""The vocabulary the rules' admission validations share: how a validation is scoped to a team's
namespace, how its message names its rule, and the CEL of what the admission policies' variables hold
(manifests/admission.py defines those variables: registry, team, approvals, listener, routes, policies,
entries, openExtensions, failOpenHosts, external, ports)."""

from __future__ import annotations

Validation = dict[str, str]

NS = "namespaceObject.metadata.name"
TEAM = "' (team ' + variables.team + ')'"
HOSTNAMES = "object.spec.?hostnames.orValue([])"
# A route's ExtensionRef filter that names a TrafficPolicy.
POLICY_FILTER = (
    'f.type == "ExtensionRef" && f.extensionRef.group == "gateway.kgateway.dev" && '
    'f.extensionRef.kind == "TrafficPolicy"'
)
# The TrafficPolicies of the namespace that target the route under admission.
ROUTE_POLICIES = (
    'variables.policies.filter(tp, tp.spec.?targetRefs.orValue([]).exists(t, t.kind == "HTTPRoute" && '
    "t.name == object.metadata.name))"
)
# Every parent of a team's route is its own listener (routes.OWN_LISTENER), so a route with a parent is
# on the egress gateway.
ON_GATEWAY = "object.spec.?parentRefs.orValue([]).size() > 0"


def team_object(rule: str, kind: str, expression: str, message: str) -> Validation:
    """A validation of the route policy: `kind` in a team's namespace (other namespaces are the
    platform's) holds `expression`; `message` is CEL, after the rule's name."""
    return {
        "expression": f'object.kind != "{kind}" || variables.team == "" || ({expression})',
        "messageExpression": f"'egress {rule}: ' + {message}",
    }


def team_entry(rule: str, expression: str, message: str) -> Validation:
    """A validation of the registry policy: a ServiceEntry in a team's namespace holds `expression`."""
    return {"expression": f'variables.team == "" || ({expression})', "message": f"egress {rule}: {message}"}


def judged_entry(rule: str, expression: str, message: str = "", message_expression: str = "") -> Validation:
    """A validation of the registry policy for every ServiceEntry admission judges: any in a team's
    namespace, whatever its location (kgateway builds a cluster for a MESH_INTERNAL entry too), and
    every external one elsewhere. `message` is text, or `message_expression` CEL, after the rule's name."""
    out = {"expression": f'(!variables.external && variables.team == "") || ({expression})'}
    if message_expression:
        out["messageExpression"] = f"'egress {rule}: ' + {message_expression}"
    else:
        out["message"] = f"egress {rule}: {message}"
    return out
